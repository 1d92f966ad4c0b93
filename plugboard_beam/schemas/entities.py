"""Entity ids (plugboard 0.9.0's syntax): a job id is ``Job_`` and at least 8 letters or digits."""

from __future__ import annotations

import enum
import typing as _t

_ENTITY_SEP: _t.Final[str] = "_"
_ENTITY_ID_MIN_CHARS: _t.Final[int] = 8
_ENTITY_ID_SUFFIX_REGEX: _t.Final[str] = _ENTITY_SEP + rf"(?P<id>[a-zA-Z0-9]{{{_ENTITY_ID_MIN_CHARS},}})$"
#: longest id accepted (plugboard sets none; ours bounds what reaches logs, state and paths)
MAX_ENTITY_ID_CHARS: _t.Final[int] = 128


class Entity(enum.StrEnum):
    """Entity names."""

    Job = "Job"

    @property
    def id_prefix(self) -> str:
        """The prefix of this entity's ids: ``Job_``."""
        return str(self) + _ENTITY_SEP

    @property
    def id_regex(self) -> str:
        """The regular expression of this entity's ids."""
        return rf"^(?P<entity>{self})" + _ENTITY_ID_SUFFIX_REGEX


ENTITY_ID_REGEX = rf"^(?P<entity>{'|'.join([e.name for e in Entity])})" + _ENTITY_ID_SUFFIX_REGEX

__all__ = ["ENTITY_ID_REGEX", "MAX_ENTITY_ID_CHARS", "Entity"]
