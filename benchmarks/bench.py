#!/usr/bin/env python
"""Component-steps per second of the engines (a benchmark script, not a test).

    .venv/bin/python benchmarks/bench.py                 # every case
    .venv/bin/python benchmarks/bench.py --engine local --case chain-1x100000
    .venv/bin/python benchmarks/bench.py --scale        # issue 19's figures, side by side
    .venv/bin/python benchmarks/bench.py --scale --repeat 3   # each cell the best of 3 processes

Prints one row per (engine, case): wall time (startup included) and component-steps/s.
For scale, a bare Python loop calling the same step() methods is printed too.

``--scale`` runs each (case, engine) of ``SCALE`` in a fresh process (so that its peak memory,
``ru_maxrss``, is its own) and prints one row per case: seconds (and peak MB) per engine.
``direct-imported`` is the DirectRunner timed after ``import apache_beam`` (its ~1-4 s import is
not counted there; it is in ``direct``). It ends with issue 19's ratios measured warm, in one
process (the best of N interleaved runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
import resource
import subprocess
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

    from plugboard_beam.component.component import raw_method

    src, sc, off, tot = (bp.Source(name="s", steps=steps), bp.Scale(name="a"),
                         bp.Offset(name="b"), bp.Total(name="t"))
    # the user's own step() methods (a component's ``step`` attribute is the hand-driven
    # wrapper, which reads and writes connector channels around them)
    src_step, sc_step, off_step, tot_step = (raw_method(c, "step") for c in (src, sc, off, tot))

    def drive(coro: _t.Coroutine[_t.Any, _t.Any, None]) -> None:
        # iterated rather than ``send(None)``: no StopIteration when it returns (the fastest plain
        # way, and the engine's)
        for _ in coro.__await__():
            raise RuntimeError("a benchmark step suspended")

    t0 = time.perf_counter()
    for _ in range(steps):
        drive(src_step())
        sc.x = src.x
        drive(sc_step())
        off.x = sc.y
        drive(off_step())
        tot.x = off.y
        drive(tot_step())
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
    # the DirectRunner with Beam already imported: the run alone, without Beam's ~2.5 s import
    "direct-imported": lambda m, k, s: (__import__("apache_beam"), run_with("direct", m, k, s))[1],
}


#: issue 19's cases: (label, model, keys, steps per key, engines)
SCALE: list[tuple[str, str, int, int, tuple[str, ...]]] = [
    ("chain 1 key x 100,000 steps", "chain.yaml", 1, 100_000, ("local", "direct", "direct-imported")),
    ("chain 10,000 keys x 10 steps", "chain.yaml", 10_000, 10, ("local", "direct", "direct-imported")),
    ("chain 1,000 keys x 1,000 steps", "chain.yaml", 1_000, 1_000, ("local", "direct", "direct-imported")),
    ("six 200 keys x 2,000 steps", "six.yaml", 200, 2_000, ("local", "direct", "direct-imported", "direct-unfused")),
]


def one(engine: str, model: str, keys: int, steps: int) -> None:
    """Run one case in this process and print it as JSON (``--scale`` calls this in a child)."""
    seconds, comp_steps = ENGINES[engine](model, keys, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "steps": comp_steps, "peak_mb": peak}))


def warm(repeat: int) -> None:
    """Issue 19's ratios in this one process, each engine warm (a first run done), the best of
    ``repeat`` interleaved runs: what a sweep or a tuning study, which runs many pipelines in one
    process, sees; the fresh-process table above includes each process's one-time costs (Beam's
    first pipeline alone is ~0.14 s, more than the local engine's whole 100,000 steps)."""
    import apache_beam  # noqa: F401

    times: dict[str, list[float]] = {}
    for engine, model, keys, steps in [("local", "chain.yaml", 1, 1000), ("direct", "six.yaml", 2, 10),
                                        ("direct-unfused", "six.yaml", 2, 10)]:
        ENGINES[engine](model, keys, steps)
    for _ in range(repeat):
        times.setdefault("bare", []).append(bare_loop(100_000))
        for name, engine, model, keys, steps in [("local", "local", "chain.yaml", 1, 100_000),
                                                 ("direct", "direct", "chain.yaml", 1, 100_000),
                                                 ("fused six", "direct", "six.yaml", 200, 2_000),
                                                 ("component six", "direct-unfused", "six.yaml", 200, 2_000)]:
            times.setdefault(name, []).append(ENGINES[engine](model, keys, steps)[0])
    best = {name: min(ts) for name, ts in times.items()}
    print(f"warm, one process, best of {repeat}: " + ", ".join(f"{n} {t:.3f} s" for n, t in best.items()))
    for label, num, den, target in [("local / bare loop, 1 x 100,000", "local", "bare", 1.5),
                                    ("direct fused / local, 1 x 100,000", "direct", "local", 1.5),
                                    ("--stages component / fused, six 200 x 2,000", "component six", "fused six", 1.3)]:
        ratio = best[num] / best[den]
        print(f"  {label:45} {ratio:5.2f}x (target {target}x: {'met' if ratio <= target else 'NOT met'})")


def scale(repeat: int = 1) -> None:
    """Issue 19's table: each case on each engine in a process of its own, side by side; with
    ``repeat``, the best of that many fresh processes (this machine's speed swings by up to 2x
    from minute to minute, and the best run is the one least disturbed)."""
    bare = min(bare_loop(100_000) for _ in range(repeat))
    # as on a user's machine, the children cache their modules' bytecode (a sandbox may set
    # PYTHONDONTWRITEBYTECODE, and compiling this package's sources is ~0.05 s of every process)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    engines = ["local", "direct", "direct-imported", "direct-unfused"]
    print(f"{'case':32} {'bare loop':>12} " + " ".join(f"{e:>22}" for e in engines))
    for label, model, keys, steps, run_on in SCALE:
        cells = []
        for engine in engines:
            if engine not in run_on:
                cells.append(f"{'-':>22}")
                continue
            runs = []
            for _ in range(repeat):
                proc = subprocess.run([sys.executable, __file__, "--one", engine, model, str(keys), str(steps)],
                                      capture_output=True, text=True, check=True, env=env)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = min(runs, key=lambda run: run["seconds"])
            if keys == 1:
                cells.append(f"{r['steps'] / r['seconds']:>10,.0f} st/s {r['peak_mb']:5.0f} MB")
            else:
                cells.append(f"{r['seconds']:>10.2f} s {r['peak_mb']:6.0f} MB")
        first = f"{400_000 / bare:>7,.0f} st/s" if keys == 1 else f"{'-':>12}"
        print(f"{label:32} {first:>12} " + " ".join(cells), flush=True)
    proc = subprocess.run([sys.executable, __file__, "--warm", str(repeat)], capture_output=True, text=True,
                          check=True, env=env)
    print(proc.stdout.rstrip(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", action="append", choices=list(ENGINES))
    ap.add_argument("--case", action="append", choices=list(CASES))
    ap.add_argument("--scale", action="store_true", help="issue 19's cases side by side, peak memory included")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="with --scale: the best of N fresh processes per cell (default 1)")
    ap.add_argument("--one", nargs=4, metavar=("ENGINE", "MODEL", "KEYS", "STEPS"), help=argparse.SUPPRESS)
    ap.add_argument("--warm", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warm:
        warm(args.warm)
        return
    if args.one:
        engine, model, keys, steps = args.one
        one(engine, model, int(keys), int(steps))
        return
    if args.scale:
        scale(max(1, args.repeat))
        return
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
