"""``--runner local``: every key in this process with the step engine, no Beam."""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import StepError, UserError
from plugboard_beam.lowering.options import ProgressFn, RunOptions
from plugboard_beam.runners.base import BASE_FLAGS, Instances, Runner, RunReport
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import Failure, construct
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.spec.load import LoadedModel


class LocalRunner(Runner):
    """Every key in this process, one after the other."""

    name = "local"

    def accepts(self, options: RunOptions) -> frozenset[str]:
        return BASE_FLAGS | {"--progress"}

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        if options.pipeline_args:
            raise UserError(f"unknown option(s) for --runner local: {' '.join(options.pipeline_args)}")
        if options.record:
            raise UserError("--record writes Parquet through Beam: use --runner direct")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        report = RunReport()
        for sc, inst in insts:
            key = sc.key
            try:
                engine = Engine(inst.graph, construct(inst, key), key=key)
                try:
                    run_to_end(engine, _bind_progress(options.progress, key))
                finally:
                    for name, n in engine.steps().items():
                        report.steps[name] = report.steps.get(name, 0) + n
            except StepError as err:
                report.failures.append(Failure.of(err, err.also))
        return report



def _bind_progress(progress: _t.Optional[ProgressFn], key: str) -> _t.Optional[_t.Callable[[Engine], None]]:
    if progress is None:
        return None
    return lambda engine: progress(key, engine)
