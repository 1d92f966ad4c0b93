#!/usr/bin/env python
"""Replay the tank twin from one keyed Parquet table vs from one file per key (DirectRunner).

    .venv/bin/python benchmarks/dataio_bench.py [--keys 2000] [--rows 500] [--folder /tmp/dataio-bench]

* keyed: ``FileReader(history.parquet, key_column=asset, order_by=t)``: one Beam read of row
  groups, grouped by key; levels to one sharded Parquet table.
* per-key: ``FileReader(hist/{key}.parquet)`` with a scenarios file naming every key: each
  key's instance opens its own file; levels to ``out/{key}.parquet``.

Prints the wall time of each ``plugboard-beam process run`` and rows/s.

Measured on the 2-core development machine shared with other jobs (load ~3-5), DirectRunner:

    keys x rows    keyed table           per-key files
    100 x 100      5.9 s  (1,703 rows/s)  4.8 s  (2,079 rows/s)
    400 x 100     11.0 s  (3,633 rows/s)  8.2 s  (4,893 rows/s)
    1000 x 100    11.2 s  (8,941 rows/s) 13.7 s  (7,289 rows/s)
    2000 x 50     11.5 s  (8,725 rows/s) 12.4 s  (8,053 rows/s)
    2000 x 100    19.6 s (10,211 rows/s) 21.3 s  (9,407 rows/s)

The full 2,000 x 500 was not run here (about two minutes per variant on this machine); the
keyed table overtakes per-key files from about 1,000 keys, as the per-key opens add up.
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


def peak_memory(folder: Path, keys: int, rows_per_key: list[int]) -> None:
    """Peak RSS (``/usr/bin/time -f %M``) of the keyed replay as the rows per key grow."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPLAY))
    from make_history import make

    exe = Path(sys.executable).with_name("plugboard-beam")
    for rows in rows_per_key:
        if folder.exists():
            shutil.rmtree(folder)
        make(folder, keys, rows, seed=3, row_group=50_000)
        shutil.copy(REPLAY / "tank_parts.py", folder)
        (folder / "keyed.yaml").write_text(KEYED)
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", str(exe), "process", "run", "keyed.yaml"], cwd=folder,
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
    args = ap.parse_args()
    if args.memory:
        peak_memory(args.folder, args.keys, args.memory)
        return
    keys = prepare(args.folder, args.keys, args.rows)
    total = len(keys) * args.rows
    keyed = timed(args.folder, "keyed.yaml")
    per_key = timed(args.folder, "per-key.yaml", "--scenarios", "keys.yaml")
    print(f"keys={len(keys)} rows_per_key={args.rows} rows={total}")
    print(f"keyed_table: {keyed:.1f} s, {total / keyed:,.0f} rows/s")
    print(f"per_key_files: {per_key:.1f} s, {total / per_key:,.0f} rows/s")


if __name__ == "__main__":
    main()
