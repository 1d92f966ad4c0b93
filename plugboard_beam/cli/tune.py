"""``plugboard-beam process tune MODEL``: the model's ``tune:`` study, each batch of trials run as
the keys of one run (``--runner local``: in this process; ``direct``: one Beam pipeline per batch)."""

from __future__ import annotations

import math
from pathlib import Path
import sys
import time
import typing as _t

import click

from plugboard_beam.cli.logging_options import log_options, setup_logging
from plugboard_beam.cli.main import handle_errors, split_model
from plugboard_beam.cli.progress import EVERY_SECONDS, Progress
from plugboard_beam.exceptions import Interrupted, UserError
from plugboard_beam.runtime.context import Snapshot

if _t.TYPE_CHECKING:
    from plugboard_beam.logs import LogConfig
    from plugboard_beam.spec.load import LoadedModel
    from plugboard_beam.tune.study import ResultGrid, TrialResult, Tuner

OUT_FORMATS = (".csv", ".parquet")


@click.command(name="tune", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("tokens", nargs=-1, type=click.UNPROCESSED, metavar="MODEL [BEAM OPTIONS]")
@click.option("--runner", type=click.Choice(["local", "direct", "dataflow"], case_sensitive=False), default="local",
              show_default=True, help="local: trials one after the other in this process. direct: each batch "
                                      "of trials as the keys of one Beam pipeline (DirectRunner). dataflow: each "
                                      "batch as the keys of one Dataflow job.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write every trial (parameters, objectives, state, failure) to this .csv or .parquet file.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG: the objective over trials with the best so far (two objectives: the "
                   "Pareto front). Needs matplotlib (the 'plot' extra).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage (e.g. sqlite:///study.db): the study is kept there and resumed by a "
                   "later run with the same storage (overrides tune.args.algorithm.storage).")
@click.option("--study-name", default=None, help="The study's name in --storage (default: from the model).")
@click.option("--seed", type=int, default=None, help="Seed the sampler: the same seed gives the same trials.")
@click.option("--num-samples", type=click.IntRange(min=1), default=None, help="Override tune.args.num_samples.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None,
              help="Override tune.args.max_concurrent: the trials of one batch (one run).")
@click.option("--progress/--no-progress", default=None,
              help="Show trials done and the best so far (default: on; a bar on a terminal, a plain line "
                   "every --progress-every seconds otherwise).")
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=EVERY_SECONDS, show_default=True,
              metavar="SECONDS", help="Off a terminal: seconds between plain progress lines.")
@log_options
@click.option("--dry-run", is_flag=True, help="Dataflow: build the first batch's job offline into --job-dir, "
                                             "run no trial.")
@click.option("--job-dir", default=None, help="Dataflow: where --dry-run writes (default: dataflow-job).")
@click.option("--profile", type=click.Path(dir_okay=False), default=None,
              help="Dataflow: YAML file of pipeline options (project, region, temp_location, ...); flags win.")
@click.pass_context
@handle_errors
def tune(ctx: click.Context, tokens: tuple[str, ...], runner: str, out: _t.Optional[str], plot: _t.Optional[str],
         storage: _t.Optional[str],
         study_name: _t.Optional[str], seed: _t.Optional[int], num_samples: _t.Optional[int],
         max_concurrent: _t.Optional[int], progress: _t.Optional[bool], progress_every: float, dry_run: bool,
         job_dir: _t.Optional[str], profile: _t.Optional[str], **log_params: _t.Any) -> None:
    """Optimise MODEL's arguments with its tune: section (Optuna); prints the best trial(s)."""
    from plugboard_beam.tune.setup import load_tune_file
    from plugboard_beam.tune.study import Tuner

    model_path, pipeline_args = split_model(list(tokens) + list(ctx.args))
    runner = runner.lower()
    if pipeline_args and runner == "local":
        raise UserError(f"unknown option(s) for --runner local: {' '.join(pipeline_args)} (Beam options go "
                        "with --runner direct)")
    dataflow_only = [flag for flag, given in (("--dry-run", dry_run), ("--job-dir", job_dir is not None),
                                              ("--profile", profile is not None)) if given]
    if dataflow_only and runner != "dataflow":
        raise UserError(f"{', '.join(dataflow_only)}: Dataflow options (with --runner dataflow), not for "
                        f"--runner {runner}")
    if job_dir is not None and not dry_run:
        raise UserError("--job-dir is where --dry-run writes: give --dry-run too")
    if dry_run and (out is not None or plot is not None):
        raise UserError(f"{'--out' if out is not None else '--plot'}: a dry run runs no trial, so it has nothing "
                        "to write")
    if out is not None:
        check_out(out)
    if plot is not None:
        check_plot(plot)
    spec = load_tune_file(model_path)
    args = spec.args
    algorithm = args.algorithm.model_copy(update={k: v for k, v in (("storage", storage), ("study_name", study_name))
                                                  if v is not None})
    tuner = Tuner(objective=args.objective, parameters=args.parameters, num_samples=num_samples or args.num_samples,
                  mode=args.mode, max_concurrent=max_concurrent or args.max_concurrent, algorithm=algorithm)
    if dry_run:
        dry_run_first_batch(tuner, spec.model, seed, pipeline_args, profile, job_dir or "dataflow-job",
                            setup_logging(ctx))
        return
    bar = TrialProgress(tuner, progress, every=progress_every)
    log = setup_logging(ctx, line=bar)
    executor: _t.Any = None
    if runner == "dataflow":
        from plugboard_beam.runners.trials import DataflowExecutor

        executor = DataflowExecutor(pipeline_args, profile, log=log)
    elif runner == "direct":
        from plugboard_beam.lowering.options import RunOptions
        from plugboard_beam.runners.direct import BeamRunner
        from plugboard_beam.runners.trials import RunnerExecutor

        executor = RunnerExecutor(BeamRunner(), RunOptions(pipeline_args=pipeline_args, log=log))
    try:
        bar.display.start()
        best = tuner.run(spec.model, executor=executor, seed=seed, on_trial=bar)
    except (KeyboardInterrupt, Interrupted):
        bar.done()
        kept = _kept(tuner)
        if out is not None and kept:
            write_trials(tuner.result_grid, out)
        where = " and ".join(w for w in ((f"in {out}" if out and kept else ""),
                                         (f"in {algorithm.storage}" if algorithm.storage else "")) if w)
        click.echo(f"stopped: {kept} trial(s) finished{' (kept ' + where + ')' if where else ''}", err=True)
        raise
    finally:
        bar.done()
    grid = tuner.result_grid
    if out is not None:
        write_trials(grid, out)
    if plot is not None:
        from plugboard_beam.tune.plot import plot_study

        plot_study(tuner, plot)
    click.echo(summary(tuner, grid, best))


def dry_run_first_batch(tuner: Tuner, model: LoadedModel, seed: _t.Optional[int], pipeline_args: list[str],
                        profile: _t.Optional[str], job_dir: str, log: _t.Optional[LogConfig] = None) -> None:
    """``--runner dataflow --dry-run``: the first batch's Dataflow job (its trials as keys), built
    offline into ``job_dir``; later batches are jobs like it, with the trials the study asks next."""
    from plugboard_beam.dataflow.options import resolve
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.runners.dataflow import DataflowRunner
    from plugboard_beam.runners.trials import batch_job_name
    from plugboard_beam.tune.study import DEFAULT_BATCH

    model, scenarios, fields = tuner.first_batch(model, seed=seed)
    runner = DataflowRunner()
    # the job name a real run gives its first batch (the given --job_name or the default, -b001)
    base = resolve(pipeline_args, profile=profile, model_name=model.graph.name, streaming=False, dry_run=True,
                   record=None).job_name
    pipeline_args = [*pipeline_args, f"--job_name={batch_job_name(base, 1)}"]
    runner.run(model, RunOptions(scenarios=scenarios, final_fields=fields, pipeline_args=pipeline_args,
                                 dry_run=True, job_dir=job_dir, profile=profile, log=log))
    batch = tuner.max_concurrent or DEFAULT_BATCH
    jobs = math.ceil(tuner.num_samples / batch)
    click.echo(f"dry run: batch 1 of {jobs} ({len(scenarios)} of {tuner.num_samples} trials: keys "
               f"{scenarios[0].key} .. {scenarios[-1].key}) as the keys of one Dataflow job in {job_dir}/; "
               f"each batch is one job, asked once the one before it has ended")


def _kept(tuner: Tuner) -> int:
    try:
        return sum(1 for r in tuner.result_grid if r.state != "interrupted")
    except ValueError:
        return 0


def check_out(out: str) -> None:
    """``--out``: a .csv or .parquet file in a folder that exists."""
    path = Path(out)
    if path.suffix.lower() not in OUT_FORMATS:
        raise UserError(f"--out {out}: give a .csv or .parquet file")
    if not path.resolve().parent.is_dir():
        raise UserError(f"--out {out}: the folder {path.resolve().parent} does not exist")


def check_plot(plot: str) -> None:
    """``--plot``: a .png file in a folder that exists, and matplotlib installed."""
    import importlib.util

    path = Path(plot)
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot {plot}: give a .png file")
    if not path.resolve().parent.is_dir():
        raise UserError(f"--plot {plot}: the folder {path.resolve().parent} does not exist")
    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("--plot needs matplotlib: pip install 'plugboard-beam[plot]'")


def write_trials(grid: ResultGrid, out: str) -> None:
    """One row per trial: trial, key, state, parameters, objectives, failure."""
    import pyarrow as pa

    rows = grid.rows()
    if not rows:
        return
    columns = list(rows[0])
    table = pa.table({c: pa.array([_cell(r.get(c)) for r in rows]) for c in columns})
    if out.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, out)


def _cell(value: _t.Any) -> _t.Any:
    if isinstance(value, (list, dict, tuple)):
        return repr(value)
    return value


def summary(tuner: Tuner, grid: ResultGrid, best: _t.Union[TrialResult, list[TrialResult]]) -> str:
    """What the study found: the best trial (per objective), the Pareto front for several."""
    failed = sum(1 for r in grid if r.state == "failed")
    infeasible = sum(1 for r in grid if r.state == "infeasible")
    head = f"{len(grid)} trials ({failed} failed, {infeasible} infeasible)"
    lines = [head]
    if tuner.is_multi_objective:
        front = tuner.pareto_front
        lines.append(f"Pareto front: {len(front)} trial(s)")
        lines += [f"  {_describe(r)}" for r in front]
        return "\n".join(lines)
    assert not isinstance(best, list)
    lines.append(f"best: {_describe(best)}")
    return "\n".join(lines)


def _describe(r: TrialResult) -> str:
    metrics = ", ".join(f"{k} = {_num(v)}" for k, v in r.metrics.items())
    config = ", ".join(f"{k} = {_num(v)}" for k, v in r.config.items())
    return f"trial {r.number} ({r.key}, {r.state}): {metrics}; {config}"


def _num(v: _t.Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.6g}"
    return str(v)


class TrialProgress:
    """Trials done / total, failed and the best so far, on ``cli.progress.Progress`` (the display
    of ``process run``: a bar on a terminal, a plain line every ``every`` seconds otherwise); a
    failed trial is always reported on its own line (trial, component, step, reason)."""

    def __init__(self, tuner: Tuner, enabled: _t.Optional[bool], stream: _t.TextIO = sys.stderr,
                 every: float = EVERY_SECONDS) -> None:
        self.tuner = tuner
        self.stream = stream
        self.failed = 0
        self.trials = (0, 0)
        self.best = "no result yet"
        self.start = time.monotonic()
        self.display = Progress(self.snapshot, enabled is not False, stream, every, unit="trials",
                                extra=lambda: self.best, rate=False)

    @property
    def enabled(self) -> bool:
        """Whether progress is shown."""
        return self.display.enabled

    def snapshot(self) -> Snapshot:
        """Trials done / total and failed, as the display reads them."""
        done, total = self.trials
        return Snapshot(done, self.failed, total or None, 0, 0.0, time.monotonic() - self.start, "")

    def __call__(self, result: TrialResult, best: _t.Optional[TrialResult], done: int, total: int) -> None:
        self.display.start()
        if result.state == "failed":
            self.failed += 1
            with self.display.suspend():
                self.stream.write(f"trial {result.number} ({result.key}) failed: {result.failure}\n")
        name = self.tuner.metric_names()[0]
        self.best = f"best {_num(best.metrics[name])} (trial {best.number})" if best is not None else "no result yet"
        self.trials = (done, total)

    def suspended(self) -> _t.ContextManager[None]:
        """The display taken away while a log record is written (``plugboard_beam.logs.LineOwner``)."""
        return self.display.suspend()

    def done(self) -> None:
        """End the display."""
        self.display.stop()
