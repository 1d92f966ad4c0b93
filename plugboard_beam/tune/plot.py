"""A study as a PNG (matplotlib, the ``plot`` extra): the objective of every trial and the best so
far; with two objectives, every trial in objective space with the Pareto front."""

from __future__ import annotations

import math
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.runtime.finals import is_number

if _t.TYPE_CHECKING:
    from plugboard_beam.tune.study import Tuner


def plot_study(tuner: Tuner, path: str) -> None:
    """Write ``path`` (PNG) for the trials of ``tuner``'s last run."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'plugboard-beam[plot]'") from None
    grid = tuner.result_grid
    names = tuner.metric_names()
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [r for r in grid if r.ok and all(is_number(r.metrics.get(n)) and math.isfinite(r.metrics[n])
                                              for n in names)]
    if len(names) == 2:
        front = {r.number for r in tuner.pareto_front}
        rest = [r for r in finite if r.number not in front]
        best = sorted((r for r in finite if r.number in front), key=lambda r: r.metrics[names[0]])
        ax.scatter([r.metrics[names[0]] for r in rest], [r.metrics[names[1]] for r in rest], s=14,
                   color="0.6", label="trials")
        ax.plot([r.metrics[names[0]] for r in best], [r.metrics[names[1]] for r in best], "o-", color="C3",
                label="Pareto front")
        ax.set_xlabel(f"{names[0]} ({tuner.modes[0]})")
        ax.set_ylabel(f"{names[1]} ({tuner.modes[1]})")
        ax.set_title(f"{len(grid)} trials, {len(front)} on the Pareto front")
    else:
        name, mode = names[0], tuner.modes[0]
        xs = [r.number for r in finite]
        ys = [r.metrics[name] for r in finite]
        ax.scatter(xs, ys, s=14, color="C0", label="trial")
        running: list[float] = []
        for y in ys:
            running.append(y if not running else (max if mode == "max" else min)(running[-1], y))
        ax.step(xs, running, where="post", color="C3", label=f"best so far ({mode})")
        bad = [r.number for r in grid if r not in finite]
        if bad and ys:
            ax.scatter(bad, [min(ys) if mode == "max" else max(ys)] * len(bad), marker="x", color="0.4",
                       label="failed / infeasible")
        ax.set_xlabel("trial")
        ax.set_ylabel(name)
        ax.set_title(f"{len(grid)} trials")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write it ({exc.strerror or exc})") from None
