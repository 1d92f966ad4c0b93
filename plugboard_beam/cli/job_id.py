"""The job id of a run, as plugboard 0.9.0 chooses it: ``--job-id``, else the model's
``state: args: job_id``, else the environment variable ``PLUGBOARD_JOB_ID``, else a new
``Job_<16 letters/digits>``; an id given and a different one in ``PLUGBOARD_JOB_ID`` are refused.

The chosen id is written into the loaded model's spec (``state.args.job_id``, as plugboard's
CLI does) and into ``RunOptions.job_id``, where logs and state backends read it.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.state.ids import JOB_ID_ENV, choose_job_id
from plugboard_beam.utils.entities import check_job_id

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import LoadedModel


def resolve_job_id(loaded: LoadedModel, given: _t.Optional[str]) -> str:
    """The run's job id; ``UserError`` for a ``--job-id`` that is not one. The model's own was
    checked when it was loaded (``state.args.job_id`` has plugboard's pattern)."""
    state_args = loaded.config.plugboard.process.args.state.args
    if given is not None:
        try:
            given = check_job_id(given)
        except ValueError as exc:
            raise UserError(f"--job-id: {exc}") from None
    source = "--job-id" if given is not None else "state: args: job_id"
    try:
        job_id = choose_job_id(given if given is not None else state_args.job_id)
    except RuntimeError as exc:
        raise UserError(f"{source}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"{JOB_ID_ENV}: {exc}") from None
    state_args.job_id = job_id
    return job_id


__all__ = ["resolve_job_id"]
