"""Batch runs with values text cannot hold (issue 15.1): a key emitting a 5,000-digit integer or
a list nested 100,000 deep fails alone, named, while every other key's records are written;
writers publish strict JSON only (issue 15.6)."""

from __future__ import annotations

from pathlib import Path
import subprocess
import textwrap

import pyarrow.dataset as ds
import pytest
import yaml

from conftest import cli_command

PARTS = '''
from plugboard_beam.component import Component, IOController as IO

class Src(Component):
    io = IO(outputs=["v"])

    def __init__(self, kind: str = "ok", **kw):
        super().__init__(**kw)
        self._kind, self._i = kind, 0

    def step(self):
        self._i += 1
        if self._i > 3:
            self.io.close_sync()
            return
        if self._i == 2 and self._kind == "bigint":
            self.v = 10**5000 - 1
        elif self._i == 2 and self._kind == "deep":
            deep = []
            for _ in range(100_000):
                deep = [deep]
            self.v = deep
        elif self._i == 2 and self._kind == "nan":
            self.v = float("nan")
        else:
            self.v = self._i * 1.5

class Sink(Component):
    io = IO(inputs=["v"])

    def step(self):
        pass
'''


def model(tmp_path: Path, writer: bool = False) -> None:
    (tmp_path / "p.py").write_text(textwrap.dedent(PARTS))
    components = [{"type": "p.Src", "args": {"name": "src"}}, {"type": "p.Sink", "args": {"name": "sink"}}]
    connectors = [{"source": "src.v", "target": "sink.v"}]
    if writer:
        components.append({"type": "plugboard_beam.library.JsonLinesWriter",
                           "args": {"name": "out", "path": "out-{key}.jsonl", "fields": ["v"]}})
        connectors.append({"source": "src.v", "target": "out.v"})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"plugboard": {"process": {"args": {
        "components": components, "connectors": connectors}}}}))


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", "m.yaml", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_record_a_5000_digit_int_and_a_deep_list_fail_their_keys_only(tmp_path: Path) -> None:
    model(tmp_path)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(
        [{"key": "a"}, {"key": "big", "src.kind": "bigint"}, {"key": "b"}, {"key": "deep", "src.kind": "deep"},
         {"key": "c"}]))
    proc = run(tmp_path, "--scenarios", "keys.yaml", "--record", "rec")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "2 of 5 model instance(s) failed" in proc.stderr, proc.stderr
    assert ("component 'src' (key 'big') failed in step 1 (counting from 0), recording output 'v': TypeError: the "
            "value is an integer of 5,000 digits") in proc.stderr, proc.stderr
    assert ("component 'src' (key 'deep') failed in step 1 (counting from 0), recording output 'v': TypeError: "
            "the value") in proc.stderr and "nested deeper than 64" in proc.stderr, proc.stderr
    rows = ds.dataset(str(tmp_path / "rec"), format="parquet").to_table().to_pylist()
    got = sorted((r["key"], r["step"], r["number"]) for r in rows)
    good = [(k, s, (s + 1) * 1.5) for k in "abc" for s in range(3)]
    assert [g for g in got if g[0] in "abc"] == good
    # the failed keys' values before the failure are recorded (what they sent before failing)
    assert [g for g in got if g[0] not in "abc"] == [("big", 0, 1.5), ("deep", 0, 1.5)]


def test_local_json_lines_writer_refuses_nan_for_its_key_only(tmp_path: Path) -> None:
    model(tmp_path, writer=True)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"key": "a"}, {"key": "n", "src.kind": "nan"}]))
    proc = run(tmp_path, "--runner", "local", "--scenarios", "keys.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "component 'out' (key 'n') failed in step 1" in proc.stderr, proc.stderr
    assert "the float nan at ['v'] is not JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "out-a.jsonl").read_text() == '{"v": 1.5}\n{"v": 3.0}\n{"v": 4.5}\n'
    assert "NaN" not in (tmp_path / "out-n.jsonl").read_text()


ADD = '''
from plugboard_beam.component import Component, IOController as IO

class Add(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self.y = self.x + 1.0
'''

KEYED = """
plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.FileReader
        args: {{name: src, path: in.csv, key_column: asset, field_names: [t, x]}}
      - {{type: add_parts.Add, args: {{name: add}}}}
      - type: plugboard_beam.library.FileWriter
        args: {{name: dst, path: '{out}', field_names: [t, y]}}
      connectors:
      - {{source: src.x, target: add.x}}
      - {{source: src.t, target: dst.t}}
      - {{source: add.y, target: dst.y}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["direct", "local"])
def test_text_in_a_numeric_column_of_a_keyed_csv_fails_one_key_only(tmp_path: Path, runner: str) -> None:
    """One text cell made the whole CSV column text, so every key failed and no rows were
    written; a key's column is now typed as that key's own file would be."""
    (tmp_path / "add_parts.py").write_text(textwrap.dedent(ADD))
    out = "out/levels.parquet" if runner == "direct" else "out/levels-{key}.parquet"
    (tmp_path / "m.yaml").write_text(textwrap.dedent(KEYED.format(out=out)).lstrip())
    keys = [f"k{i}" for i in range(6)]
    rows = [f"{k},{t},{'abc' if (k, t) == ('k3', 1) else float(t + 1)}" for k in keys for t in range(3)]
    (tmp_path / "in.csv").write_text("asset,t,x\n" + "\n".join(rows) + "\n")
    proc = run(tmp_path, "--runner", runner)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 6 model instance(s) failed" in proc.stderr, proc.stderr
    assert "component 'add' (key 'k3') failed in step 0" in proc.stderr and "Traceback" not in proc.stderr
    got = ds.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    if runner == "local":  # one file per key, no key column
        got = [{**r, "key": f.stem.removeprefix("levels-")} for f in sorted((tmp_path / "out").iterdir())
               for r in ds.dataset(str(f), format="parquet").to_table().to_pylist() if f.stat().st_size]
    assert sorted((r["key"], r["t"], r["y"]) for r in got) == [(k, t, t + 2.0) for k in keys if k != "k3"
                                                               for t in range(3)]


BIG_ADD = '''
from plugboard_beam.component import Component, IOController as IO

class Add(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        big = self.x == 2.0 and self._plugboard_beam_key == "k3"
        self.y = 10**5000 - 1 if big else self.x + 1.0
'''


@pytest.mark.slow
def test_a_5000_digit_int_in_a_shared_csv_sink_fails_its_key_only(tmp_path: Path) -> None:
    """The CSV shard holding it raised OverflowError (exit 3, "internal error"); now the key's rows
    are left out of the file, the key fails (writer, key, step, reason) and the rest is written."""
    (tmp_path / "add_parts.py").write_text(textwrap.dedent(BIG_ADD))
    (tmp_path / "m.yaml").write_text(textwrap.dedent(KEYED.format(out="out/levels.csv")).lstrip())
    keys = [f"k{i}" for i in range(6)]
    (tmp_path / "in.csv").write_text("asset,t,x\n" + "\n".join(f"{k},{t},{float(t + 1)}" for k in keys
                                                              for t in range(3)) + "\n")
    proc = run(tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 6 model instance(s) failed" in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert "component 'dst' (key 'k3') failed in writing its rows (step 1" in proc.stderr
    assert "a value cannot be written (OverflowError" in proc.stderr
    lines = sorted(line for f in (tmp_path / "out").iterdir() for line in f.read_text().splitlines()[1:])
    assert lines == sorted(f"{k},{t},{t},{t + 2.0}" for k in keys if k != "k3" for t in range(3))
