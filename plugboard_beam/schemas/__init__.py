"""Pydantic schemas of a model (plugboard 0.9.0 compatible) and the ``**kwargs`` TypedDict."""

from __future__ import annotations

import enum
import re
import typing as _t

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Names of components: as in plugboard.
NAME_PATTERN = r"^([a-zA-Z_][a-zA-Z0-9_-]*)$"
#: the largest step time limit (seconds; about 11 days)
STEP_TIMEOUT_MAX = 1_000_000.0
_REF = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_\-]*)\.([a-zA-Z_][a-zA-Z0-9_]*)$")


class Status(enum.StrEnum):
    """Lifecycle status of a component or process (plugboard's ``Status``)."""

    CREATED = "created"
    INIT = "init"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        """Whether the status is final: ``completed``, ``failed`` or ``stopped``."""
        return self in (Status.COMPLETED, Status.FAILED, Status.STOPPED)


class ComponentArgsDict(_t.TypedDict):
    """``TypedDict`` of the ``Component`` constructor arguments (for ``**kwargs`` annotations)."""

    name: str
    initial_values: _t.NotRequired[dict[str, _t.Any] | None]
    parameters: _t.NotRequired[dict[str, _t.Any] | None]
    constraints: _t.NotRequired[dict[str, _t.Any] | None]
    resources: _t.NotRequired[_t.Any]


class SpecModel(BaseModel):
    """Base of every spec: unknown fields are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ConnectorSocket(SpecModel):
    """One end of a connector: component name (``entity``) and field (``descriptor``)."""

    entity: str
    descriptor: str

    @classmethod
    def from_ref(cls, ref: str) -> ConnectorSocket:
        """Parse ``"component.field"``."""
        match = _REF.match(ref)
        if not match:
            raise ValueError(f"must be of the form 'component.field', got {ref!r}")
        return cls(entity=match.group(1), descriptor=match.group(2))

    @property
    def id(self) -> str:
        """``component.field``."""
        return f"{self.entity}.{self.descriptor}"

    def __str__(self) -> str:
        return self.id


class ConnectorSpec(SpecModel):
    """A connection from an output field to an input field."""

    source: ConnectorSocket
    target: ConnectorSocket
    mode: str = "pipeline"

    @field_validator("source", "target", mode="before")
    @classmethod
    def _from_string(cls, v: _t.Any) -> _t.Any:
        if isinstance(v, str):
            return ConnectorSocket.from_ref(v)
        return v

    @property
    def id(self) -> str:
        """``source..target``."""
        return f"{self.source.id}..{self.target.id}"


class ComponentArgsSpec(SpecModel):
    """Constructor arguments of a component; fields beyond the standard ones go to the class."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    initial_values: dict[str, list[_t.Any]] = {}
    parameters: dict[str, _t.Any] = {}
    constraints: dict[str, _t.Any] = {}
    resources: _t.Optional[dict[str, _t.Any]] = None
    #: plugboard_beam's step time limit in seconds (not passed to the constructor): a call of
    #: ``init``/``step``/an event handler/``destroy`` that takes longer fails the key
    step_timeout: _t.Optional[float] = Field(default=None, gt=0, le=STEP_TIMEOUT_MAX, allow_inf_nan=False,
                                             strict=False)

    def extra_args(self) -> dict[str, _t.Any]:
        """The class-specific arguments (everything but the standard ones)."""
        return dict(self.model_extra or {})


class ComponentSpec(SpecModel):
    """A component: its import path (``type``) and constructor arguments."""

    type: str
    args: ComponentArgsSpec


class ProcessArgsSpec(SpecModel):
    """Components and connectors of a process."""

    components: list[ComponentSpec] = Field(min_length=1)
    connectors: list[ConnectorSpec] = []
    name: _t.Optional[str] = None
    parameters: dict[str, _t.Any] = {}
    state: _t.Optional[dict[str, _t.Any]] = None


class ProcessSpec(SpecModel):
    """A process. ``type`` and ``connector_builder`` are accepted for plugboard compatibility:
    the engine is chosen on the command line (``--runner``)."""

    args: ProcessArgsSpec
    type: str = "plugboard.process.LocalProcess"
    connector_builder: _t.Optional[dict[str, _t.Any]] = None


class ProcessConfigSpec(SpecModel):
    """The ``plugboard:`` section of a model file."""

    process: ProcessSpec
    tune: _t.Optional[dict[str, _t.Any]] = None


class ConfigSpec(SpecModel):
    """A whole model file."""

    plugboard: ProcessConfigSpec


from plugboard_beam.schemas.tune import (  # noqa: E402  (the tuning specs, as plugboard exports them here)
    BaseFieldSpec,
    CategoricalParameterSpec,
    FloatParameterSpec,
    IntParameterSpec,
    ObjectiveSpec,
    OptunaSpec,
    ParameterSpec,
    TuneArgsSpec,
    TuneSpec,
)

__all__ = [
    "BaseFieldSpec",
    "CategoricalParameterSpec",
    "ComponentArgsDict",
    "ComponentArgsSpec",
    "ComponentSpec",
    "ConfigSpec",
    "ConnectorSocket",
    "ConnectorSpec",
    "FloatParameterSpec",
    "IntParameterSpec",
    "ObjectiveSpec",
    "OptunaSpec",
    "ParameterSpec",
    "ProcessArgsSpec",
    "ProcessConfigSpec",
    "ProcessSpec",
    "TuneArgsSpec",
    "TuneSpec",
    "Status",
]
