"""The job id of a run, as plugboard 0.9.0 chooses it: ``--job-id``, else the model's
``state: args: job_id``, else a new ``Job_<16 letters/digits>``.

The chosen id is written into the loaded model's spec (``state.args.job_id``, as plugboard's
CLI does) and into ``RunOptions.job_id``, where logs and state backends read it. plugboard
also reads the environment variable ``PLUGBOARD_JOB_ID``; plugboard_beam does not (no
environment switches): pass ``--job-id`` instead.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.utils.entities import EntityIdGen, check_job_id

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import LoadedModel


def resolve_job_id(loaded: LoadedModel, given: _t.Optional[str]) -> str:
    """The run's job id; ``UserError`` for a ``--job-id`` that is not one. The model's own was
    checked when it was loaded (``state.args.job_id`` has plugboard's pattern)."""
    state_args = loaded.config.plugboard.process.args.state.args
    if given is not None:
        try:
            job_id = check_job_id(given)
        except ValueError as exc:
            raise UserError(f"--job-id: {exc}") from None
    else:
        job_id = state_args.job_id or EntityIdGen.job_id()
    state_args.job_id = job_id
    return job_id


__all__ = ["resolve_job_id"]
