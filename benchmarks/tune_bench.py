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

(Under heavier load, load average 8-11: 4.8 s, -, 57.2 s and 17.4 s.) With ``--plugboard-python`` (a
Python with plugboard 0.9.0 and ``ray[tune]``), the first row is plugboard's own ``Tuner`` on
the same study (its Optuna sampler seeded alike, so both try the same trials). Measured with 8
trials, seed 1, load average 10-12: plugboard 722.3 s, best peak 61.3202; ``--runner local``
11.7 s (62x), best peak 61.3202 (the same trials). 40 trials here at load average 6-8: 4.0 s. Each DirectRunner pipeline
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


#: plugboard 0.9.0's side: the same study with plugboard's ``Tuner`` (trials as Ray tasks), its
#: Optuna sampler seeded (plugboard's ``OptunaSpec`` has no seed: the driver passes one to Ray's
#: ``OptunaSearch``). Run by a Python with plugboard 0.9.0 and ``ray[tune]`` installed.
PLUGBOARD_DRIVER = """\
import sys, time
start = time.perf_counter()
import ray.tune.search.optuna as ray_optuna
_init = ray_optuna.OptunaSearch.__init__
def _seeded(self, *args, **kwargs):
    kwargs.setdefault("seed", {seed})
    _init(self, *args, **kwargs)
ray_optuna.OptunaSearch.__init__ = _seeded
import ray
# Ray's own start (ray.tune's auto-init) also starts its dashboard, whose agent did not come up
# in time on 2 loaded cores ("Timed out waiting for file .../metrics_agent_port"): start without it
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
import yaml
from plugboard.schemas import FloatParameterSpec, ObjectiveSpec, OptunaSpec, ProcessSpec
from plugboard.tune import Tuner
import projectile  # registers the components
doc = yaml.safe_load(open("projectile.yaml"))["plugboard"]
spec = ProcessSpec.model_validate(doc["process"])
targs = doc["tune"]["args"]
tuner = Tuner(objective=ObjectiveSpec(**targs["objective"]),
              parameters=[FloatParameterSpec(**p) for p in targs["parameters"]],
              num_samples={trials}, max_concurrent={batch}, mode=targs["mode"], algorithm=OptunaSpec())
best = tuner.run(spec=spec)
print("best peak", best.metrics["component.peak.field.peak"], "seconds", round(time.perf_counter() - start, 1))
"""


#: ``specs/tune/projectile.py`` as plugboard 0.9.0 takes it (async steps, ``await io.close()``)
PLUGBOARD_COMPONENTS = """\
import math
from plugboard.component import Component, IOController as IO


class Distance(Component):
    io = IO(outputs=["x"])

    def __init__(self, steps: int = 100, **kwargs):
        super().__init__(**kwargs)
        self._steps = steps
        self._x = 0

    async def step(self):
        if self._x >= self._steps:
            await self.io.close()
            return
        self.x = self._x
        self._x += 1


class Height(Component):
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, angle: float = 30.0, speed: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        self._theta = math.radians(angle)
        self._speed = speed

    async def step(self):
        c = math.cos(self._theta)
        self.y = self.x * math.tan(self._theta) - 9.81 * self.x**2 / (2 * self._speed**2 * c**2)


class Peak(Component):
    io = IO(inputs=["y"], outputs=["peak"])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.peak = 0.0

    async def step(self):
        self.peak = max(self.peak, self.y)
"""


def run_plugboard(python: str, trials: int, max_concurrent: int | None, seed: int) -> tuple[float, str]:
    """The study on plugboard 0.9.0 (whole process): seconds and the best peak."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pb-tune-") as tmp:
        folder = Path(tmp)
        (folder / "projectile.py").write_text(PLUGBOARD_COMPONENTS)
        (folder / "projectile.yaml").write_text(MODEL.read_text())
        (folder / "driver.py").write_text(PLUGBOARD_DRIVER.format(seed=seed, trials=trials,
                                                                  batch=max_concurrent or 4))
        start = time.perf_counter()
        proc = subprocess.run([python, "driver.py"], cwd=folder, capture_output=True, text=True, timeout=7200)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"plugboard's Tuner failed:\n{proc.stderr[-3000:]}")
    found = re.search(r"best peak ([-\d.e+]+)", proc.stdout)
    return seconds, found.group(1) if found else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--runners", default="local,direct")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="batch size (default: the model's max_concurrent, 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plugboard-python", default=None,
                        help="also run the study with plugboard 0.9.0's Tuner (on Ray) with this Python")
    args = parser.parse_args()
    print(f"{'runner':<10} {'trials':>6} {'batch':>5} {'seconds':>8} {'trials/s':>9} {'vs plugboard':>12}  best peak")
    measured = PLUGBOARD_SECONDS * args.trials / 40
    if args.plugboard_python:
        seconds, best = run_plugboard(args.plugboard_python, args.trials, args.max_concurrent, args.seed)
        measured = seconds
        print(f"{'plugboard':<10} {args.trials:>6} {args.max_concurrent or 4:>5} {seconds:>8.1f} "
              f"{args.trials / seconds:>9.1f} {1:>11.0f}x  {best}", flush=True)
    for runner in args.runners.split(","):
        seconds, best = run(runner, args.trials, args.max_concurrent, args.seed)
        speedup = measured / seconds
        print(f"{runner:<10} {args.trials:>6} {args.max_concurrent or 4:>5} {seconds:>8.1f} "
              f"{args.trials / seconds:>9.1f} {speedup:>11.0f}x  {best}", flush=True)


if __name__ == "__main__":
    main()
