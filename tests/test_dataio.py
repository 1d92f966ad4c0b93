"""Data in and out: FileReader/FileWriter, SQLReader/SQLWriter (SQLite), bad input, the dataio
conformance case recorded from plugboard 0.9.0."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
import shlex
import sqlite3
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import checker, cli_command
from plugboard_beam.exceptions import IOStreamClosedError
from plugboard_beam.library import DataReader, DataWriter, FileReader, SQLReader, SQLWriter
from plugboard_beam.library.file_io import csv_text
from plugboard_beam.spec import load_model

HERE = Path(__file__).resolve().parent
DATAIO = HERE / "conformance" / "dataio"

ENGINES = {"local": "--runner local", "direct": "", "direct-unfused": "--stages component"}




@pytest.mark.slow
@pytest.mark.parametrize("engine", list(ENGINES))
def test_dataio_conformance(engine: str) -> None:
    cmd = [sys.executable, str(checker()), "--cli", shlex.join(cli_command()),
           f"--run-args={ENGINES[engine]}", "--cases", str(DATAIO), "--no-invalid", "--timeout", "240"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS gzread" in proc.stdout and " 0 failed" in proc.stdout


def test_module_paths_are_plugboards() -> None:
    from plugboard_beam.library.data_reader import DataReader as DR
    from plugboard_beam.library.data_writer import DataWriter as DW
    from plugboard_beam.library.file_io import FileReader as FR
    from plugboard_beam.library.sql_io import SQLWriter as SW

    assert (DR, DW, FR, SW) == (DataReader, DataWriter, FileReader, SQLWriter)


def test_csv_text_formats_numbers_like_pandas() -> None:
    got = csv_text(["t", "x", "mixed", "s", "b", "gap"],
                   [[0, 1], [0.1 + 0.2, 2.0], [1, 2.5], ["a,b", None], [True, False], [None, 3]], header=True)
    assert got == 't,x,mixed,s,b,gap\n0,0.30000000000000004,1.0,"a,b",True,\n1,2.0,2.5,,False,3.0\n'


def run_model(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    return subprocess.run([*cli_command(), "process", "run", "model.yaml", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


COPY = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.file_io.FileReader
            args: {{name: src, path: {src}, field_names: [t, x]{extra}}}
          - type: plugboard_beam.library.file_io.FileWriter
            args: {{name: dst, path: {dst}, field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


@pytest.mark.parametrize(("src", "dst"), [("in.parquet", "out.csv.gz"), ("in.csv", "out.parquet")])
def test_file_round_trip_local_runner(tmp_path: Path, src: str, dst: str) -> None:
    rows = {"t": [0, 1, 2], "x": [1.5, -2.25, 3.0]}
    if src.endswith(".parquet"):
        pq.write_table(pa.table(rows), tmp_path / src)
    else:
        (tmp_path / src).write_text("t,x\n0,1.5\n1,-2.25\n2,3.0\n")
    proc = run_model(tmp_path, COPY.format(src=src, dst=dst, extra=""), "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    if dst.endswith(".parquet"):
        assert pq.read_table(tmp_path / dst).to_pydict() == rows
    else:
        assert gzip.decompress((tmp_path / dst).read_bytes()).decode() == "t,x\n0,1.5\n1,-2.25\n2,3.0\n"


def test_chunked_reader_and_writer_give_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("t,x\n" + "".join(f"{i},{i / 4}\n" for i in range(10)))
    body = COPY.format(src="in.csv", dst="out.csv", extra=", chunk_size: 3").replace(
        "field_names: [t, x]}}\n          connectors", "field_names: [t, x], chunk_size: 4}}\n          connectors")
    proc = run_model(tmp_path, body, "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "in.csv").read_text()


# ------------------------------------------------------------------------------------- SQL
def make_db(path: Path) -> str:
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "readings" (asset TEXT, t INTEGER, "level in" REAL)')
    con.executemany('INSERT INTO "readings" VALUES (?, ?, ?)',
                    [("a", 0, 1.0), ("b", 0, 10.0), ("a", 1, 2.0), ("a", 2, 3.5)])
    con.execute('CREATE TABLE "out table" (key TEXT, step INTEGER, t INTEGER, x REAL, PRIMARY KEY (key, step))')
    con.commit()
    con.close()
    return f"sqlite:///{path}"


SQL_COPY = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.sql_io.SQLReader
            args:
              name: src
              connection_string: {url}
              query: 'SELECT t, "level in" AS x FROM readings WHERE asset = :asset ORDER BY t'
              params: {{asset: a}}
              field_names: [t, x]
          - type: plugboard_beam.library.sql_io.SQLWriter
            args: {{name: dst, connection_string: {url}, table: out table, field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


@pytest.mark.parametrize("runner", ["local", "direct"])
def test_sqlite_read_query_with_params_and_write_quoted_table(tmp_path: Path, runner: str) -> None:
    url = make_db(tmp_path / "db.sqlite")
    proc = run_model(tmp_path, SQL_COPY.format(url=url), "--runner", runner)
    assert proc.returncode == 0, proc.stderr
    con = sqlite3.connect(tmp_path / "db.sqlite")
    assert con.execute('SELECT key, step, t, x FROM "out table" ORDER BY step').fetchall() == [
        ("default", 0, 0, 1.0), ("default", 1, 1, 2.0), ("default", 2, 2, 3.5)]


def test_sql_writer_is_idempotent_on_key_and_step(tmp_path: Path) -> None:
    from plugboard_beam.library.sql_io import SQLTable

    url = make_db(tmp_path / "db.sqlite")
    table = SQLTable(url, "out table", None, ["t", "x"], "test")
    table.insert([("k1", 0, (0, 1.0)), ("k1", 1, (1, 2.0))])
    table.insert([("k1", 1, (1, 2.0)), ("k1", 2, (2, 3.0)), ("k2", 0, (0, 9.0))])  # a redelivery + new rows
    table.close()
    con = sqlite3.connect(tmp_path / "db.sqlite")
    assert con.execute('SELECT key, step, x FROM "out table" ORDER BY key, step').fetchall() == [
        ("k1", 0, 1.0), ("k1", 1, 2.0), ("k1", 2, 3.0), ("k2", 0, 9.0)]


def test_sql_table_name_is_never_pasted_into_sql(tmp_path: Path) -> None:
    from plugboard_beam.library.data import DataError
    from plugboard_beam.library.sql_io import SQLTable

    url = make_db(tmp_path / "db.sqlite")
    table = SQLTable(url, 'readings"; DROP TABLE "readings', None, ["t"], "w")
    with pytest.raises(DataError, match="no table"):
        table.insert([("k", 0, (1,))])
    con = sqlite3.connect(tmp_path / "db.sqlite")
    assert con.execute('SELECT count(*) FROM "readings"').fetchone() == (4,)


# ------------------------------------------------------------------------------- bad input
def failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("runner", ["local", "direct"])
def test_missing_file_names_component_and_path(tmp_path: Path, runner: str) -> None:
    err = failure(run_model(tmp_path, COPY.format(src="nope.csv", dst="out.csv", extra=""), "--runner", runner))
    assert "'src'" in err and "nope.csv" in err and "no such file" in err


def test_missing_column_names_it(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("t,y\n0,1\n")
    err = failure(run_model(tmp_path, COPY.format(src="in.csv", dst="out.csv", extra=""), "--runner", "local"))
    assert "'src'" in err and "in.csv" in err and "['x']" in err


def test_unparsable_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "in.parquet").write_text("not parquet")
    err = failure(run_model(tmp_path, COPY.format(src="in.parquet", dst="out.csv", extra=""), "--runner", "local"))
    assert "'src'" in err and "in.parquet" in err and "cannot be parsed" in err


def test_unparsable_value_names_component_and_row(tmp_path: Path) -> None:
    (tmp_path / "parts.py").write_text(textwrap.dedent("""
        from plugboard_beam.component import Component, IOController as IO
        class Num(Component):
            io = IO(inputs=["x"], outputs=["y"])
            async def step(self) -> None:
                self.y = float(self.x)
    """))
    (tmp_path / "in.csv").write_text("t,x\n0,1\n1,oops\n2,3\n")
    body = """
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.FileReader
                args: {name: src, path: in.csv, field_names: [t, x]}
              - {type: parts.Num, args: {name: num}}
              connectors:
              - {source: src.x, target: num.x}
    """
    err = failure(run_model(tmp_path, body, "--runner", "local"))
    assert "'num'" in err and "step 1" in err and "oops" in err


def test_missing_table_and_unreachable_database(tmp_path: Path) -> None:
    url = make_db(tmp_path / "db.sqlite")
    body = SQL_COPY.format(url=url).replace("FROM readings", "FROM no_such_table")
    err = failure(run_model(tmp_path, body, "--runner", "local"))
    assert "'src'" in err and "no_such_table" in err
    body = SQL_COPY.format(url="postgresql://nobody@127.0.0.1:9/none")
    err = failure(run_model(tmp_path, body, "--runner", "local"))
    assert "'src'" in err and "cannot reach database" in err and "127.0.0.1:9" in err


def test_bad_arguments_are_refused_at_validation(tmp_path: Path) -> None:
    body = COPY.format(src="in.xlsx", dst="out.csv", extra="")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    proc = subprocess.run([*cli_command(), "process", "validate", "model.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unsupported file format" in proc.stdout + proc.stderr


def test_reader_fields_are_outputs_writer_fields_are_inputs(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text(textwrap.dedent(COPY.format(src="a.csv", dst="b.csv", extra="")).lstrip())
    model = load_model(tmp_path / "model.yaml")
    assert model.graph.node("src").outputs == ("t", "x") and model.graph.node("dst").inputs == ("t", "x")
    assert json.dumps(sorted(model.graph.node("src").inputs)) == "[]"


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_reader_restored_from_a_pickle_goes_on_where_it_stopped(tmp_path: Path, chunk_size: int | None) -> None:
    import asyncio
    import pickle

    (tmp_path / "in.csv").write_text("t\n" + "".join(f"{i}\n" for i in range(7)))
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE r (t INTEGER)")
    con.executemany("INSERT INTO r VALUES (?)", [(i,) for i in range(7)])
    con.commit()
    con.close()
    readers: list[DataReader] = [
        FileReader(name="f", path=str(tmp_path / "in.csv"), field_names=["t"], chunk_size=chunk_size),
        SQLReader(name="s", connection_string=f"sqlite:///{tmp_path / 'db.sqlite'}", query="SELECT t FROM r ORDER BY t",
                  field_names=["t"], chunk_size=chunk_size),
    ]
    for reader in readers:
        got = []
        asyncio.run(reader.init())
        for i in range(20):
            if i == 3:
                reader = pickle.loads(pickle.dumps(reader))  # as when a stage's state moves between workers
            try:
                asyncio.run(reader.step())
            except IOStreamClosedError:  # after the last row, as plugboard's readers
                break
            got.append(reader.t)
        assert got == list(range(7)) and reader.io.is_closed, reader.name


def test_order_by_without_key_column(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("t,x\n2,c\n0,a\n1,b\n")
    body = COPY.format(src="in.csv", dst="out.csv", extra=", order_by: t")
    proc = run_model(tmp_path, body, "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.csv").read_text() == "t,x\n0,a\n1,b\n2,c\n"
