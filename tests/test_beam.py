"""The Beam lowering on the DirectRunner: records, failures per key, scenarios files, plan."""

from __future__ import annotations

import csv
from pathlib import Path
import shutil
import subprocess

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import CONFORMANCE, ROOT, cli_command


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def copy_case(name: str, dst: Path) -> Path:
    shutil.copytree(CONFORMANCE / "cases" / name, dst, ignore=shutil.ignore_patterns("expected"))
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def records(path: Path) -> pa.Table:
    return ds.dataset(str(path), format="parquet").to_table().sort_by(
        [("key", "ascending"), ("source", "ascending"), ("target", "ascending"), ("step", "ascending")])


@pytest.mark.slow
def test_record_every_message_fused_equals_unfused(tmp_path: Path) -> None:
    work = copy_case("circular", tmp_path / "c")
    (work / "scen.yaml").write_text(yaml.safe_dump([{"key": "x", "a.iters": 4}, {"key": "y", "a.iters": 6}]))
    for stages in ("fused", "component"):
        proc = cli("process", "run", "model.yaml", "--scenarios", "scen.yaml", "--stages", stages,
                   "--record", f"rec-{stages}", cwd=work)
        assert proc.returncode == 0, proc.stderr
    fused, unfused = records(work / "rec-fused"), records(work / "rec-component")
    assert fused.equals(unfused)
    assert fused.column_names == ["key", "step", "source", "target", "value", "number", "kind", "event_type"]
    rows = fused.to_pylist()
    # key x: a sends 4 values on one connector; c and b step 4 times, each sends on one.
    x = [r for r in rows if r["key"] == "x"]
    assert len(x) == 12
    b_to_c = [(r["step"], r["value"]) for r in x if r["source"] == "b.out_1"]
    assert b_to_c == [(0, "0"), (1, "2"), (2, "4"), (3, "6")]
    assert len([r for r in rows if r["key"] == "y"]) == 18
    assert all(r["number"] == float(r["value"]) for r in rows)


@pytest.mark.slow
def test_record_json_encodes_non_scalars(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text('''
from plugboard_beam.component import Component, IOController as IO
class S(Component):
    io = IO(outputs=["v"])
    def __init__(self, **kw):
        super().__init__(**kw); self._i = 0
    def step(self):
        self._i += 1
        if self._i > 2:
            self.io.close_sync(); return
        self.v = {"i": self._i, "xs": [1, 2]} if self._i == 1 else "text"
class T(Component):
    io = IO(inputs=["v"])
    def step(self):
        pass
''')
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"plugboard": {"process": {"args": {
        "components": [{"type": "p.S", "args": {"name": "s"}}, {"type": "p.T", "args": {"name": "t"}}],
        "connectors": [{"source": "s.v", "target": "t.v"}]}}}}))
    proc = cli("process", "run", "m.yaml", "--record", "rec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = records(tmp_path / "rec").to_pylist()
    assert [(r["step"], r["value"], r["number"]) for r in rows] == [
        (0, '{"i": 1, "xs": [1, 2]}', None), (1, '"text"', None)]
    assert {r["key"] for r in rows} == {"default"}


FAILING = '''
from plugboard_beam.component import Component, IOController as IO

class Emit(Component):
    io = IO(outputs=["x"])
    def __init__(self, n, **kw):
        super().__init__(**kw); self._n = n; self._i = 0
    async def step(self):
        if self._i >= self._n:
            await self.io.close(); return
        self._i += 1; self.x = self._i

class Fragile(Component):
    io = IO(inputs=["x"], outputs=["y"])
    def __init__(self, fail_at, **kw):
        super().__init__(**kw); self._fail_at = fail_at
    async def step(self):
        if self.x == self._fail_at:
            raise RuntimeError(f"broke at {self.x}")
        self.y = self.x

class Writer(Component):
    io = IO(inputs=["y"])
    def __init__(self, path, **kw):
        super().__init__(**kw); self._path = path
    async def init(self):
        self._f = open(self._path, "w")
    async def step(self):
        self._f.write(f"{self.y}\\n")
    async def destroy(self):
        self._f.write("destroyed\\n"); self._f.close()
'''

FAILING_MODEL = {"plugboard": {"process": {"args": {
    "components": [{"type": "fparts.Emit", "args": {"name": "e", "n": 6}},
                   {"type": "fparts.Fragile", "args": {"name": "frag", "fail_at": -1}},
                   {"type": "fparts.Writer", "args": {"name": "w", "path": "out/{key}.txt"}}],
    "connectors": [{"source": "e.x", "target": "frag.x"}, {"source": "frag.y", "target": "w.y"}]}}}}


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--runner", "local"], [], ["--stages", "component"]])
def test_failing_key_is_reported_and_others_complete(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "fparts.py").write_text(FAILING)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(FAILING_MODEL))
    (tmp_path / "out").mkdir()
    with (tmp_path / "s.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "frag.fail_at"])
        w.writerows([["k0", ""], ["k1", "3"], ["k2", ""], ["k3", ""]])
    proc = cli("process", "run", "m.yaml", "--scenarios", "s.csv", *args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 of 4 model instance(s) failed" in proc.stderr
    assert "component 'frag' (key 'k1') failed in step 2" in proc.stderr and "broke at 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    for k in ("k0", "k2", "k3"):
        assert (tmp_path / "out" / f"{k}.txt").read_text().split() == ["1", "2", "3", "4", "5", "6", "destroyed"]
    assert (tmp_path / "out" / "k1.txt").read_text().split() == ["1", "2", "destroyed"]


@pytest.mark.slow
def test_scenario_formats_agree(tmp_path: Path) -> None:
    rows = [{"key": f"s{i}", "component-a.iters": i + 2} for i in range(3)]
    outputs = {}
    for fmt in ("yaml", "csv", "parquet"):
        work = tmp_path / fmt
        shutil.copytree(ROOT / "specs" / "hello", work)
        scen = work / f"scen.{fmt}"
        if fmt == "yaml":
            scen.write_text(yaml.safe_dump(rows))
        elif fmt == "csv":
            with scen.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        else:
            pq.write_table(pa.Table.from_pylist(rows), scen)
        proc = cli("process", "run", "my-model.yaml", "--scenarios", scen.name,
                   "-p", "component-b.path=b-{key}.txt", cwd=work)
        assert proc.returncode == 0, proc.stderr
        outputs[fmt] = {p.name: p.read_text() for p in sorted(work.glob("b-*.txt"))}
    assert outputs["yaml"] == outputs["csv"] == outputs["parquet"]
    assert outputs["yaml"]["b-s1.txt"].split() == ["0", "2", "4"]


@pytest.mark.slow
def test_bad_scenarios_are_user_errors(tmp_path: Path) -> None:
    work = tmp_path / "h"
    shutil.copytree(ROOT / "specs" / "hello", work)
    (work / "nokey.yaml").write_text("- {component-a.iters: 3}\n- {key: a, component-a.iters: 3}\n")
    (work / "badcomp.yaml").write_text("- {key: a, component-z.iters: 3}\n")
    (work / "badarg.yaml").write_text("- {key: a, component-a.itres: 3}\n")
    (work / "dup.csv").write_text("key,component-a.iters\na,1\na,2\n")
    for name, words in [("nokey.yaml", ["line 1", "no 'key'"]),
                        ("badcomp.yaml", ["scenario 'a'", "unknown component 'component-z'"]),
                        ("badarg.yaml", ["scenario 'a'", "unknown argument 'itres'"]),
                        ("dup.csv", ["line 3", "duplicate key 'a'"])]:
        proc = cli("process", "run", "my-model.yaml", "--scenarios", name, cwd=work)
        assert proc.returncode == 2, name
        assert all(w in proc.stderr for w in words), (name, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_compile_prints_plan_for_loop_model(tmp_path: Path) -> None:
    model = ROOT / "benchmarks" / "models" / "loop.yaml"
    proc = cli("process", "compile", str(model), cwd=tmp_path)
    assert proc.returncode == 0
    assert "fused loop: mix -> scale -> mix" in proc.stdout
    proc = cli("process", "compile", str(model), "--stages", "component", cwd=tmp_path)
    assert "3 stage(s)" in proc.stdout and "shuffle by key" in proc.stdout


TUPLES = '''
from plugboard_beam.component import Component, IOController as IO
class S(Component):
    io = IO(outputs=["v"])
    def __init__(self, **kw):
        super().__init__(**kw); self._i = 0
    def step(self):
        self._i += 1
        if self._i > 3:
            self.io.close_sync(); return
        self.v = [1, {"a": 2.5}] if self._i < 3 else (1, 2)
class T(Component):
    io = IO(inputs=["v"])
    def step(self):
        pass
'''


def test_record_refuses_values_json_cannot_hold_and_names_them(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(TUPLES)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"plugboard": {"process": {"args": {
        "components": [{"type": "p.S", "args": {"name": "s"}}, {"type": "p.T", "args": {"name": "t"}}],
        "connectors": [{"source": "s.v", "target": "t.v"}]}}}}))
    proc = cli("process", "run", "m.yaml", "--record", "rec", cwd=tmp_path)
    assert proc.returncode == 1
    assert ("component 's' failed in step 2 (counting from 0), recording output 'v': TypeError: the value is a "
            "tuple, which JSON cannot record losslessly") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_record_destination_is_checked_before_the_run(tmp_path: Path) -> None:
    work = tmp_path / "h"
    shutil.copytree(ROOT / "specs" / "hello", work)
    (work / "file.txt").write_text("")
    proc = cli("process", "run", "my-model.yaml", "--record", "file.txt/rec", cwd=work)
    assert proc.returncode == 2 and "--record file.txt/rec: cannot write there (Not a directory)" in proc.stderr
    assert not (work / "b.txt").exists()  # nothing ran
    proc = cli("process", "run", "my-model.yaml", "--record", "s3://x/y", cwd=work)
    assert proc.returncode == 2 and "give a local folder or gs://BUCKET/PATH" in proc.stderr


def test_record_to_gcs_without_credentials_fails_fast_and_clearly(tmp_path: Path) -> None:
    import os
    import time

    work = tmp_path / "h"
    shutil.copytree(ROOT / "specs" / "hello", work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env["CLOUDSDK_CONFIG"] = str(tmp_path / "no-gcloud")  # no application-default credentials file
    start = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "my-model.yaml", "--record", "gs://my-bucket/rec"],
                          cwd=work, capture_output=True, text=True, timeout=120, env=env)
    took = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert took < 30
    assert "--record gs://my-bucket/rec: no Google Cloud credentials found" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "b.txt").exists()
