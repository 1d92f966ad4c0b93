#!/usr/bin/env python
"""Seconds for a tuning study, whole process (start-up, imports, study, output), a benchmark
script, not a test:

    .venv/bin/python benchmarks/tune_bench.py              # 40 trials, --runner local and direct
    .venv/bin/python benchmarks/tune_bench.py --trials 1000 --runners local --max-concurrent 50

The model is ``specs/tune/projectile.yaml`` (a 100-step, 3-component projectile: maximise the
peak height over the launch angle and speed; tutorial 006's study: 40 trials, max_concurrent 4).
Each case runs ``plugboard-beam process tune`` with ``--seed`` and prints wall seconds, trials
per second and the best value found. plugboard 0.9.0 takes 169 s for tutorial 006's 40 trials
of the same kind of model on the 2-core machine this project is developed on.

Measured (2 shared cores under load from other jobs, load average 5-7; seed 1):

| case | seconds | vs plugboard's 169 s | best peak |
|---|---|---|---|
| 40 trials, --runner local (batches of 4) | 2.9 | 58x | 497.6 |
| 1,000 trials, --runner local (batches of 50) | 27.5 | 153x (per trial) | 509.4 |
| 40 trials, --runner direct (10 pipelines of 4 keys) | 29.5 | 6x | 497.6 |
| 40 trials, --runner direct --max-concurrent 40 (1 pipeline) | 7.7 | 22x | 342.1 |

(Under heavier load, load average 8-11: 4.8 s, -, 57.2 s and 17.4 s.) Each DirectRunner pipeline
costs 2-5 s (building the stage DoFns, starting and stopping the FnApi worker), so on ``direct``
the batch size decides the time; one batch of 40 is a random search (TPE learns between batches).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import re
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "specs" / "tune" / "projectile.yaml"
PLUGBOARD_SECONDS = 169.0


def run(runner: str, trials: int, max_concurrent: int | None, seed: int) -> tuple[float, str]:
    cmd = [str(Path(sys.executable).parent / "plugboard-beam"), "process", "tune", str(MODEL), "--runner", runner,
           "--seed", str(seed), "--num-samples", str(trials), "--no-progress"]
    if max_concurrent is not None:
        cmd += ["--max-concurrent", str(max_concurrent)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=MODEL.parent, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    found = re.search(r"component\.peak\.field\.peak = ([-\d.e+]+)", proc.stdout)
    return seconds, found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--runners", default="local,direct")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="batch size (default: the model's max_concurrent, 4)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{'runner':<8} {'trials':>6} {'batch':>5} {'seconds':>8} {'trials/s':>9} {'vs plugboard':>12}  best peak")
    for runner in args.runners.split(","):
        seconds, best = run(runner, args.trials, args.max_concurrent, args.seed)
        speedup = PLUGBOARD_SECONDS * args.trials / 40 / seconds
        print(f"{runner:<8} {args.trials:>6} {args.max_concurrent or 4:>5} {seconds:>8.1f} "
              f"{args.trials / seconds:>9.1f} {speedup:>11.0f}x  {best}", flush=True)


if __name__ == "__main__":
    main()
