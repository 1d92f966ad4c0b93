"""``DI``: plugboard 0.9.0's dependency-injection container (a ``that_depends`` container), with
the providers plugboard code and tests use: ``settings`` and ``job_id``."""

from __future__ import annotations

import os
import re
import typing as _t

from that_depends import BaseContainer, ContextScopes, fetch_context_item
from that_depends.providers import ContextResource, Singleton

from plugboard_beam.utils.random import gen_rand_str
from plugboard_beam.utils.settings import Settings

#: plugboard's job id form: ``Job_`` and at least 8 letters or digits
JOB_ID = re.compile(r"^Job_[a-zA-Z0-9]{8,}$")


def _job_id() -> _t.Iterator[str]:
    """The job id of this run, as plugboard picks it: the one given to the container context
    (``job_id``), else ``$PLUGBOARD_JOB_ID``, else a new one; both given must agree."""
    given = fetch_context_item("job_id")
    env = os.environ.get("PLUGBOARD_JOB_ID")
    if given is not None and env is not None and given != env:
        raise RuntimeError(f"Job ID {given} does not match environment variable PLUGBOARD_JOB_ID={env}")
    job_id = given if given is not None else env if env is not None else f"Job_{gen_rand_str()}"
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise ValueError(f"Invalid job ID: {job_id}.")
    yield job_id


class DI(BaseContainer):
    """The container: ``DI.settings`` (a ``Settings`` singleton) and ``DI.job_id``."""

    default_scope = ContextScopes.APP

    settings: Singleton[Settings] = Singleton(Settings)
    job_id: ContextResource[str] = ContextResource(_job_id)
