"""A key whose rows a many-key sink cannot write fails alone: the keys that share its Parquet
shard or its SQL insert batch keep their rows (issue 11.7: "the failure of one key's data does
not lose the others' results")."""

from __future__ import annotations

from pathlib import Path
import sqlite3
import textwrap
import zlib

import pytest

import pyarrow.dataset as ds

from test_dataio_keyed import cli

PARTS = """
from plugboard_beam.component import Component, IOController as IO
class Odd(Component):
    io = IO(inputs=["x"], outputs=["y"])
    async def step(self) -> None:
        # a negative reading gives this key a value of another kind than every other key's
        self.y = {bad} if self.x < 0 else self.x * 2
"""

MODEL = """
plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.FileReader
        args: {{name: src, path: in.csv, key_column: asset, field_names: [t, x]}}
      - {{type: parts.Odd, args: {{name: odd}}}}
      - type: {writer}
      connectors:
      - {{source: src.x, target: odd.x}}
      - {{source: src.t, target: dst.t}}
      - {{source: odd.y, target: dst.y}}
"""

KEYS = [f"k{i}" for i in range(12)]


def setup(tmp_path: Path, bad: str, writer: str) -> None:
    (tmp_path / "parts.py").write_text(textwrap.dedent(PARTS.format(bad=bad)))
    rows = [f"{k},{t},{-1.0 if (k == 'k3' and t == 1) else float(t + 1)}" for k in KEYS for t in range(3)]
    (tmp_path / "in.csv").write_text("asset,t,x\n" + "\n".join(rows) + "\n")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(MODEL.format(writer=writer)).lstrip())


def test_a_key_whose_values_do_not_fit_the_parquet_column_fails_alone(tmp_path: Path) -> None:
    shard_of = {k: zlib.crc32(k.encode()) % 4 for k in KEYS}
    neighbours = [k for k in KEYS if k != "k3" and shard_of[k] == shard_of["k3"]]
    assert neighbours  # the test needs keys in k3's shard
    setup(tmp_path, '"oops"', "plugboard_beam.library.FileWriter\n        args: {name: dst, path: out/levels.parquet, "
                              "field_names: [t, y]}")
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "1 of 12 model instance(s) failed" in proc.stderr, proc.stderr
    assert "'dst'" in proc.stderr and "'k3'" in proc.stderr and "step 1" in proc.stderr
    assert "column 'y' gets a str" in proc.stderr and "Traceback" not in proc.stderr
    rows = ds.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    got = {(r["key"], r["step"]): r["y"] for r in rows}
    assert got == {(k, t): float(t + 1) * 2 for k in KEYS if k != "k3" for t in range(3)}


def test_a_key_whose_rows_the_database_refuses_fails_alone(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "out.db")
    con.execute("CREATE TABLE levels (key TEXT, step INTEGER, t INTEGER, y REAL, PRIMARY KEY (key, step))")
    con.commit()
    con.close()
    # a list cannot be bound as an SQL value: the batch of all 12 keys (one transaction) fails
    setup(tmp_path, "[1, 2]", "plugboard_beam.library.SQLWriter\n        args: {name: dst, connection_string: "
                               "'sqlite:///out.db', table: levels, field_names: [t, y]}")
    proc = cli(tmp_path, "run", "model.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "1 of 12 model instance(s) failed" in proc.stderr, proc.stderr
    assert "'dst'" in proc.stderr and "'k3'" in proc.stderr and "Traceback" not in proc.stderr
    rows = sqlite3.connect(tmp_path / "out.db").execute("SELECT key, step, y FROM levels").fetchall()
    assert {(k, s): y for k, s, y in rows} == {(k, t): float(t + 1) * 2 for k in KEYS if k != "k3" for t in range(3)}


def test_streaming_window_file_leaves_out_only_the_misfit_key(caplog: pytest.LogCaptureFixture) -> None:
    """In streaming, a window's Parquet file is written without the rows of a key whose values
    do not fit; the key, step and reason are logged (and counted: ``file_rows_left_out``)."""
    import io
    import logging

    import pyarrow.parquet as pq

    from plugboard_beam.lowering.dataio.windowed import WindowedWrite, _RowSink

    sink = _RowSink(WindowedWrite("levels", ("level",), "out/levels.parquet", 2.0))
    fh = io.BytesIO()
    sink.open(fh)
    for row in [("b", 0, (1.5,)), ("a", 0, (2.0,)), ("c", 0, (3,)), ("b", 1, ("high",)), ("a", 1, (None,))]:
        sink.write(row)
    with caplog.at_level(logging.ERROR, logger="plugboard_beam"):
        sink.flush()
    got = pq.read_table(io.BytesIO(fh.getvalue())).to_pydict()
    assert got == {"key": ["a", "a", "c"], "step": [0, 1, 0], "level": [2.0, None, 3.0]}
    [message] = [r.getMessage() for r in caplog.records]
    assert "'levels'" in message and "key 'b', step 1" in message and "column 'level' gets a str" in message
