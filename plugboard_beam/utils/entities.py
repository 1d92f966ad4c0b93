"""Entity ids (plugboard 0.9.0's ``EntityIdGen``): ``Job_`` followed by 16 random letters and
digits when generated; any ``Job_`` + at least 8 letters or digits is a valid job id."""

from __future__ import annotations

import re

from plugboard_beam.schemas.entities import ENTITY_ID_REGEX, MAX_ENTITY_ID_CHARS, Entity
from plugboard_beam.utils.random import gen_rand_str

_ENTITY_ID = re.compile(ENTITY_ID_REGEX)
_JOB_ID = re.compile(Entity.Job.id_regex)


class EntityIdGen:
    """Generates and checks entity ids."""

    @classmethod
    def id(cls, entity: Entity) -> str:
        """A new unique id of ``entity``: ``Job_`` + 16 letters/digits."""
        return entity.id_prefix + gen_rand_str()

    @classmethod
    def parse(cls, id: str) -> tuple[Entity, str]:
        """``(entity, suffix)`` of an id; ``ValueError`` if it is not one."""
        match = _ENTITY_ID.match(id) if len(id) <= MAX_ENTITY_ID_CHARS else None
        if match is None:
            raise ValueError(f"Invalid entity id: {id[:MAX_ENTITY_ID_CHARS]!r}")
        return Entity[match.group("entity")], match.group("id")

    @classmethod
    def job_id(cls) -> str:
        """A new unique job id."""
        return cls.id(Entity.Job)

    @classmethod
    def is_job_id(cls, id: str) -> bool:
        """Whether ``id`` is a valid job id."""
        return len(id) <= MAX_ENTITY_ID_CHARS and _JOB_ID.match(id) is not None


def check_job_id(job_id: str) -> str:
    """``job_id`` if valid; else a ``ValueError`` saying what a job id looks like."""
    if not EntityIdGen.is_job_id(job_id):
        shown = job_id if len(job_id) <= 40 else job_id[:37] + "..."
        raise ValueError(f"invalid job id {shown!r}: a job id is 'Job_' followed by 8 to "
                         f"{MAX_ENTITY_ID_CHARS - 4} letters or digits, e.g. {EntityIdGen.job_id()!r}")
    return job_id


__all__ = ["EntityIdGen", "check_job_id"]
