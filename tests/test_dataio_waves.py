"""Keyed runs in waves: on the DirectRunner a keyed replay whose data has more rows than
``--rows-per-wave`` runs its keys in groups, one pipeline each, so that memory depends on the
wave and not on the table (issue 11: "memory stays flat as rows grow")."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, cli_command
from test_dataio_keyed import (KEYED, by_key, cli, read_csv_shards, replay_folder, tank_levels,
                               write_doubling_model)


# ----------------------------------------------------------------------------- planning
def test_waves_are_consecutive_keys_within_the_row_bound() -> None:
    from plugboard_beam.lowering.dataio import ALL_KEYS, plan_waves

    counts = {"a": 3, "b": 3, "c": 1, "d": 9, "e": 2}
    waves = plan_waves(counts, 6)
    assert [sorted(w.keys or ()) for w in waves[:-1]] == [["a", "b"], ["c"], ["d"]]
    # the last wave: every key the others do not read (also one that appears after the count)
    assert waves[-1].keys is None and waves[-1].earlier == {"a", "b", "c", "d"}
    assert waves[-1].has("e") and waves[-1].has("new") and not waves[-1].has("a")
    assert not any(w.has("new") for w in waves[:-1])
    assert [w.rows for w in waves] == [6, 1, 9, 2]  # "d" alone exceeds the bound: a wave of its own
    assert [(w.index, w.count) for w in waves] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert plan_waves(counts, 18) == [ALL_KEYS.__class__(rows=18)]  # everything fits: one wave of all keys
    assert plan_waves(counts, 0)[0].keys is None  # 0: all at once
    assert plan_waves({}, 5)[0].keys is None


def test_a_wave_keeps_its_keys_and_only_the_first_keeps_rows_without_key() -> None:
    from plugboard_beam.lowering.dataio import Wave

    first, second = Wave(0, 2, frozenset({"a", "1"})), Wave(1, 2, frozenset({"b"}))
    assert first.has("a") and first.has(1) and not first.has("b")  # keys are compared as text
    assert second.has("b") and not second.has("a")
    for no_key in (None, float("nan"), ""):
        assert first.has(no_key) and not second.has(no_key)
    assert second.shard(3) == (7, 8)  # shards are numbered across waves


def test_arrow_filter_keeps_the_waves_rows_and_their_row_numbers() -> None:
    from plugboard_beam.lowering.dataio import Wave
    from plugboard_beam.lowering.dataio.reads import _arrow_batch

    table = pa.table({"asset": [2, 1, None, 2, 3], "x": [0.5, 1.5, 2.5, 3.5, 4.5]})
    columns, numbers, n = _arrow_batch(table, ["x", "asset"], 1, Wave(0, 2, frozenset({"2"})))
    assert columns == [[0.5, 2.5, 3.5], [2, None, 2]] and numbers == [0, 2, 3] and n == 5
    columns, numbers, n = _arrow_batch(table, ["x", "asset"], 1, Wave(1, 2, frozenset({"1", "3"})))
    assert columns == [[1.5, 4.5], [1, 3]] and numbers == [1, 4] and n == 5
    last = Wave(1, 2, None, earlier=frozenset({"2"}))  # the last wave: every key but the earlier ones'
    columns, numbers, n = _arrow_batch(table, ["x", "asset"], 1, last)
    assert columns == [[1.5, 4.5], [1, 3]] and numbers == [1, 4] and n == 5
    nested = pa.table({"asset": [[1], [2], [1]], "x": [1, 2, 3]})  # no Arrow membership test: Python
    columns, numbers, _ = _arrow_batch(nested, ["x", "asset"], 1, Wave(1, 2, frozenset({"[1]"})))
    assert columns == [[1, 3], [[1], [1]]] and numbers == [0, 2]


def test_key_counts_in_data_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugboard_beam.lowering.dataio import key_counts
    from plugboard_beam.spec import load_model

    (tmp_path / "in.csv").write_text("asset,t,x\nb,0,1\na,0,2\n,1,3\nb,1,4\nb,2,5\n")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: in.csv")).lstrip())
    monkeypatch.chdir(tmp_path)
    assert key_counts(load_model(tmp_path / "model.yaml")) == {"b": 3, "a": 1}


# ------------------------------------------------------------------------------ running
@pytest.mark.slow
def test_waves_give_the_same_levels_as_one_pipeline(tmp_path: Path) -> None:
    """The tank twin replayed from Parquet in waves of 2 assets: the same levels per asset (and
    in the database) as the one-pipeline run, sink shards numbered across waves."""
    folder, readings = replay_folder(tmp_path, assets=7, rows=6)
    proc = subprocess.run([*cli_command(), "--debug", "process", "run", "replay.yaml", "--rows-per-wave", "12"],
                          cwd=folder, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "4 waves of at most 12 rows" in proc.stderr, proc.stderr
    shards = sorted((folder / "out").glob("levels-*-of-*.parquet"))
    assert shards and all(re.search(r"-\d{5}-of-00016\.parquet$", p.name) for p in shards), shards
    got = by_key(ds.dataset([str(p) for p in shards]).to_table().to_pylist())
    assert sorted(got) == sorted(readings)
    for key, inflows in readings.items():
        assert [r["t"] for r in got[key]] == list(range(len(inflows)))
        assert [r["level"] for r in got[key]] == pytest.approx(tank_levels(inflows))
    import sqlite3

    db = sqlite3.connect(folder / "levels.db").execute("SELECT count(*), count(DISTINCT key) FROM levels").fetchone()
    assert db == (7 * 6, 7)


@pytest.mark.slow
def test_in_waves_a_failing_key_and_a_row_without_key_are_reported_once(tmp_path: Path) -> None:
    write_doubling_model(tmp_path, "asset,t,x\na,0,1\nb,0,2\nb,1,oops\na,1,3\n,9,9\nc,0,5\nd,0,6\nd,1,7\n")
    proc = cli(tmp_path, "run", "model.yaml", "--rows-per-wave", "2")
    assert proc.returncode == 1
    assert proc.stderr.count("has no 'asset'") == 1, proc.stderr  # every wave reads the file; one report
    assert proc.stderr.count("'b'") == 1 and "oops" in proc.stderr and "Traceback" not in proc.stderr
    assert "2 of 4 model instance(s) failed" in proc.stderr, proc.stderr  # b, and the keyless row
    rows = read_csv_shards(tmp_path)
    assert [r for r in rows if not r.startswith("b,")] == ["a,0,0,2.0", "a,1,1,6.0", "c,0,0,10.0",
                                                           "d,0,0,12.0", "d,1,1,14.0"]


@pytest.mark.slow
def test_keyed_sql_reader_in_waves(tmp_path: Path) -> None:
    """The query runs in every wave; each keeps its keys' rows (filtered in Python)."""
    import sqlite3

    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE r (asset TEXT, t INTEGER, x REAL)")
    con.executemany("INSERT INTO r VALUES (?, ?, ?)", [("k2", 1, 4.0), ("k1", 0, 1.0), ("k2", 0, 3.0),
                                                      ("k1", 1, 2.0), (None, 5, 0.5), ("k3", 0, 7.0)])
    con.commit()
    con.close()
    body = KEYED.format(reader="SQLReader", source="connection_string: 'sqlite:///db.sqlite', "
                        "query: 'SELECT * FROM r', order_by: t")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(body).lstrip())
    proc = cli(tmp_path, "run", "model.yaml", "--rows-per-wave", "2")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("has no 'asset'") == 1 and "row 4" in proc.stderr, proc.stderr
    assert read_csv_shards(tmp_path) == ["k1,0,0,1.0", "k1,1,1,2.0", "k2,0,0,3.0", "k2,1,1,4.0", "k3,0,0,7.0"]
    assert len(list((tmp_path / "out").glob("rows-*-of-00012.csv"))) >= 3  # three waves, four shards each


@pytest.mark.slow
def test_record_in_waves_keeps_every_wave(tmp_path: Path) -> None:
    (tmp_path / "in.parquet").parent.mkdir(exist_ok=True)
    pq.write_table(pa.table({"asset": ["a", "b", "c", "a"], "t": [0, 0, 0, 1], "x": [1.0, 2.0, 3.0, 4.0]}),
                   tmp_path / "in.parquet")
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(
        reader="FileReader", source="path: in.parquet")).lstrip())
    proc = cli(tmp_path, "run", "model.yaml", "--rows-per-wave", "1", "--record", "rec")
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "rec").glob("messages-*.parquet"))
    assert len(files) == 3, files  # one wave per key
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert sorted({r["key"] for r in rows}) == ["a", "b", "c"]
    assert sorted(read_csv_shards(tmp_path)) == ["a,0,0,1.0", "a,1,1,4.0", "b,0,0,2.0", "c,0,0,3.0"]


@pytest.mark.parametrize(("args", "words"), [
    (["--runner", "local", "--rows-per-wave", "5"], "--rows-per-wave is an option of batch runs on --runner direct"),
    (["--runner", "dataflow", "--dry-run", "--rows-per-wave", "5"], "--rows-per-wave is an option of batch runs"),
    (["--streaming", "--rows-per-wave", "5"], "--rows-per-wave is an option of batch runs on --runner direct"),
    (["--rows-per-wave", "5"], "no data reader with key_column"),
    (["--rows-per-wave", "-1"], "-1 is not in the range x>=0"),
])
def test_rows_per_wave_is_refused_where_it_has_no_effect(args: list[str], words: str) -> None:
    proc = subprocess.run([*cli_command(), "process", "run", str(ROOT / "specs" / "hello" / "my-model.yaml"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------- memory
def keyed_peak(rows: int, rows_per_wave: int) -> tuple[float, int]:
    """(peak RSS in MB, waves) of ``benchmarks/peak_memory.py keyed``: the tank twin replayed
    from a Parquet history of ``rows`` rows of 50 assets, in a fresh process."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peak_memory.py"), "keyed", str(rows),
                           str(rows_per_wave)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r"peak_rss_mb=([\d.]+) rows=(\d+) written=(\d+) waves=(\d+)", proc.stdout)
    assert match, proc.stdout
    assert int(match.group(2)) == int(match.group(3)) == rows  # every row read and its level written
    return float(match.group(1)), int(match.group(4))


@pytest.mark.slow
def test_peak_memory_flat_as_rows_grow() -> None:
    """20,000 rows (one wave) and 200,000 rows (ten waves of 20,000): 10x the rows may cost at most
    30 MB more peak memory (measured: 212 and 224 MB). In one pipeline the 180,000 more rows cost
    ~110 MB (320 MB)."""
    small, waves_small = keyed_peak(20_000, 20_000)
    large, waves_large = keyed_peak(200_000, 20_000)
    assert (waves_small, waves_large) == (1, 10)
    assert large - small < 30, (small, large)
