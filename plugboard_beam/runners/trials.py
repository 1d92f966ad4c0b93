"""Trials as keys: a tuning study's batch runs as the keys of one run on a runner
(``--runner local`` in this process, ``direct`` as one Beam pipeline, ``dataflow`` as one
Dataflow job), each key reporting its final values (the objectives) or its failure."""

from __future__ import annotations

import dataclasses
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.logs import LogConfig
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
                model.resolve(sc.overrides)  # (checked, not copied)
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


class DataflowExecutor(RunnerExecutor):
    """``process tune --runner dataflow``: each batch of trials is one Dataflow job whose keys are
    the trials (named ``<job name>-b001``, ``-b002``, ...); the command waits for each job and
    reads the keys' final values back from ``--temp_location``."""

    def __init__(self, pipeline_args: _t.Sequence[str], profile: _t.Optional[str] = None,
                 log: _t.Optional[LogConfig] = None) -> None:
        from plugboard_beam.runners.dataflow import DataflowRunner

        super().__init__(DataflowRunner(), RunOptions(pipeline_args=list(pipeline_args), profile=profile, log=log))
        self.batches = 0
        self._base = ""

    def __call__(self, model: LoadedModel, scenarios: list[Scenario], fields: tuple[str, ...]
                 ) -> dict[str, KeyOutcome]:
        if not self._base:
            self._base = self.check(model)
        self.batches += 1
        args = [*self.options.pipeline_args, f"--job_name={batch_job_name(self._base, self.batches)}"]
        executor = RunnerExecutor(self.runner, dataclasses.replace(self.options, pipeline_args=args))
        return executor(model, scenarios, fields)

    def check(self, model: LoadedModel) -> str:
        """The options checked offline (before any batch): a study needs each job's results, so
        ``--no_wait`` and template locations are refused. The base of the jobs' names."""
        from plugboard_beam.dataflow.options import resolve

        config = resolve(self.options.pipeline_args, profile=self.options.profile, model_name=model.graph.name,
                         streaming=False, dry_run=False, record=None)
        if not config.wait:
            raise UserError("process tune --runner dataflow waits for each batch's job to tell its results to "
                            "the study: drop --no_wait")
        if config.template:
            raise UserError("process tune --runner dataflow runs its jobs: a template location (--template_location, "
                            "--dataflow_job_file) writes a job instead of running it; drop it")
        return config.job_name


def batch_job_name(base: str, batch: int) -> str:
    """``<base>-b007``, within Dataflow's 63 characters."""
    from plugboard_beam.dataflow.options import MAX_JOB_NAME

    suffix = f"-b{batch:03d}"
    return base[: MAX_JOB_NAME - len(suffix)].rstrip("-") + suffix
