#!/usr/bin/env python
"""Replay the tank twin from one keyed Parquet table vs from one file per key (DirectRunner).

    .venv/bin/python benchmarks/dataio_bench.py [--keys 2000] [--rows 500] [--folder /tmp/dataio-bench]

* keyed: ``FileReader(history.parquet, key_column=asset, order_by=t)``: one Beam read of row
  groups, grouped by key; levels to one sharded Parquet table.
* per-key: ``FileReader(hist/{key}.parquet)`` with a scenarios file naming every key: each
  key's instance opens its own file; levels to ``out/{key}.parquet``.

Prints the wall time of each ``plugboard-beam process run`` and rows/s. With ``--memory R1 R2 ...``
it instead prints the peak RSS (``/usr/bin/time -f %M``) of the keyed replay of ``--keys`` keys at
each number of rows per key.

Measured on the 2-core development machine (a VM whose speed varies by about 15 % from run to
run), DirectRunner, the issue's size (2,000 keys x 500 rows = 1,000,000 rows; the keyed run goes
in 2 waves of 500,000 rows, ``--rows-per-wave``'s default), three interleaved pairs:

    keyed table      27.9 s    27.9 s    32.9 s    (median 35,842 rows/s; CPU 26.2 / 25.7 / 30.1 s)
    per-key files    32.1 s    31.1 s    33.0 s    (median 31,153 rows/s; CPU 29.1 / 28.6 / 29.8 s)

The keyed table was faster in every pair (by 13 %, 10 % and 0.2 %). Most of the time is the
model's steps (one pipeline, timed per Beam stage: the stage DoFn 18.4 s, the read 2.2 s, the
grouping 1.7 s, the sharded write 2.0 s). The keyed path pays a grouping of all rows, a sharded
write and ~0.5 s per extra wave; the per-key path runs the reader as a component (one more step
per row), 2,000 file opens and 2,000 file writes, which cost far more on gs:// than on a local disk.

Peak memory of the keyed replay (``--memory`` runs the CLI under ``/usr/bin/time``;
``peak_memory.py keyed`` measures in one process; figures from the latter, in README.md):
one pipeline grows by ~0.2 KB per row (292 MB at 200,000 rows, 460 MB at 1,000,000): the
DirectRunner (Beam's FnApiRunner) keeps every PCollection that crosses a fusion break in memory
until it is consumed (the keyed read's parts before their GroupByKey, the chunks into the
stateful stage, the writer's batches before the sharded write; each crosses as pickled bytes).
In waves it depends on the wave, not on the table (430 MB at 2,000,000 rows in 5 waves). On
Dataflow those collections go through the shuffle service and a worker holds one key's rows (its
GroupByKey value) and one output shard at a time, so no waves are needed there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys
import time

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPLAY = ROOT / "specs" / "tank-replay"

TWIN = """
      - type: tank_parts.Tank
        args: {name: tank, capacity: 100.0, initial_values: {outflow: [0.0]}}
      - type: tank_parts.Valve
        args: {name: valve, gain: 0.2}
      connectors:
      - {source: sensor.inflow, target: tank.inflow}
      - {source: tank.level, target: valve.level}
      - {source: valve.outflow, target: tank.outflow}
      - {source: sensor.t, target: levels.t}
      - {source: tank.level, target: levels.level}
"""
KEYED = """plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.FileReader
        args: {name: sensor, path: history.parquet, key_column: asset, order_by: t, field_names: [t, inflow]}
      - type: plugboard_beam.library.FileWriter
        args: {name: levels, path: out-keyed/levels.parquet, field_names: [t, level]}
""" + TWIN
PER_KEY = """plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.FileReader
        args: {name: sensor, path: "hist/{key}.parquet", field_names: [t, inflow]}
      - type: plugboard_beam.library.FileWriter
        args: {name: levels, path: "out-per-key/{key}.parquet", field_names: [t, level]}
""" + TWIN


def prepare(folder: Path, keys: int, rows: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPLAY))
    from make_history import make

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    readings = make(folder, keys, rows, seed=3, row_group=50_000)
    (folder / "hist").mkdir()
    for k, vs in readings.items():
        pq.write_table(pa.table({"t": list(range(len(vs))), "inflow": vs}), folder / "hist" / f"{k}.parquet")
    shutil.copy(REPLAY / "tank_parts.py", folder)
    (folder / "keyed.yaml").write_text(KEYED)
    (folder / "per-key.yaml").write_text(PER_KEY)
    (folder / "keys.yaml").write_text(json.dumps([{"key": k} for k in readings]))
    return list(readings)


def timed(folder: Path, *args: str) -> float:
    exe = Path(sys.executable).with_name("plugboard-beam")
    start = time.perf_counter()
    proc = subprocess.run([str(exe), "process", "run", *args], cwd=folder, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {proc.stderr[-2000:]}")
    return took


def make_keyed(folder: Path, keys: int, rows_per_key: int) -> None:
    """``folder`` with only the keyed replay: history.parquet, tank_parts.py, keyed.yaml."""
    sys.path.insert(0, str(REPLAY))
    from make_history import make

    if folder.exists():
        shutil.rmtree(folder)
    make(folder, keys, rows_per_key, seed=3, row_group=50_000)
    shutil.copy(REPLAY / "tank_parts.py", folder)
    (folder / "keyed.yaml").write_text(KEYED)


def peak_memory(folder: Path, keys: int, rows_per_key: list[int], run_args: list[str]) -> None:
    """Peak RSS (``/usr/bin/time -f %M``) of the keyed replay as the rows per key grow."""
    import pyarrow.parquet as pq

    exe = Path(sys.executable).with_name("plugboard-beam")
    for rows in rows_per_key:
        make_keyed(folder, keys, rows)
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(exe), "process", "run", "keyed.yaml", *run_args],
                              cwd=folder,
                              capture_output=True, text=True)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"run failed: {proc.stderr[-2000:]}")
        peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
        written = sum(pq.read_metadata(f).num_rows for f in (folder / "out-keyed").glob("*.parquet"))
        print(f"keys={keys} rows_per_key={rows} rows={keys * rows} written={written} "
              f"peak_rss_mb={peak_mb:.0f} wall_s={took:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/dataio-bench"))
    ap.add_argument("--memory", type=int, nargs="*", metavar="ROWS_PER_KEY",
                    help="instead: peak RSS of the keyed replay of --keys keys at each of these rows per key")
    ap.add_argument("--rows-per-wave", type=int, default=None, help="passed to process run")
    args = ap.parse_args()
    run_args = [] if args.rows_per_wave is None else ["--rows-per-wave", str(args.rows_per_wave)]
    if args.memory:
        peak_memory(args.folder, args.keys, args.memory, run_args)
        return
    keys = prepare(args.folder, args.keys, args.rows)
    total = len(keys) * args.rows
    keyed = timed(args.folder, "keyed.yaml", *run_args)
    per_key = timed(args.folder, "per-key.yaml", "--scenarios", "keys.yaml")
    print(f"keys={len(keys)} rows_per_key={args.rows} rows={total}")
    print(f"keyed_table: {keyed:.1f} s, {total / keyed:,.0f} rows/s")
    print(f"per_key_files: {per_key:.1f} s, {total / per_key:,.0f} rows/s")


if __name__ == "__main__":
    main()
