"""Trials as keys: a tuning study's batch runs as the keys of one run on a runner
(``--runner local`` in this process, ``direct`` as one Beam pipeline), each key reporting its
final values (the objectives) or its failure."""

from __future__ import annotations

import dataclasses
import typing as _t

from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.runners.base import RunFailed, Runner, RunReport
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import Scenario
from plugboard_beam.tune.study import KeyOutcome, invalid_overrides


class RunnerExecutor:
    """Runs each batch with ``runner`` (default: ``LocalRunner``) and ``options`` (the batch's
    trials become its scenarios)."""

    def __init__(self, runner: _t.Optional[Runner] = None, options: _t.Optional[RunOptions] = None) -> None:
        if runner is None:
            from plugboard_beam.runners.local import LocalRunner

            runner = LocalRunner()
        self.runner = runner
        self.options = options or RunOptions()

    def __call__(self, model: LoadedModel, scenarios: list[Scenario], fields: tuple[str, ...]
                 ) -> dict[str, KeyOutcome]:
        refused: dict[str, KeyOutcome] = {}
        valid = []
        for sc in scenarios:  # one run checks every key's overrides at once: a bad trial fails alone
            try:
                model.with_overrides(sc.overrides)
                valid.append(sc)
            except ModelError as err:
                refused[sc.key] = invalid_overrides(err)
        if not valid:
            return refused
        options = dataclasses.replace(self.options, scenarios=valid, final_fields=fields)
        try:
            report = self.runner.run(model, options)
        except RunFailed as err:
            report = err.report
        return {**outcomes(report, [sc.key for sc in valid]), **refused}


def outcomes(report: RunReport, keys: _t.Sequence[str]) -> dict[str, KeyOutcome]:
    """Each key's outcome: a constraint (infeasible), a failure, or its final values."""
    failures = {f.key: f for f in (Failure.coerce(x) for x in report.failures)}
    out: dict[str, KeyOutcome] = {}
    for key in keys:
        final = report.finals.get(key) or {}
        constraint = final.get("constraint")
        failure = failures.get(key)
        if constraint is None and failure is not None and failure.error_type == "ConstraintError":
            constraint = {"objective_value": None, "component": failure.component, "step": failure.step,
                          "reason": failure.reason}
        if constraint is not None:
            out[key] = KeyOutcome(values=dict(final.get("values") or {}), constraint=constraint)
        elif failure is not None:
            out[key] = KeyOutcome(failure=failure.message)
        elif not final:
            out[key] = KeyOutcome(failure="the run reported no final values for this trial")
        else:
            out[key] = KeyOutcome(values=dict(final.get("values") or {}))
    return out
