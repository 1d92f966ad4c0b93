"""Job ids as plugboard 0.9.0 makes them: ``Job_`` and at least 8 letters or digits."""

from __future__ import annotations

import re
import secrets
import string

#: what a job id looks like (plugboard's ``Entity.Job.id_regex``)
JOB_ID_PATTERN = r"^(?P<entity>Job)_(?P<id>[a-zA-Z0-9]{8,})$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
_ALPHABET = string.ascii_letters + string.digits


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
