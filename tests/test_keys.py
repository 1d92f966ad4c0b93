"""Keys are data, never paths: ``{key}`` can never take a path out of its template's folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import textwrap
from urllib.parse import unquote

import pytest

from conftest import cli_command
from plugboard_beam.spec import ModelError
from plugboard_beam.spec.keys import MAX_ENCODED_KEY_BYTES, InvalidKey, key_for_path, substitute_key
from plugboard_beam.spec.scenarios import load_scenarios

HOSTILE = ["../x", "..\\x", "a/../../b", "/etc/passwd", "\x00", "a\x00b", ".", "..", "...", ".hidden",
           "a\nb", "%2F", "%", "C:\\x", "~/x", "a\u202eb", "\x7f", "日本/語"]


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_keys_become_one_harmless_segment(key: str, tmp_path: Path) -> None:
    seg = key_for_path(key)
    assert "/" not in seg and "\\" not in seg and "\x00" not in seg
    assert not seg.startswith(".")
    assert all(ch.isprintable() for ch in seg)
    assert unquote(seg) == key  # nothing lost: distinct keys stay distinct
    # As a file name in a folder, it stays in that folder.
    target = (tmp_path / "out" / f"{seg}.txt").resolve()
    assert target.parent == (tmp_path / "out").resolve()
    path = substitute_key("out/{key}.csv", key)
    assert os.path.normpath(path).startswith("out/") and os.path.dirname(path) == "out"


def test_plain_keys_are_unchanged_and_encoding_is_injective() -> None:
    for key in ("default", "pump-7", "site_A.line 2", "a.b", "x..y", "Ünïcode"):
        assert key_for_path(key) == key
    keys = ["a/b", "a%2Fb", "a%252Fb", ".a", "%2Ea", "..", "%2E."]
    assert len({key_for_path(k) for k in keys}) == len(keys)


@pytest.mark.parametrize("key", ["", "k" * (MAX_ENCODED_KEY_BYTES + 1), "/" * 100, "😀" * 60])
def test_empty_and_overlong_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKey):
        key_for_path(key)


def test_scenarios_refuse_empty_and_overlong_keys_naming_the_row(tmp_path: Path) -> None:
    sc = tmp_path / "sc.yaml"
    sc.write_text(f'- {{key: ok}}\n- {{key: ""}}\n- {{key: {"x" * 300}}}\n- {{key: [1]}}\n')
    with pytest.raises(ModelError) as info:
        load_scenarios(sc)
    text = str(info.value)
    assert "sc.yaml line 2: no 'key'" in text
    assert "sc.yaml line 3: key 'xxxx" in text and "too long" in text
    assert "sc.yaml line 4: 'key' must be a string" in text
    csv = tmp_path / "sc.csv"
    csv.write_text(f"key,a.iters\nok,1\n{'y' * 300},2\n")
    with pytest.raises(ModelError, match=r"sc\.csv line 3: key 'yyy.*too long"):
        load_scenarios(csv)


PARTS = '''
from plugboard_beam.component import Component, IOController as IO

class Emit(Component):
    io = IO(outputs=["x"])
    def __init__(self, iters: int = 2, **kw) -> None:
        super().__init__(**kw)
        self._left = iters
    async def step(self) -> None:
        if self._left == 0:
            await self.io.close()
            return
        self._left -= 1
        self.x = self._left

class Write(Component):
    io = IO(inputs=["x"])
    def __init__(self, path: str, **kw) -> None:
        super().__init__(**kw)
        self._path = path
    async def init(self) -> None:
        self._f = open(self._path, "w")
    async def step(self) -> None:
        self._f.write(f"{self.x}\\n")
    async def destroy(self) -> None:
        self._f.close()
'''

MODEL = """
plugboard:
  process:
    args:
      components:
      - {type: keyparts.Emit, args: {name: e}}
      - {type: keyparts.Write, args: {name: w, path: "out/{key}.txt"}}
      connectors:
      - {source: e.x, target: w.x}
"""

TRAVERSAL = ["../escaped", "../../escaped2", "a/../../escaped3", "..", ".", "..\\escaped4", "/tmp/abs"]


@pytest.mark.parametrize("runner", ["local", pytest.param("direct", marks=pytest.mark.slow)])
def test_traversal_keys_from_scenarios_write_nothing_outside_the_folder(tmp_path: Path, runner: str) -> None:
    work = tmp_path / "a" / "b"
    (work / "out").mkdir(parents=True)
    (work / "keyparts.py").write_text(PARTS)
    (work / "model.yaml").write_text(textwrap.dedent(MODEL))
    (work / "sc.yaml").write_text("".join(f"- key: {json.dumps(k)}\n" for k in [*TRAVERSAL, "plain"]))
    before = {p for p in tmp_path.rglob("*")}
    proc = subprocess.run([*cli_command(), "process", "run", "--runner", runner, "model.yaml",
                           "--scenarios", "sc.yaml"], cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    new = {p for p in tmp_path.rglob("*")} - before
    assert {p.parent for p in new} == {work / "out"}, sorted(map(str, new))
    written = {unquote(p.name.removesuffix(".txt")) for p in new}
    assert written == {*TRAVERSAL, "plain"}
    assert all(p.read_text().split() == ["1", "0"] for p in new)


def test_json_scenarios_give_each_row_its_line(tmp_path: Path) -> None:
    sc = tmp_path / "sc.json"
    sc.write_text('[\n  {"key": "a", "e.iters": 1},\n\n  {"key": "a"}\n]\n')
    with pytest.raises(ModelError, match=r"sc\.json line 4: duplicate key 'a' \(first at sc\.json line 2\)"):
        load_scenarios(sc)
    sc.write_text('[{"key": "a"},\n {"key": "b",}]')
    with pytest.raises(ModelError, match=r"sc\.json:2: JSON syntax error at line 2"):
        load_scenarios(sc)
    sc.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]")
    with pytest.raises(ModelError, match="nested too deeply"):
        load_scenarios(sc)
