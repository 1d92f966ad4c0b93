"""The ``state:`` section of a process (plugboard 0.9.0's ``StateBackendSpec``) and the job id.

A job id names one run: ``Job_`` and at least 8 letters or digits (``Job_a1b2c3d4``). It comes
from ``--job-id``, else ``state: {args: {job_id: ...}}`` in the YAML, else it is generated
(``plugboard_beam.utils.entities.EntityIdGen.job_id()``). The state backends themselves live
in ``plugboard_beam.state``; the class paths here are only names.
"""

from __future__ import annotations

from datetime import UTC, datetime
import re
import typing as _t

from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugboard_beam.schemas.entities import MAX_ENTITY_ID_CHARS, Entity

DEFAULT_STATE_BACKEND_CLS_PATH: str = "plugboard_beam.state.DictStateBackend"
#: plugboard's default backend for a ``RayProcess`` (which runs on Beam here: see ``ProcessSpec``)
RAY_STATE_BACKEND_CLS_PATH: str = "plugboard_beam.state.RayStateBackend"


class _StateModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=True,
                              validate_assignment=True)


class StateBackendArgsDict(_t.TypedDict):
    """``TypedDict`` of the ``StateBackend`` constructor arguments."""

    job_id: _t.NotRequired[str | None]
    metadata: _t.NotRequired[dict[str, _t.Any] | None]


class StateBackendArgsSpec(_StateModel):
    """The ``StateBackend`` constructor arguments: ``job_id`` and ``metadata`` (and any others
    the backend class takes)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    job_id: _t.Optional[str] = None
    metadata: dict[str, _t.Any] = {}

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, v: _t.Optional[str]) -> _t.Optional[str]:
        if v is not None and (len(v) > MAX_ENTITY_ID_CHARS or not re.match(Entity.Job.id_regex, v)):
            shown = v if len(v) <= 40 else v[:37] + "..."
            raise ValueError(f"job_id {shown!r} is not a job id ('Job_' and at least 8 letters or digits, "
                             f"at most {MAX_ENTITY_ID_CHARS} characters)")
        return v


class StateBackendSpec(_StateModel):
    """A state backend: its class path (``type``) and arguments."""

    type: str = DEFAULT_STATE_BACKEND_CLS_PATH
    args: StateBackendArgsSpec = Field(default_factory=StateBackendArgsSpec)


class StateSchema(_StateModel):
    """What a state backend records about a job."""

    job_id: str = Field(pattern=Entity.Job.id_regex, max_length=MAX_ENTITY_ID_CHARS)
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    metadata: dict[str, _t.Any] = {}


__all__ = ["DEFAULT_STATE_BACKEND_CLS_PATH", "RAY_STATE_BACKEND_CLS_PATH", "StateBackendArgsDict",
           "StateBackendArgsSpec", "StateBackendSpec", "StateSchema"]
