"""Runners share one template method: instances -> check options -> execute -> report.

``LocalRunner`` runs every key in this process with the step engine; ``BeamRunner`` lowers the
model to a Beam pipeline (DirectRunner by default) whose DoFns call the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import difflib
import logging
import time
import typing as _t

import click

from plugboard_beam.exceptions import PlugboardBeamError, UserError
from plugboard_beam.logs import get_logger
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.runtime.failure import Failure, describe_failures, merge_by_key
from plugboard_beam.runtime.heap import frozen_heap
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import Instances, Scenario
from plugboard_beam.state import runs as state_runs

#: a failure as a runner may hand it in: the record, its dict, or its JSON text
FailureLike = _t.Union[Failure, dict[str, _t.Any], str]

_LOG = logging.getLogger("plugboard_beam.runners")


@dataclass
class RunReport:
    """What a run did: steps per component (summed over keys), keys run (0: one per instance; a
    runner that finds the keys in the data sets it), failures (one per key
    once the template has merged them; runners may add them as ``Failure``, its dict or JSON)."""

    keys: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    failures: list[FailureLike] = field(default_factory=list)
    #: key -> its final values (``runtime.finals.final_values``), when ``RunOptions.final_fields`` asked
    finals: dict[str, dict[str, _t.Any]] = field(default_factory=dict)
    #: lines about how the run ran, shown in its summary (e.g. the waves of ``--rows-per-wave``)
    notes: list[str] = field(default_factory=list)


#: run options (flags) and the runners they belong to
OWNERS: dict[str, str] = {
    "--streaming": "--runner direct or --runner dataflow",
    "--loops": "streaming runs (--streaming on --runner direct or dataflow)",
    "--feedback-topic": "streaming runs (--streaming on --runner direct or dataflow)",
    "--checkpoint": "streaming runs on --runner direct (--streaming); Dataflow keeps its own durable "
                    "state and exactly-once processing (drain and update a job instead; see README)",
    "--max-open-keys": "streaming runs on --runner direct (--streaming)",
    "--forget-ended-keys": "streaming runs on --runner direct (--streaming)",
    "--dry-run": "--runner dataflow",
    "--job-dir": "--runner dataflow (with --dry-run)",
    "--profile": "--runner dataflow",
    "--record": "batch runs on --runner direct or --runner dataflow",
    "--stages": "the Beam runners (--runner direct or dataflow)",
    "--progress": "the runners that run here (--runner local or direct, streaming included)",
    "--rows-per-wave": "batch runs on --runner direct",
    "--scenarios": "every runner",
}
BASE_FLAGS = frozenset({"--scenarios"})
#: what a streaming run on the DirectRunner honours
STREAMING_FLAGS = BASE_FLAGS | {"--progress", "--stages", "--streaming", "--loops", "--feedback-topic",
                                 "--checkpoint", "--max-open-keys", "--forget-ended-keys"}


class RunFailed(PlugboardBeamError):
    """One or more keys failed; the others ran to the end."""

    def __init__(self, report: RunReport) -> None:
        self.report = report
        failures = [Failure.coerce(f) for f in report.failures]
        n = len({f.key for f in failures})
        head = f"{n} of {report.keys} model instance(s) failed" if report.keys > 1 else "the run failed"
        super().__init__(head + ":" + describe_failures(failures))


class Runner:
    """The template: subclasses implement ``check`` and ``execute``."""

    name = "runner"

    def run(self, model: LoadedModel, options: RunOptions) -> RunReport:
        """Run every instance of ``model``; raise ``RunFailed`` if any key failed."""
        from plugboard_beam.lowering.plan import PARTITIONS

        if options.partition not in PARTITIONS:
            raise UserError(f"--stages {options.partition!r}: choose one of {', '.join(PARTITIONS)}")
        self.refuse_options(options)
        given = options.scenarios if options.scenarios is not None else self.default_scenarios(model)
        # every scenario checked now (all problems at once); a key's model is made as it runs
        insts = Instances(model, given)
        self.state = self.state_target(model, options)
        if not self.runs_own_run:
            from plugboard_beam.runtime.user_run import refusal

            refusal(model, self.label(options))
        self.check(model, options)
        log = get_logger("plugboard_beam.run", model=str(model.path), runner=self.label(options),
                         **({"job_id": options.log.job_id} if options.log and options.log.job_id else {}))
        log.info("run started", keys=len(insts) if given is not None or len(insts) > 1 else None)
        start = time.monotonic()
        self.report_resources(model, options)
        backend = state_runs.start(self.state) if self.state is not None else None
        failed = True
        if options.tracker is not None:
            options.tracker.expect(len(insts))  # (a runner that finds its keys in the data says so)
        try:
            with frozen_heap():  # what lives for the whole run is not walked by each full collection
                report = self.execute(model, insts, options)
            report.keys = report.keys or len(insts)
            report.failures = list(merge_by_key(Failure.coerce(f) for f in report.failures))
            failed = bool(report.failures)
        except BaseException as exc:
            log.info("run stopped", reason=f"{type(exc).__name__}: {exc}"[:500],
                     seconds=round(time.monotonic() - start, 3))
            raise
        finally:
            if backend is not None and self.state is not None:
                state_runs.finish(backend, self.state, failed)
                click.echo(f"state: job {self.state.job_id}, process {self.state.process!r} "
                           f"({self.state.type.rpartition('.')[2]})", err=True)
        log.info("run ended", keys=report.keys, failed_keys=len(report.failures), steps=sum(report.steps.values()),
                 seconds=round(time.monotonic() - start, 3))
        if report.failures:
            raise RunFailed(report)
        return report

    #: whether this runner writes the ``state:`` a model file names (others refuse it)
    writes_state = False
    #: whether this runner calls a component's own ``run()`` (others refuse such components)
    runs_own_run = False
    #: where this run writes its status (``Runner.run`` sets it from the model's ``state:``)
    state: _t.Optional[state_runs.StateTarget] = None

    def state_target(self, model: LoadedModel, options: RunOptions) -> _t.Optional[state_runs.StateTarget]:
        """The model's ``state:`` on this runner (refused by runners that do not write it)."""
        if "state" in model.config.plugboard.process.args.model_fields_set and not self.writes_state:
            here = "streaming runs (--streaming)" if options.streaming else f"--runner {self.label(options)}"
            raise UserError(f"state: (in {model.path.name}) is written by --runner local and batch runs on "
                            f"--runner direct; not yet by {here}: remove it there")
        return state_runs.StateTarget.of(model, self.name, getattr(options, "job_id", None))

    def default_scenarios(self, model: LoadedModel) -> _t.Optional[list[Scenario]]:
        """The keys to run when no ``--scenarios`` are given (None: the one default key). A
        runner that finds the keys itself (the Beam lowering reads keyed data) keeps None."""
        return None

    def accepts(self, options: RunOptions) -> frozenset[str]:
        """The run options (flag names) this runner honours, given the others."""
        return STREAMING_FLAGS

    def refuse_options(self, options: RunOptions) -> None:
        """Every option given either takes effect on this runner or is refused here, naming the
        runner it belongs to."""
        refused = sorted(options.given - self.accepts(options), key=list(OWNERS).index)
        if refused:
            lines = [f"{flag} is an option of {OWNERS[flag]}" for flag in refused]
            raise UserError(f"option(s) with no effect on --runner {self.label(options)}:\n  " + "\n  ".join(lines))

    def label(self, options: RunOptions) -> str:
        """How the user chose this runner."""
        return self.name

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        """Reject options this runner cannot honour (raise UserError)."""

    def report_resources(self, model: LoadedModel, options: RunOptions) -> None:
        """Components' ``resources``: this runner places nothing, so say once that they are
        ignored here (Dataflow turns them into resource hints)."""
        from plugboard_beam.lowering.hints import component_resources, describe_requirements

        asked = describe_requirements(component_resources(model))
        if asked:
            _LOG.warning("component resources are ignored on --runner %s (every component runs on this "
                         "machine; --runner dataflow makes them Beam resource hints): %s", self.label(options), asked)

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        """Run every (scenario, what its key runs)."""
        raise NotImplementedError


def pipeline_options(args: _t.Sequence[str], defaults: dict[str, _t.Any], *, dataflow_only: str = "") -> _t.Any:
    """Beam PipelineOptions from command-line flags; unknown flags are an error (with a
    suggestion), not a warning. ``dataflow_only`` (a runner's name): refuse the options that
    only Dataflow reads (Google Cloud and worker options, plugboard's ``--no_wait``...) there."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions

    from plugboard_beam.dataflow.options import PLUGBOARD_OPTIONS, known_options

    known = known_options()
    unknown, cloud = [], []
    cloud_flags = _flags_of(GoogleCloudOptions, WorkerOptions) if dataflow_only else set()
    for token in args:
        if token.startswith("-") and not token.startswith("--") and len(token) > 1:
            unknown.append(token)
            continue
        if not token.startswith("--"):
            continue
        name = token[2:].split("=", 1)[0]
        if name in PLUGBOARD_OPTIONS or name in cloud_flags:
            cloud.append(f"--{name}")
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known | set(PLUGBOARD_OPTIONS)), n=1, cutoff=0.75)
            unknown.append(f"--{name}" + (f" (did you mean --{close[0]}?)" if close else ""))
    if unknown:
        raise UserError(f"unknown option(s): {', '.join(unknown)} (see `plugboard-beam process run --help` and "
                        "Beam's pipeline options)")
    if cloud and dataflow_only:
        raise UserError(f"{', '.join(cloud)}: Dataflow option(s) (--runner dataflow); they have no effect on "
                        f"--runner {dataflow_only}")
    if cloud and not dataflow_only and any(c[2:] in PLUGBOARD_OPTIONS for c in cloud):
        raise UserError(f"{', '.join(c for c in cloud if c[2:] in PLUGBOARD_OPTIONS)}: Dataflow option(s) "
                        "(--runner dataflow)")
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(args), **defaults)


def split_dataflow_only(args: _t.Sequence[str]) -> tuple[list[str], list[str]]:
    """(the other options, the options only Dataflow reads) of ``args`` (``--name=value``
    tokens): for callers that must run a Dataflow-shaped command line elsewhere."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions

    from plugboard_beam.dataflow.options import PLUGBOARD_OPTIONS

    cloud = _flags_of(GoogleCloudOptions, WorkerOptions) | set(PLUGBOARD_OPTIONS)
    kept: list[str] = []
    dropped: list[str] = []
    for token in args:
        name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
        (dropped if name in cloud else kept).append(token)
    return kept, dropped


def _flags_of(*classes: type) -> set[str]:
    import argparse

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for cls in classes:
        cls._add_argparse_args(parser)  # type: ignore[attr-defined]
    return {s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--")}


__all__ = ["BASE_FLAGS", "OWNERS", "STREAMING_FLAGS", "FailureLike", "Instances", "RunFailed",
           "RunOptions", "RunReport", "Runner", "pipeline_options"]
