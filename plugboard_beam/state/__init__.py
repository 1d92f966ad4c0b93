"""State backends (plugboard 0.9.0's ``plugboard.state``): where a run's job, process,
component and connector status is kept, and — plugboard_beam's addition — one row per key of a
run (its status, its components' statuses, its failures), written by every runner, so a user can
query what ran and what failed.

``DictStateBackend`` keeps it in memory (plugboard's default; one process only),
``SqliteStateBackend`` in a SQLite file, ``PostgresStateBackend`` in PostgreSQL. Ray's state
backend has no place here (Beam does Ray's job): making one says what to use instead.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.state.backend import StateBackend, failure_entry, key_status
from plugboard_beam.state.dict_backend import DictStateBackend
from plugboard_beam.state.ids import is_job_id, new_job_id

if _t.TYPE_CHECKING:
    from plugboard_beam.state.sql_backend import PostgresStateBackend, SqliteStateBackend, SqlStateBackend

#: the backends a model file may name in ``state: {type: ...}`` (plugboard's paths are accepted)
BACKENDS: tuple[str, ...] = ("DictStateBackend", "SqliteStateBackend", "PostgresStateBackend")
_SQL = ("PostgresStateBackend", "SqliteStateBackend", "SqlStateBackend")


def __getattr__(name: str) -> _t.Any:
    # the SQL backends import SQLAlchemy, which the command line should not pay for at start-up
    if name in _SQL:
        from plugboard_beam.state import sql_backend

        return getattr(sql_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
_INSTEAD = ("Ray's work is done by Beam here: give a SqliteStateBackend (one machine) or a "
            "PostgresStateBackend (many hosts, e.g. Dataflow workers)")


class RayStateBackend(DictStateBackend):
    """Not available: plugboard's state backend for Ray clusters. Importing it works (so
    moved code loads); making one raises ``NotImplementedError`` saying what to use instead."""

    def __init__(self, *args: _t.Any, **kwargs: _t.Any) -> None:
        raise NotImplementedError(f"RayStateBackend: {_INSTEAD}")


def backend_class(type_path: str) -> type[StateBackend]:
    """The backend class a ``state: {type: ...}`` names (``plugboard.state.X``,
    ``plugboard_beam.state.X`` or ``X``); ``ValueError`` naming the known ones otherwise."""
    prefix, _, name = type_path.rpartition(".")
    if prefix in ("", "plugboard.state", "plugboard_beam.state") and name in BACKENDS:
        klass: type[StateBackend] = DictStateBackend if name == "DictStateBackend" else __getattr__(name)
        return klass
    if name == "RayStateBackend":
        raise ValueError(f"state type {type_path!r}: {_INSTEAD}")
    raise ValueError(f"state type {type_path!r} is not a state backend; choose one of "
                     + ", ".join(f"plugboard_beam.state.{n}" for n in BACKENDS))


def build_state(spec: _t.Any) -> _t.Optional[StateBackend]:
    """The backend a process spec's ``state`` describes (``{type, args}``, or a model of them;
    None for none), as plugboard's ``ProcessBuilder`` builds it; ``ValueError`` for an unknown type."""
    if spec is None:
        return None
    data = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
    klass = backend_class(str(data.get("type") or "plugboard_beam.state.DictStateBackend"))
    return klass(**dict(data.get("args") or {}))


__all__ = [
    "BACKENDS",
    "DictStateBackend",
    "PostgresStateBackend",
    "RayStateBackend",
    "SqlStateBackend",
    "SqliteStateBackend",
    "StateBackend",
    "backend_class",
    "build_state",
    "failure_entry",
    "is_job_id",
    "key_status",
    "new_job_id",
]
