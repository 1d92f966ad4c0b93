#!/usr/bin/env python
"""Make the replay's inputs: history.parquet (inflow readings of many assets, shuffled, in
several row groups) and levels.db (SQLite, with the empty "levels" table the SQLWriter fills).

    python make_history.py [--assets 50] [--rows 40] [--seed 1] [--folder .]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import random
import sqlite3


def make(folder: Path, assets: int, rows: int, seed: int = 1, row_group: int = 10_000) -> dict[str, list[float]]:
    """Write the inputs into ``folder``; return each asset's inflows in time order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    readings = {f"asset-{i:04d}": [round(rng.uniform(0.0, 12.0), 3) for _ in range(rows)] for i in range(assets)}
    table = [(k, t, v) for k, vs in readings.items() for t, v in enumerate(vs)]
    rng.shuffle(table)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"asset": [r[0] for r in table], "t": [r[1] for r in table],
                             "inflow": [r[2] for r in table]}), folder / "history.parquet", row_group_size=row_group)
    db = folder / "levels.db"
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE levels (key TEXT, step INTEGER, t INTEGER, level REAL, high BOOLEAN, "
                "PRIMARY KEY (key, step))")
    con.commit()
    con.close()
    return readings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--assets", type=int, default=50)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--folder", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    make(args.folder, args.assets, args.rows, args.seed)
    print(f"wrote {args.folder / 'history.parquet'} ({args.assets} assets x {args.rows} rows) and levels.db")


if __name__ == "__main__":
    main()
