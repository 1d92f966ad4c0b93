"""Job ids as plugboard 0.9.0 makes them: ``Job_`` and at least 8 letters or digits."""

from __future__ import annotations

import os
import re
import secrets
import string
import typing as _t

#: what a job id looks like (plugboard's ``Entity.Job.id_regex``)
JOB_ID_PATTERN = r"^(?P<entity>Job)_(?P<id>[a-zA-Z0-9]{8,})$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_ALPHABET = string.ascii_letters + string.digits
#: plugboard's environment variable naming the job of a run
JOB_ID_ENV = "PLUGBOARD_JOB_ID"


def new_job_id(chars: int = 16) -> str:
    """A fresh random job id (``Job_`` and ``chars`` letters or digits)."""
    return "Job_" + "".join(secrets.choice(_ALPHABET) for _ in range(chars))


def is_job_id(value: str) -> bool:
    """Whether ``value`` is a valid job id."""
    return _JOB_ID.match(value) is not None


def check_job_id(value: str) -> str:
    """``value`` if it is a valid job id, else ``ValueError`` naming it."""
    if not is_job_id(value):
        raise ValueError(f"invalid job id {value!r}: a job id is 'Job_' and at least 8 letters or digits")
    return value


def choose_job_id(given: _t.Optional[str]) -> str:
    """The job id of a run, as plugboard picks it: ``given``, else ``$PLUGBOARD_JOB_ID``, else a
    fresh one. ``RuntimeError`` when both are set and differ; ``ValueError`` for one that is not a
    job id."""
    env = os.environ.get(JOB_ID_ENV)
    if given is not None and env is not None and given != env:
        raise RuntimeError(f"Job ID {given} does not match environment variable {JOB_ID_ENV}={env}")
    chosen = given if given is not None else env
    return new_job_id() if chosen is None else check_job_id(chosen)
