"""Runners share one template method: instances -> check options -> execute -> report.

``LocalRunner`` runs every key in this process with the step engine; ``BeamRunner`` lowers the
model to a Beam pipeline (DirectRunner by default) whose DoFns call the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import typing as _t

from plugboard_beam.exceptions import PlugboardBeamError, UserError
from plugboard_beam.lowering.options import ProgressFn, RunOptions
from plugboard_beam.runtime.failure import Failure, merge_by_key
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import DEFAULT_KEY, Scenario, instances

#: a failure as a runner may hand it in: the record, its dict, or its JSON text
FailureLike = _t.Union[Failure, dict[str, _t.Any], str]

Instances = list[tuple[Scenario, LoadedModel]]


@dataclass
class RunReport:
    """What a run did: steps per component (summed over keys), keys run, failures (one per key
    once the template has merged them; runners may add them as ``Failure``, its dict or JSON)."""

    keys: int = 0
    steps: dict[str, int] = field(default_factory=dict)
    failures: list[FailureLike] = field(default_factory=list)


class RunFailed(PlugboardBeamError):
    """One or more keys failed; the others ran to the end."""

    def __init__(self, report: RunReport) -> None:
        self.report = report
        failures = [Failure.coerce(f) for f in report.failures]
        lines = [f.describe() for f in failures]
        n = len({f.key for f in failures})
        head = f"{n} of {report.keys} model instance(s) failed" if report.keys > 1 else "the run failed"
        super().__init__(head + ":\n  " + "\n  ".join(lines))


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
        report.failures = list(merge_by_key(Failure.coerce(f) for f in report.failures))
        if report.failures:
            raise RunFailed(report)
        return report

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        """Reject options this runner cannot honour (raise UserError)."""

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        """Run every (scenario, model instance)."""
        raise NotImplementedError


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


__all__ = ["FailureLike", "Instances", "ProgressFn", "RunFailed", "RunOptions", "RunReport", "Runner",
           "pipeline_options"]
