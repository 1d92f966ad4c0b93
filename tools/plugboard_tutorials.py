#!/usr/bin/env python
"""plugboard 0.9.0's tutorials and offline demo notebooks, run on plugboard itself and on
plugboard_beam with only the import prefix renamed, and their output files compared (a tool,
not a test; nothing of plugboard's is kept in this repository):

    .venv/bin/python tools/plugboard_tutorials.py --plugboard-python /path/to/venv/bin/python

1. gets plugboard's sdist (``--sdist FILE``, or ``pip download --no-deps --no-binary :all:
   plugboard==0.9.0``) and unpacks it into ``--work`` (a temporary folder by default);
2. copies each tutorial folder twice: as it is (run by ``--plugboard-python``, a Python with
   plugboard 0.9.0 installed) and with ``plugboard`` renamed ``plugboard_beam`` in its ``.py``
   files and in the type paths of its YAML files (run by this Python);
3. runs each case on both sides, seeded (``import random`` in the tutorial's own modules gives
   them a private ``random.Random(seed)``, and a ``sitecustomize`` on ``PYTHONPATH`` seeds the
   global ``random`` and ``numpy.random`` at interpreter start): the Python scripts as they are,
   the YAML files with ``plugboard process run`` against ``plugboard-beam process run --runner
   local`` and ``--runner direct``; the demo notebooks converted to scripts (nbconvert, when
   installed; ``--demos``);
4. compares every file a case writes (text exactly, CSV numbers to 1e-9; files whose content
   is the wall clock, e.g. timestamps, by their number of rows) and prints one table row per
   case: ``same``, ``DIFFERS`` (first difference), or where a side stopped (its last error
   line).
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, field
import io
import math
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import typing as _t

VERSION = "0.9.0"
ROOT = Path(__file__).resolve().parent.parent
#: ``from plugboard.x import`` / ``import plugboard`` / ``plugboard.x.Y`` type paths
PY_PREFIX = re.compile(r"\bplugboard(?=[.\s])(?!_)")
YAML_PREFIX = re.compile(r"(?<![\w.-])plugboard\.")
SEEDER = """\
import random as _random
_random.seed({seed})
try:
    import numpy as _np
    _np.random.seed({seed})
except ImportError:
    pass
"""


#: ``process tune``'s summary line (plugboard's prints no result)
OUR_BEST = r"best: trial \d+ \([^)]*\): [^=]+= ([-\d.e+]+)"


@dataclass
class Case:
    """One thing to run: a tutorial's script or YAML file (``command`` is filled per side)."""

    folder: str  # relative to examples/tutorials (or docs/examples/demos)
    entry: str  # the script, YAML file or notebook
    kind: str  # "script", "yaml", "tune" or "notebook"
    #: output files whose content is the wall clock: compared by their number of rows
    clock_files: tuple[str, ...] = ()
    #: a tuning study: a regular expression finding the best objective in the printed output
    #: (the two sides sample differently, so their best values are shown, not compared)
    best: str = ""
    note: str = ""


CASES: list[Case] = [
    Case("001_hello_world", "hello_world.py", "script"),
    Case("001_hello_world", "model.yaml", "yaml"),
    Case("002_complex_processes", "branching.py", "script"),
    Case("002_complex_processes", "branching.yaml", "yaml"),
    Case("002_complex_processes", "loop.py", "script"),
    Case("002_complex_processes", "loop.yaml", "yaml"),
    Case("002_complex_processes", "parameters.py", "script"),
    Case("002_complex_processes", "parameters.yaml", "yaml"),
    Case("003_more_components", "hello_llm.py", "script", note="calls an LLM and a web API"),
    Case("003_more_components", "model.yaml", "yaml", note="calls an LLM and a web API"),
    Case("004_using_ray", "hello_ray.py", "script", clock_files=("ray.csv",)),
    Case("004_using_ray", "model-ray.yaml", "yaml", clock_files=("ray.csv",)),
    Case("004_using_ray", "resources-example.yaml", "yaml"),
    Case("005_events", "hello_events.py", "script"),
    Case("005_events", "model.yaml", "yaml"),
    Case("006_optimisation", "hello_tuner.py", "script", best=r"Best max height: ([-\d.e+]+)"),
    Case("006_optimisation", "model-with-tuner.yaml", "tune", best=OUR_BEST),
    Case("006_optimisation", "model-with-tuner-custom.yaml", "tune", best=OUR_BEST),
]
#: the demos' tuning studies in YAML (``process tune``), run with the tutorials
DEMO_TUNES: list[Case] = [
    Case("fundamentals/002_production_line_optimisation", "production-line.yaml", "tune", best=OUR_BEST),
    Case("fundamentals/003_factory_simulation", "factory-simulation.yaml", "tune", best=OUR_BEST),
]

#: demo notebooks that need neither a network nor an API key
DEMOS: list[Case] = [
    Case("fundamentals/001_simple_model", "simple-model.ipynb", "notebook"),
    Case("fundamentals/003_factory_simulation", "factory-simulation.ipynb", "notebook",
         best=r"Maximum total value: \$([\d,]+)"),
    Case("fundamentals/002_production_line_optimisation", "production-line.ipynb", "notebook"),
    Case("physics-models/001_hot_water_tank", "hot-water-tank.ipynb", "notebook"),
    Case("physics-models/002_quadruple_tank", "quadruple-tank.ipynb", "notebook"),
    Case("process-control/001_bsm1_wastewater", "bsm1-wastewater.ipynb", "notebook"),
    Case("mining-minerals/001_crusher_circuit", "crusher_circuit.ipynb", "notebook",
         best=r"Product d80:\s+([\d.]+) mm"),
    Case("transport/001_traffic_simulation", "traffic-simulation.ipynb", "notebook"),
    Case("transport/002_bus_terminal", "bus-terminal.ipynb", "notebook"),
]


@dataclass
class Outcome:
    """One side's run of a case."""

    ok: bool
    seconds: float
    files: dict[str, bytes] = field(default_factory=dict)
    stdout: str = ""
    error: str = ""


def get_sdist(given: _t.Optional[str], work: Path) -> Path:
    """The unpacked sdist folder."""
    if given:
        sdist = Path(given)
    else:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"plugboard=={VERSION}", "-d", str(work)], check=True)
        sdist = next(work.glob(f"plugboard-{VERSION}.tar.gz"))
    if sdist.is_dir():
        return sdist
    with tarfile.open(sdist) as tar:
        tar.extractall(work / "sdist", filter="data")
    return work / "sdist" / f"plugboard-{VERSION}"


IMPORT_RANDOM = re.compile(r"^import random$", re.M)


def seed_tree(folder: Path, seed: int) -> None:
    """Both sides: ``import random`` in the tutorial's own modules gives them a private
    ``random.Random(seed)`` (which still has ``random.Random``), so that their draws do not
    depend on how many numbers the library itself takes from the global generator (plugboard
    draws its process and job ids from it)."""
    for path in folder.rglob("*.py"):
        text = path.read_text()
        if IMPORT_RANDOM.search(text):
            seeded = ("import random as _random_module\nrandom = type('SeededRandom', (_random_module.Random,), "
                      "{'Random': _random_module.Random, 'SystemRandom': _random_module.SystemRandom})"
                      f"({seed})")
            path.write_text(IMPORT_RANDOM.sub(seeded, text))


def rename_tree(folder: Path) -> None:
    """``plugboard`` -> ``plugboard_beam`` in the imports and type paths, nothing else."""
    for path in folder.rglob("*"):
        if path.suffix in (".py", ".ipynb"):
            path.write_text(PY_PREFIX.sub("plugboard_beam", path.read_text()))
        elif path.suffix in (".yaml", ".yml"):
            path.write_text(YAML_PREFIX.sub("plugboard_beam.", path.read_text()))


NOTEBOOK_RUNNER = """\
import ast, asyncio, json, sys
failed = []
try:
    import matplotlib
    matplotlib.use("Agg")
except ImportError:
    pass
try:
    import plotly.basedatatypes
    plotly.basedatatypes.BaseFigure.show = lambda self, *a, **k: None
except ImportError:
    pass
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
scope = {{"__name__": "__main__"}}
for i, cell in enumerate(json.load(open({notebook!r}))["cells"]):
    if cell["cell_type"] != "code":
        continue
    lines = "".join(cell["source"]).splitlines()
    source = "\\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))
    try:
        result = eval(compile(source, f"<cell {{i}}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), scope)
        if asyncio.iscoroutine(result):
            loop.run_until_complete(result)
    except Exception as exc:  # as Jupyter's "run all" past errors: report, go on
        failed.append(f"cell {{i}}: {{type(exc).__name__}}: {{exc}}".splitlines()[0])
        print(failed[-1], file=sys.stderr)
if failed:
    sys.exit(f"{{len(failed)}} cell(s) failed; first {{failed[0]}}")
"""


def notebook_to_script(nb: Path, out: Path) -> None:
    """A script running a notebook's code cells in order, as Jupyter does: one namespace,
    top-level ``await`` on one event loop, IPython magics and shell lines dropped, matplotlib
    drawing off-screen, plotly figures not shown; a cell that raises is reported and the next
    ones still run (the case stops, naming the first failed cell)."""
    out.write_text(NOTEBOOK_RUNNER.format(notebook=nb.name))


def run_side(case: Case, folder: Path, python: str, side: str, seed: int, runner: str, timeout: float) -> Outcome:
    """Run ``case`` in ``folder`` (a fresh copy) with ``python``; the files it wrote."""
    seeder = folder.parent / f"_seed_{folder.name}"
    seeder.mkdir(exist_ok=True)
    (seeder / "sitecustomize.py").write_text(SEEDER.format(seed=seed))
    before = {p for p in folder.rglob("*") if p.is_file()}
    bindir = Path(python).parent
    if case.kind in ("script", "notebook"):
        entry = case.entry
        if case.kind == "notebook":
            entry = Path(case.entry).stem + "_nb.py"
            notebook_to_script(folder / case.entry, folder / entry)
            before.add(folder / entry)
        cmd = [python, entry]
    elif side == "plugboard":
        verb = "tune" if case.kind == "tune" else "run"
        cmd = [str(bindir / "plugboard"), "process", verb, case.entry]
    else:
        verb = "tune" if case.kind == "tune" else "run"
        cmd = [str(bindir / "plugboard-beam"), "process", verb, case.entry, "--runner", runner]
        if case.kind == "tune":
            cmd += ["--seed", str(seed), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=f"{seeder}{os.pathsep}{folder}", MPLBACKEND="Agg", PYTHONHASHSEED=str(seed))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(False, time.perf_counter() - start, error=f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - start
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p not in before and "__pycache__" not in p.parts and p.suffix not in (".db", ".pyc")}
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return Outcome(False, seconds, files, proc.stdout, err[-1] if err else f"exit {proc.returncode}")
    return Outcome(True, seconds, files, proc.stdout)


def _cells(text: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text))]


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(x) and math.isnan(y))


def compare(case: Case, ref: Outcome, ours: Outcome) -> str:
    """``same`` or the first difference: the files written, then the numbers printed. A tuning
    study: the best objective each side found."""
    if case.best:
        found = [re.search(case.best, o.stdout) for o in (ref, ours)]
        shown = [m.group(1) if m else "-" for m in found]
        return f"best objective: plugboard {shown[0]}, ours {shown[1]}"
    names = sorted(set(ref.files) | set(ours.files))
    differs = compare_files(case, ref, ours, names)
    if differs:
        return differs
    a, b = _numbers(ref.stdout), _numbers(ours.stdout)
    if len(a) != len(b) or not all(_close(x, y) for x, y in zip(a, b, strict=False)):
        first = next((f"{x} vs {y}" for x, y in zip(a, b, strict=False) if not _close(x, y)),
                     f"{len(a)} vs {len(b)} numbers")
        return f"stdout differs ({first})"
    what = [f"{len(names)} file(s)"] if names else []
    what += [f"{len(a)} printed number(s)"] if a else []
    return f"same ({', '.join(what) or 'nothing written'})"


def compare_files(case: Case, ref: Outcome, ours: Outcome, names: list[str]) -> str:
    """The first difference between the files each side wrote, or ``""``."""
    for name in names:
        if name not in ref.files or name not in ours.files:
            return f"{name}: only on {'plugboard' if name in ref.files else 'plugboard_beam'}"
        a, b = ref.files[name].decode(errors="replace"), ours.files[name].decode(errors="replace")
        if Path(name).name in case.clock_files:
            if len(a.splitlines()) != len(b.splitlines()):
                return f"{name}: {len(a.splitlines())} rows vs {len(b.splitlines())}"
            continue
        ra, rb = _cells(a), _cells(b)
        if len(ra) != len(rb):
            return f"{name}: {len(ra)} rows vs {len(rb)}"
        for i, (x, y) in enumerate(zip(ra, rb, strict=False)):
            if len(x) != len(y) or not all(_close(p, q) for p, q in zip(x, y, strict=False)):
                return f"{name} line {i + 1}: {','.join(x)!r} vs {','.join(y)!r}"
    return ""


def _numbers(text: str) -> list[str]:
    return [n.replace(",", "") for n in re.findall(r"-?\d[\d,]*\.\d+(?:e[-+]?\d+)?|(?<=\$)-?\d[\d,]*", text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugboard-python", required=True, help="a Python with plugboard 0.9.0 installed")
    parser.add_argument("--python", default=sys.executable, help="a Python with plugboard_beam (default: this one)")
    parser.add_argument("--sdist", default=None, help="plugboard-0.9.0.tar.gz or its unpacked folder")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runners", default="local,direct", help="plugboard_beam runners for the YAML files")
    parser.add_argument("--only", default=None, help="run the cases whose folder/entry contains this")
    parser.add_argument("--demos", action="store_true", help="also the offline demo notebooks")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pb-tutorials-"))
    work.mkdir(parents=True, exist_ok=True)
    sdist = get_sdist(args.sdist, work)
    cases = [(sdist / "examples" / "tutorials", c) for c in CASES]
    if args.demos:
        cases += [(sdist / "docs" / "examples" / "demos", c) for c in DEMO_TUNES + DEMOS]
    print(f"{'case':<58} {'plugboard':>10} {'ours':<14} {'seconds':>13}  result")
    n = 0
    for base, case in cases:
        label = f"{case.folder}/{case.entry}"
        if args.only and args.only not in label:
            continue
        runners = args.runners.split(",") if case.kind in ("yaml", "tune") else ["-"]
        n += 1
        ref_dir = work / f"{n:02d}-plugboard"
        shutil.copytree(base / case.folder, ref_dir, dirs_exist_ok=True)
        seed_tree(ref_dir, args.seed)
        ref = run_side(case, ref_dir, args.plugboard_python, "plugboard", args.seed, "", args.timeout)
        for runner in runners:
            ours_dir = work / f"{n:02d}-beam-{runner}"
            shutil.copytree(base / case.folder, ours_dir, dirs_exist_ok=True)
            rename_tree(ours_dir)
            seed_tree(ours_dir, args.seed)
            ours = run_side(case, ours_dir, args.python, "beam", args.seed, runner, args.timeout)
            if ref.ok and ours.ok:
                result = compare(case, ref, ours)
            elif not ref.ok and not ours.ok:
                result = f"both stop; plugboard: {ref.error[:90]} | ours: {ours.error[:90]}"
            elif not ours.ok:
                result = f"ours stops: {ours.error[:160]}"
            else:
                result = f"plugboard stops: {ref.error[:160]}" + (f"; ours wrote {', '.join(ours.files)}"
                                                                 if ours.files else "")
                found = re.search(case.best, ours.stdout) if case.best else None
                if found:
                    result += f"; ours: best objective {found.group(1)}"
            print(f"{label:<58} {'ok' if ref.ok else 'stops':>10} {runner + (' ok' if ours.ok else ' stops'):<14} "
                  f"{ref.seconds:>6.1f}/{ours.seconds:>6.1f}  {result}", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
