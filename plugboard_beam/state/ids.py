"""Job ids as plugboard 0.9.0 makes and picks them (the id itself: ``utils/entities.py``)."""

from __future__ import annotations

import os
import typing as _t

from plugboard_beam.utils.entities import EntityIdGen, check_job_id

#: plugboard's environment variable naming the job of a run
JOB_ID_ENV = "PLUGBOARD_JOB_ID"


def new_job_id() -> str:
    """A fresh random job id (``Job_`` and 16 letters or digits)."""
    return EntityIdGen.job_id()


def is_job_id(value: str) -> bool:
    """Whether ``value`` is a valid job id (``Job_`` and 8 to 124 letters or digits)."""
    return EntityIdGen.is_job_id(value)


def choose_job_id(given: _t.Optional[str]) -> str:
    """The job id of a run, as plugboard picks it: ``given``, else ``$PLUGBOARD_JOB_ID``, else a
    fresh one. ``RuntimeError`` when both are set and differ; ``ValueError`` for one that is not a
    job id."""
    env = os.environ.get(JOB_ID_ENV)
    if env is not None:
        env = check_job_id(env)  # (bounded, so the messages below are too)
    if given is not None:
        given = check_job_id(given)
        if env is not None and given != env:
            raise RuntimeError(f"Job ID {given} does not match environment variable {JOB_ID_ENV}={env}")
        return given
    return env if env is not None else new_job_id()
