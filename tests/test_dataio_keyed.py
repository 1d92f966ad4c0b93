"""One table, many instances: readers with ``key_column`` lowered to Beam reads grouped by key,
many-key writers through Beam sinks; the tank twin replayed from a Parquet history."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import shutil
import sqlite3
import subprocess
import textwrap
import typing as _t

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, cli_command

REPLAY = ROOT / "specs" / "tank-replay"


def make_history() -> _t.Any:
    spec = importlib.util.spec_from_file_location("make_history", REPLAY / "make_history.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make


def replay_folder(tmp_path: Path, assets: int, rows: int) -> tuple[Path, dict[str, list[float]]]:
    folder = tmp_path / "replay"
    folder.mkdir()
    shutil.copy(REPLAY / "replay.yaml", folder)
    shutil.copy(REPLAY / "tank_parts.py", folder)  # follows the symlink to specs/tank
    readings = make_history()(folder, assets, rows, seed=7, row_group=17)
    return folder, readings


def cli(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout)


def tank_levels(inflows: list[float]) -> list[float]:
    """The twin's levels, computed here the way tank_parts computes them."""
    level, outflow, out = 0.0, 0.0, []
    for v in inflows:
        level = min(100.0, max(0.0, level + v - outflow))
        out.append(round(level, 6))
        outflow = round(0.2 * round(level, 6), 6)
    return out


def by_key(rows: list[dict[str, _t.Any]]) -> dict[str, list[dict[str, _t.Any]]]:
    out: dict[str, list[dict[str, _t.Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["key"], r["step"])):
        out.setdefault(r["key"], []).append(r)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stages", ["fused", "component"])
def test_replay_from_parquet_history_per_asset(tmp_path: Path, stages: str) -> None:
    folder, readings = replay_folder(tmp_path, assets=12, rows=9)
    proc = cli(folder, "run", "replay.yaml", "--stages", stages)
    assert proc.returncode == 0, proc.stderr
    shards = sorted((folder / "out").glob("levels-*-of-*.parquet"))
    assert shards, list((folder / "out").iterdir())
    got = by_key(ds.dataset([str(p) for p in shards]).to_table().to_pylist())
    assert sorted(got) == sorted(readings)  # the keys come from the data
    for key, inflows in readings.items():
        rows = got[key]
        assert [r["step"] for r in rows] == list(range(len(inflows)))
        assert [r["t"] for r in rows] == list(range(len(inflows)))  # order_by t, though shuffled in the file
        assert [r["level"] for r in rows] == pytest.approx(tank_levels(inflows))
    con = sqlite3.connect(folder / "levels.db")
    db = con.execute("SELECT key, step, t, level FROM levels ORDER BY key, step").fetchall()
    assert len(db) == 12 * 9
    assert {(k, s): lv for k, s, _, lv in db} == {(r["key"], r["step"]): r["level"]
                                                 for rows in got.values() for r in rows}


@pytest.mark.slow
def test_local_runner_with_scenarios_filters_the_same_rows(tmp_path: Path) -> None:
    """The local runner (no Beam) gives each key's instance the rows of its key, in order."""
    folder, readings = replay_folder(tmp_path, assets=3, rows=5)
    keys = sorted(readings)
    (folder / "scenarios.yaml").write_text(json.dumps([{"key": k} for k in keys]))
    proc = cli(folder, "run", "replay.yaml", "--runner", "local", "--scenarios", "scenarios.yaml",
               "-p", "levels.path=out/{key}.csv")
    assert proc.returncode == 0, proc.stderr
    for key in keys:
        lines = (folder / "out" / f"{key}.csv").read_text().splitlines()
        assert lines[0] == "t,level,outflow,high"
        assert [float(x.split(",")[1]) for x in lines[1:]] == pytest.approx(tank_levels(readings[key]))


KEYED = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.{reader}
            args: {{name: src, {source}, key_column: asset, field_names: [t, x]}}
          - type: plugboard_beam.library.FileWriter
            args: {{name: dst, path: out/rows.csv, field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


def read_csv_shards(folder: Path) -> list[str]:
    return sorted(line for p in sorted((folder / "out").glob("rows-*-of-*.csv"))
                  for line in p.read_text().splitlines()[1:])


@pytest.mark.slow
def test_keyed_csv_row_without_key_is_reported_and_other_keys_finish(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("asset,t,x\na,0,1.5\nb,0,2.5\n,1,9.9\na,1,3.5\n")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: in.csv")).lstrip())
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "'src'" in proc.stderr and "in.csv" in proc.stderr and "row 2" in proc.stderr
    assert "'asset'" in proc.stderr and "Traceback" not in proc.stderr
    # file order (no order_by): a's rows in the order they appear
    assert read_csv_shards(tmp_path) == ["a,0,0,1.5", "a,1,1,3.5", "b,0,0,2.5"]


@pytest.mark.slow
def test_keyed_sql_reader(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE r (asset TEXT, t INTEGER, x REAL)")
    con.executemany("INSERT INTO r VALUES (?, ?, ?)", [("k2", 1, 4.0), ("k1", 0, 1.0), ("k2", 0, 3.0), ("k1", 1, 2.0)])
    con.commit()
    con.close()
    body = KEYED.format(reader="SQLReader", source="connection_string: 'sqlite:///db.sqlite', "
                        "query: 'SELECT * FROM r WHERE x < :limit', params: {limit: 3.5}, order_by: t")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 0, proc.stderr
    assert read_csv_shards(tmp_path) == ["k1,0,0,1.0", "k1,1,1,2.0", "k2,0,0,3.0"]


@pytest.mark.slow
@pytest.mark.parametrize(("content", "words"), [
    (None, "no such file"),
    (b"not parquet", "cannot be read: ArrowInvalid"),
    ("columns", "no column(s) ['x']"),
])
def test_keyed_bad_file_is_a_clear_error(tmp_path: Path, content: bytes | str | None, words: str) -> None:
    if content == "columns":
        pq.write_table(pa.table({"asset": ["a"], "t": [0], "y": [1.0]}), tmp_path / "in.parquet")
    elif isinstance(content, bytes):
        (tmp_path / "in.parquet").write_bytes(content)
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: in.parquet")).lstrip())
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1
    assert "'src'" in proc.stderr and "in.parquet" in proc.stderr and words in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_dataflow_dry_run_contains_the_beam_read_and_sinks(tmp_path: Path) -> None:
    folder, _ = replay_folder(tmp_path, assets=2, rows=2)
    job = tmp_path / "job"
    proc = cli(folder, "run", "replay.yaml", "--runner", "dataflow", "--dry-run", "--job-dir", str(job),
               "--project", "my-proj", "--region", "europe-west1", "--temp_location", "gs://bkt/tmp")
    assert proc.returncode == 0, proc.stderr
    names = json.dumps(json.loads((job / "pipeline.json").read_text()))
    for transform in ("Row groups of sensor", "Read sensor", "Group sensor by key", "Chunks of sensor",
                      "Write levels", "Insert db"):
        assert transform in names, transform


def test_keyed_read_leaves_the_stages(tmp_path: Path) -> None:
    from plugboard_beam.lowering.dataio import DataIO
    from plugboard_beam.lowering.plan import make_plan
    from plugboard_beam.spec import load_model

    folder, _ = replay_folder(tmp_path, assets=1, rows=1)
    model = load_model(folder / "replay.yaml")
    io = DataIO.of(model, make_plan(model.graph, "component"), 1)
    assert io.plan.external == ("sensor",)
    assert all("sensor" not in st.members for st in io.plan.stages)
    assert [r.name for r in io.reads] == ["sensor"] and io.reads[0].order_by == "t"
    assert sorted(s.name for s in io.sinks) == ["db", "levels"]


def test_single_key_writer_is_not_a_sink(tmp_path: Path) -> None:
    from plugboard_beam.lowering.dataio import DataIO
    from plugboard_beam.lowering.plan import make_plan
    from plugboard_beam.spec import load_model

    pq.write_table(pa.table({"t": [0]}), tmp_path / "a.parquet")
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""
        plugboard:
          process:
            args:
              components:
              - {type: plugboard_beam.library.FileReader, args: {name: r, path: a.parquet, field_names: [t]}}
              - {type: plugboard_beam.library.FileWriter, args: {name: w, path: b.csv, field_names: [t]}}
              connectors:
              - {source: r.t, target: w.t}
    """).lstrip())
    model = load_model(tmp_path / "m.yaml")
    io = DataIO.of(model, make_plan(model.graph), 1)
    assert io.reads == () and io.sinks == () and io.plan.external == ()
    assert DataIO.of(model, make_plan(model.graph), 3).sinks[0].name == "w"  # many keys: one sink


def test_readers_are_refused_in_streaming(tmp_path: Path) -> None:
    from plugboard_beam.exceptions import UserError
    from plugboard_beam.lowering.dataio import refuse_in_streaming
    from plugboard_beam.spec import load_model

    folder, _ = replay_folder(tmp_path, assets=1, rows=1)
    with pytest.raises(UserError, match=r"--streaming: data reader\(s\) 'sensor' \(plugboard_beam.library.file_io"):
        refuse_in_streaming(load_model(folder / "replay.yaml"))
    refuse_in_streaming(load_model(ROOT / "specs" / "tank" / "tank.yaml"))  # Pub/Sub readers are fine


def write_doubling_model(tmp_path: Path, csv: str) -> None:
    """A keyed CSV reader (``in.csv``: asset, t, x) -> y = 2 * float(x) -> out/rows.csv shards."""
    (tmp_path / "parts.py").write_text(textwrap.dedent("""
        from plugboard_beam.component import Component, IOController as IO
        class Num(Component):
            io = IO(inputs=["x"], outputs=["y"])
            async def step(self) -> None:
                self.y = float(self.x) * 2
    """))
    (tmp_path / "in.csv").write_text(csv)
    (tmp_path / "model.yaml").write_text(textwrap.dedent("""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.FileReader
                args: {name: src, path: in.csv, key_column: asset, field_names: [t, x]}
              - {type: parts.Num, args: {name: num}}
              - type: plugboard_beam.library.FileWriter
                args: {name: dst, path: out/rows.csv, field_names: [t, y]}
              connectors:
              - {source: src.x, target: num.x}
              - {source: src.t, target: dst.t}
              - {source: num.y, target: dst.y}
    """).lstrip())


@pytest.mark.slow
def test_one_keys_bad_value_does_not_lose_the_others(tmp_path: Path) -> None:
    write_doubling_model(tmp_path, "asset,t,x\na,0,1\nb,0,2\nb,1,oops\na,1,3\nc,0,5\n")
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1
    assert "'num'" in proc.stderr and "'b'" in proc.stderr and "step 1" in proc.stderr and "oops" in proc.stderr
    rows = read_csv_shards(tmp_path)
    assert [r for r in rows if r.startswith(("a,", "c,"))] == ["a,0,0,2.0", "a,1,1,6.0", "c,0,0,10.0"]
    assert all(r.startswith(("a,", "b,", "c,")) for r in rows)


def test_data_keys_for_runners_without_beam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugboard_beam.lowering.dataio import data_keys
    from plugboard_beam.spec import load_model

    (tmp_path / "in.csv").write_text("asset,t,x\nb,0,1\na,0,2\n,1,3\nb,1,4\n")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: in.csv")).lstrip())
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the working folder, as in plugboard
    assert data_keys(load_model(tmp_path / "model.yaml")) == ["b", "a"]
    assert data_keys(load_model(ROOT / "specs" / "hello" / "my-model.yaml")) is None


@pytest.mark.slow
def test_many_key_sql_sink_needs_a_key_column(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("asset,t,x\na,0,1.5\nb,0,2.5\n")
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE out (t INTEGER, x REAL)")
    con.commit()
    con.close()
    body = KEYED.format(reader="FileReader", source="path: in.csv").replace(
        "type: plugboard_beam.library.FileWriter\n            args: {name: dst, path: out/rows.csv,",
        "type: plugboard_beam.library.SQLWriter\n            args: {name: dst, connection_string: "
        "'sqlite:///db.sqlite', table: out,")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "'dst'" in proc.stderr and "table 'out'" in proc.stderr and "no 'key' column" in proc.stderr
    assert "'a'" in proc.stderr and "Traceback" not in proc.stderr


def test_scenarios_cannot_override_a_keyed_reader(tmp_path: Path) -> None:
    from plugboard_beam.exceptions import UserError
    from plugboard_beam.lowering.dataio import DataIO
    from plugboard_beam.lowering.plan import make_plan
    from plugboard_beam.spec import load_model

    folder, _ = replay_folder(tmp_path, assets=1, rows=1)
    model = load_model(folder / "replay.yaml")
    with pytest.raises(UserError, match=r"scenarios override sensor.path, but 'sensor' has key_column"):
        DataIO.of(model, make_plan(model.graph), 2, {"sensor.path", "tank.capacity"})
    io = DataIO.of(model, make_plan(model.graph), 2, {"tank.capacity", "levels.path"})
    assert io.reads and [s.name for s in io.sinks] == ["db"]  # levels.path differs per key: written per key


@pytest.mark.slow
def test_local_runner_takes_the_keys_from_the_data(tmp_path: Path) -> None:
    """Without scenarios, --runner local runs one instance per key found in the keyed data; a
    file writer shared by the keys is refused (it would be overwritten), {key} in its path works."""
    folder, readings = replay_folder(tmp_path, assets=3, rows=4)
    proc = cli(folder, "run", "replay.yaml", "--runner", "local")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "3 keys would each overwrite the file of 'levels'" in proc.stderr
    assert not (folder / "out").exists()  # refused before anything ran
    proc = cli(folder, "run", "replay.yaml", "--runner", "local", "-p", "levels.path=out/{key}.csv")
    assert proc.returncode == 0, proc.stderr
    for key, inflows in readings.items():
        lines = (folder / "out" / f"{key}.csv").read_text().splitlines()
        assert [float(x.split(",")[1]) for x in lines[1:]] == pytest.approx(tank_levels(inflows))
    con = sqlite3.connect(folder / "levels.db")
    assert sorted(con.execute("SELECT DISTINCT key FROM levels").fetchall()) == [(k,) for k in sorted(readings)]


@pytest.mark.slow
def test_keyed_csv_glob_reads_every_file_as_a_part(tmp_path: Path) -> None:
    """A CSV history split over files (one per day) read through a glob: each file is a part read
    in parallel; a key's rows come from every file in order; a row without key names its file."""
    (tmp_path / "days").mkdir()
    (tmp_path / "days" / "d1.csv").write_text("asset,t,x\na,0,1.5\nb,0,2.5\n")
    (tmp_path / "days" / "d2.csv").write_text("asset,t,x\nb,1,3.5\n,9,9.9\na,1,4.5\n")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: 'days/*.csv', order_by: t")).lstrip())
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "row 1 (counting from 0) of file" in proc.stderr and "d2.csv" in proc.stderr, proc.stderr
    assert read_csv_shards(tmp_path) == ["a,0,0,1.5", "a,1,1,4.5", "b,0,0,2.5", "b,1,1,3.5"]
    (tmp_path / "days" / "d3.csv").write_text("asset,t\n")  # a file without the 'x' column
    (tmp_path / "days" / "d2.csv").write_text("asset,t,x\nb,1,3.5\na,1,4.5\n")
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1
    assert "d3.csv" in proc.stderr and "no column(s) ['x']" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("reader", ["FileReader", "SQLReader"])
def test_local_runner_reads_a_keyed_table_once_for_all_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           reader: str) -> None:
    """--runner local hands every key's reader the table read once (``KeyedRows``): 5 keys read
    it once, not 5 times, and each key gets the rows it would read alone, in order."""
    from plugboard_beam.library import file_io, sql_io
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.runners.local import LocalRunner
    from plugboard_beam.spec import load_model

    rows = [("e", 1, 5.0), ("a", 0, 1.0), ("b", 0, 2.0), ("a", 1, 3.0), (None, 0, 9.0), ("c", 0, 4.0),
            ("d", 0, 6.0), ("e", 0, 7.0)]
    if reader == "FileReader":
        (tmp_path / "in.csv").write_text("asset,t,x\n" + "".join(f"{a or ''},{t},{x}\n" for a, t, x in rows))
        source = "path: in.csv, order_by: t"
    else:
        con = sqlite3.connect(tmp_path / "in.db")
        con.execute("CREATE TABLE r (asset TEXT, t INTEGER, x REAL)")
        con.executemany("INSERT INTO r VALUES (?, ?, ?)", rows)
        con.commit()
        con.close()
        source = "connection_string: 'sqlite:///in.db', query: 'SELECT * FROM r', order_by: t"
    body = KEYED.format(reader=reader, source=source).replace("out/rows.csv", "'out/{key}.csv'")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    monkeypatch.chdir(tmp_path)
    reads: list[str] = []
    for module, name in ((file_io, "read_table"), (sql_io, "_engine")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _o=original, _n=name, **k: reads.append(_n) or _o(*a, **k))
    report = LocalRunner().run(load_model(tmp_path / "model.yaml"), RunOptions())
    assert report.keys == 5
    assert len(reads) <= 2, reads  # the keys found in the data, then the table: never once per key
    got = {k: (tmp_path / "out" / f"{k}.csv").read_text().splitlines()[1:] for k in "abcde"}
    assert got == {"a": ["0,1.0", "1,3.0"], "b": ["0,2.0"], "c": ["0,4.0"], "d": ["0,6.0"], "e": ["0,7.0", "1,5.0"]}


def test_keyed_rows_chunks_a_keys_rows_in_order() -> None:
    from plugboard_beam.library.data import KeyedRows

    rows = KeyedRows({"k": [1, "1", None, 2, 1], "t": [3, 1, 0, 0, None], "x": [10, 11, 12, 13, 14]}, "k", "t")
    assert list(rows.chunks("1", ["x"], None)) == [{"x": [11, 10, 14]}]  # keys as text; nulls of t last
    assert list(rows.chunks("1", ["x", "t"], 2, skip=1)) == [{"x": [10, 14], "t": [3, None]}]
    assert list(rows.chunks("none", ["x"], None)) == [] and "None" not in rows.index
