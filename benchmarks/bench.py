#!/usr/bin/env python
"""Component-steps per second of the engines (a benchmark script, not a test).

    .venv/bin/python benchmarks/bench.py                 # every case
    .venv/bin/python benchmarks/bench.py --engine local --case chain-1x100000

Prints one row per (engine, case): wall time (startup included) and component-steps/s.
For scale, a bare Python loop calling the same step() methods is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import sys
import time
import typing as _t

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
sys.path.insert(0, str(MODELS))

CASES: dict[str, tuple[str, int, int]] = {
    # name: (model, keys, steps per key)
    "chain-1x100000": ("chain.yaml", 1, 100_000),
    "loop-1x100000": ("loop.yaml", 1, 100_000),
    "chain-1000x1000": ("chain.yaml", 1000, 1_000),
    "loop-1000x1000": ("loop.yaml", 1000, 1_000),
    "events-1x100000": ("events.yaml", 1, 100_000),
    "events-1000x1000": ("events.yaml", 1000, 1_000),
}


def bare_loop(steps: int) -> float:
    """Seconds for a plain loop driving the chain's step() coroutines by hand."""
    import bench_parts as bp

    src, sc, off, tot = (bp.Source(name="s", steps=steps), bp.Scale(name="a"),
                         bp.Offset(name="b"), bp.Total(name="t"))

    def drive(coro: _t.Coroutine[_t.Any, _t.Any, None]) -> None:
        try:
            coro.send(None)
        except StopIteration:
            pass

    t0 = time.perf_counter()
    for _ in range(steps):
        drive(src.step())
        sc.x = src.x
        drive(sc.step())
        off.x = sc.y
        drive(off.step())
        tot.x = off.y
        drive(tot.step())
    return time.perf_counter() - t0


def run_with(runner: str, model: str, keys: int, steps: int, **options: _t.Any) -> tuple[float, int]:
    """Wall time (model loading and pipeline startup included) and component-steps."""
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model
    from plugboard_beam.spec.scenarios import Scenario

    t0 = time.perf_counter()
    loaded = load_model(MODELS / model)
    scenarios = [Scenario(f"k{i}", {"source.steps": steps}) for i in range(keys)]
    report = get_runner(runner).run(loaded, RunOptions(scenarios=scenarios, **options))
    elapsed = time.perf_counter() - t0
    return elapsed, sum(report.steps.values())


ENGINES: dict[str, _t.Callable[[str, int, int], tuple[float, int]]] = {
    "local": lambda m, k, s: run_with("local", m, k, s),
    "direct": lambda m, k, s: run_with("direct", m, k, s),
    "direct-unfused": lambda m, k, s: run_with("direct", m, k, s, partition="component"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", action="append", choices=list(ENGINES))
    ap.add_argument("--case", action="append", choices=list(CASES))
    args = ap.parse_args()
    print(f"{'engine':8} {'case':18} {'seconds':>8} {'comp-steps':>11} {'comp-steps/s':>13}")
    bare = bare_loop(100_000)
    print(f"{'bare':8} {'chain-1x100000':18} {bare:8.2f} {400_000:11,d} {400_000 / bare:13,.0f}")
    for engine in args.engine or list(ENGINES):
        for case in args.case or list(CASES):
            model, keys, steps = CASES[case]
            seconds, comp_steps = ENGINES[engine](model, keys, steps)
            print(f"{engine:8} {case:18} {seconds:8.2f} {comp_steps:11,d} {comp_steps / seconds:13,.0f}",
                  flush=True)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
