"""``--runner direct`` (default): the model lowered to Beam, on the DirectRunner's batch engine."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import typing as _t

from plugboard_beam.exceptions import Interrupted
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.lowering.patches import isolate_worker_signals, tune_direct_runner
from plugboard_beam.runners.base import Instances, Runner, RunReport, pipeline_options
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.spec.load import LoadedModel


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
            tune_direct_runner()
            isolate_worker_signals()
            from plugboard_beam.lowering import beam as lowering_beam

            lowering_beam.PROGRESS = options.progress  # reaches DoFns running in this process
            interrupted = False
            try:
                result = pipeline.run()
                result.wait_until_finish()
            except KeyboardInterrupt:
                interrupted = True
            except Exception as exc:
                if not _interrupted(exc):
                    raise
                interrupted = True
            finally:
                lowering_beam.PROGRESS = None
                live = close_live_runs()  # destroy() on every component still running here
            if interrupted:
                workers = " here; worker processes destroy theirs as they exit" if _workers(self.options) else ""
                raise Interrupted(f"stopped: destroy() was called on the components of {live} running key "
                                  f"stage(s){workers}")
            for path in sorted(glob.glob(prefix + "*")):
                with open(path) as f:
                    report.failures += [Failure.from_json(line) for line in f if line.strip()]
            report.steps = _step_counters(result)
        return report


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


def _interrupted(exc: BaseException) -> bool:
    """Beam re-raises a ``KeyboardInterrupt`` that hit a DoFn as ``RuntimeError('KeyboardInterrupt')``."""
    seen: set[int] = set()
    err: _t.Optional[BaseException] = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, KeyboardInterrupt) or str(err).strip().endswith("KeyboardInterrupt"):
            return True
        err = err.__cause__ or err.__context__
    return False


def _workers(options: _t.Any) -> bool:
    from apache_beam.options.pipeline_options import DirectOptions

    return str(options.view_as(DirectOptions).direct_running_mode) == "multi_processing"
