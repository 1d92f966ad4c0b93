"""Runners share one template method: instances -> check options -> execute -> report.

``LocalRunner`` runs every key in this process with the step engine; ``BeamRunner`` lowers the
model to a Beam pipeline (DirectRunner by default) whose DoFns call the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import glob
import json
import logging
import os
import tempfile
import typing as _t

from plugboard_beam.exceptions import PlugboardBeamError, StepError, UserError
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import DEFAULT_KEY, Scenario, instances

Instances = list[tuple[Scenario, LoadedModel]]

ProgressFn = _t.Callable[[str, Engine], None]


@dataclass
class RunReport:
    """What a run did: steps per component (summed over keys), keys run, failures."""

    keys: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, _t.Any]] = field(default_factory=list)


class RunFailed(PlugboardBeamError):
    """One or more keys failed; the others ran to the end."""

    def __init__(self, report: RunReport) -> None:
        self.report = report
        lines = [f["message"] + "".join(f"\n    also: {a}" for a in f.get("also", [])) for f in report.failures]
        n = len(report.failures)
        head = f"{n} of {report.keys} model instance(s) failed" if report.keys > 1 else "the run failed"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


@dataclass
class RunOptions:
    """Options every runner understands."""

    scenarios: _t.Optional[_t.Sequence[Scenario]] = None
    record: _t.Optional[str] = None
    partition: str = "fused"
    pipeline_args: _t.Sequence[str] = ()
    progress: _t.Optional[ProgressFn] = None
    #: streaming: sources are Pub/Sub subscriptions; loops go through a feedback topic or stay fused
    streaming: bool = False
    loops: str = "feedback"
    #: streaming: the feedback topic of cut loop edges (default: one per edge, named from model and edge)
    feedback_topic: _t.Optional[str] = None
    #: Dataflow: build the job offline into ``job_dir`` instead of submitting it
    dry_run: bool = False
    job_dir: str = "dataflow-job"
    #: a YAML file of pipeline options (``project: ...``); command-line flags win
    profile: _t.Optional[str] = None


class Runner:
    """The template: subclasses implement ``check`` and ``execute``."""

    name = "runner"

    def run(self, model: LoadedModel, options: RunOptions) -> RunReport:
        """Run every instance of ``model``; raise ``RunFailed`` if any key failed."""
        from plugboard_beam.lowering.plan import PARTITIONS

        if options.partition not in PARTITIONS:
            raise UserError(f"--stages {options.partition!r}: choose one of {', '.join(PARTITIONS)}")
        scenarios = list(options.scenarios or [Scenario(DEFAULT_KEY, {})])
        insts = [(sc, inst) for sc, (_, inst) in zip(scenarios, instances(model, options.scenarios), strict=True)]
        self.check(model, options)
        report = self.execute(model, insts, options)
        report.keys = len(insts)
        if report.failures:
            raise RunFailed(report)
        return report

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        """Reject options this runner cannot honour (raise UserError)."""

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        """Run every (scenario, model instance)."""
        raise NotImplementedError


class LocalRunner(Runner):
    """Every key in this process, one after the other."""

    name = "local"

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        if options.pipeline_args:
            raise UserError(f"unknown option(s) for --runner local: {' '.join(options.pipeline_args)}")
        if options.record:
            raise UserError("--record writes Parquet through Beam: use --runner direct")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        report = RunReport()
        for sc, inst in insts:
            key = sc.key
            engine = Engine(inst.graph, inst.build_components(key), key=key)
            try:
                run_to_end(engine, _bind_progress(options.progress, key))
            except StepError as err:
                also = getattr(err, "also", [])
                report.failures.append({"key": key, "component": err.component, "step": err.step,
                                        "message": str(err), "also": [str(a) for a in also]})
            for name, n in engine.steps().items():
                report.steps[name] = report.steps.get(name, 0) + n
        return report


def _bind_progress(progress: _t.Optional[ProgressFn], key: str) -> _t.Optional[_t.Callable[[Engine], None]]:
    if progress is None:
        return None
    return lambda engine: progress(key, engine)


def pipeline_options(args: _t.Sequence[str], defaults: dict[str, _t.Any]) -> _t.Any:
    """Beam PipelineOptions from command-line flags; unknown flags are an error, not a warning."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen: set[type] = set()
    todo = list(PipelineOptions.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        try:
            cls._add_argparse_args(parser)
        except Exception:
            continue
    _, unknown = parser.parse_known_args(list(args))
    if unknown:
        raise UserError(f"unknown pipeline option(s): {' '.join(unknown)} (see Beam's pipeline options)")
    return PipelineOptions(list(args), **defaults)


class BeamRunner(Runner):
    """Lower to Beam and run on ``beam_runner`` (the DirectRunner by default)."""

    name = "direct"

    def __init__(self, beam_runner: str = "FnApiRunner") -> None:
        # Beam's "DirectRunner" first tries to download the Prism runner from the internet;
        # FnApiRunner is the DirectRunner's portable batch engine and honours --direct_* options.
        self.beam_runner = beam_runner

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        self.options = pipeline_options(options.pipeline_args, {"runner": self.beam_runner})

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        import apache_beam as beam

        from plugboard_beam.lowering.beam import build, close_live_runs
        from plugboard_beam.lowering.plan import make_plan

        plan = make_plan(model.graph, options.partition)
        overrides = [(sc.key, dict(sc.overrides)) for sc, _ in insts]
        report = RunReport()
        with tempfile.TemporaryDirectory(prefix="plugboard-beam-") as tmp:
            prefix = os.path.join(tmp, "errors")
            pipeline = beam.Pipeline(options=self.options)
            build(pipeline, model, plan, overrides, options.record, prefix)
            _tune_direct_runner()
            from plugboard_beam.lowering import beam as lowering_beam

            lowering_beam.PROGRESS = options.progress  # reaches DoFns running in this process
            try:
                result = pipeline.run()
                result.wait_until_finish()
            finally:
                lowering_beam.PROGRESS = None
                close_live_runs()
            for path in sorted(glob.glob(prefix + "*")):
                with open(path) as f:
                    report.failures += [json.loads(line) for line in f if line.strip()]
            report.steps = _step_counters(result)
        report.failures.sort(key=lambda f: str(f["key"]))
        return report


def _tune_direct_runner() -> None:
    """The in-memory worker's state cache weighs every value it stores by walking all loaded
    modules (~1.5 ms per new key); our state is written once per element anyway."""
    try:
        from apache_beam.runners.portability.fn_api_runner import worker_handlers

        worker_handlers.STATE_CACHE_SIZE_MB = 0
    except (ImportError, AttributeError):  # pragma: no cover - other Beam versions
        pass


def _step_counters(result: _t.Any) -> dict[str, int]:
    try:
        from apache_beam.metrics.metric import MetricsFilter

        counters = result.metrics().query(MetricsFilter().with_namespace("plugboard_beam"))["counters"]
    except Exception:
        logging.getLogger("plugboard_beam").debug("no metrics", exc_info=True)
        return {}
    steps: dict[str, int] = {}
    for c in counters:
        name = c.key.metric.name
        if name.startswith("steps/"):
            comp = name[len("steps/"):]
            steps[comp] = steps.get(comp, 0) + int(c.committed or c.attempted or 0)
    return steps


def _dataflow() -> Runner:
    from plugboard_beam.dataflow.runner import DataflowRunner

    runner: Runner = DataflowRunner()
    return runner


def _streaming() -> Runner:
    from plugboard_beam.streaming.runner import StreamingRunner

    runner: Runner = StreamingRunner()
    return runner


RUNNERS: dict[str, _t.Callable[[], Runner]] = {
    "local": LocalRunner,
    "direct": BeamRunner,
    "dataflow": _dataflow,
    "direct-streaming": _streaming,
}
