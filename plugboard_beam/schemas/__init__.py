"""Pydantic schemas of a model (plugboard 0.9.0 compatible) and the ``**kwargs`` TypedDict."""

from __future__ import annotations

import enum
from pathlib import Path
import re
import typing as _t

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from plugboard_beam.schemas.entities import ENTITY_ID_REGEX, Entity
from plugboard_beam.schemas.migration import check_connector_builder, normalise_process_type
from plugboard_beam.schemas.resource import Resource
from plugboard_beam.schemas.state import (
    DEFAULT_STATE_BACKEND_CLS_PATH,
    RAY_STATE_BACKEND_CLS_PATH,
    StateBackendArgsDict,
    StateBackendArgsSpec,
    StateBackendSpec,
)
from plugboard_beam.schemas.tune import (
    BaseFieldSpec,
    CategoricalParameterSpec,
    Direction,
    FloatParameterSpec,
    IntParameterSpec,
    ObjectiveSpec,
    OptunaSpec,
    ParameterSpec,
    TuneArgsDict,
    TuneArgsSpec,
    TuneSpec,
)

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
    resources: _t.NotRequired[Resource | None]


class IODirection(enum.StrEnum):
    """Direction of a component's field: ``input`` or ``output``."""

    INPUT = "input"
    OUTPUT = "output"


class ConnectorMode(enum.StrEnum):
    """``pipeline`` (one in, one out) or ``pubsub`` (one to many: events)."""

    PIPELINE = "pipeline"
    PUBSUB = "pubsub"


DEFAULT_CONNECTOR_CLS_PATH: str = "plugboard_beam.connector.AsyncioConnector"


class SpecModel(BaseModel):
    """Base of every spec: unknown fields are errors (they are usually typos). Specs are
    mutable and validated on assignment, as plugboard's: code that keeps a spec it did not build
    copies it (``model_copy(deep=True)``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)


#: plugboard's name of the spec base class
PlugboardBaseModel = SpecModel


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

    def connects_to(self, entities: _t.Container[str]) -> bool:
        """Whether this end is on one of ``entities``."""
        return self.entity in entities


class ConnectorSpec(SpecModel):
    """A connection from an output field to an input field."""

    source: ConnectorSocket
    target: ConnectorSocket
    mode: ConnectorMode = Field(default=ConnectorMode.PIPELINE, validate_default=True)

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

    def __str__(self) -> str:
        return self.id


class ConnectorBuilderArgsDict(_t.TypedDict):
    """``TypedDict`` of the ``ConnectorBuilder`` arguments."""

    parameters: dict[str, _t.Any]


class ConnectorBuilderArgsSpec(SpecModel):
    """``ConnectorBuilder`` arguments (plugboard's; the engine chooses the transport here)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    parameters: dict[str, _t.Any] = {}


class ConnectorBuilderSpec(SpecModel):
    """The ``connector_builder:`` of a process. Accepted for plugboard compatibility: Beam
    moves the data between components, so only the default (``AsyncioConnector``) and, with a
    ``RayProcess``, ``RayConnector`` are accepted; other transports are refused by name."""

    type: str = DEFAULT_CONNECTOR_CLS_PATH
    args: ConnectorBuilderArgsSpec = Field(default_factory=ConnectorBuilderArgsSpec)


class ComponentArgsSpec(SpecModel):
    """Constructor arguments of a component; fields beyond the standard ones go to the class."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    name: str = Field(pattern=NAME_PATTERN)
    initial_values: dict[str, list[_t.Any]] = {}
    parameters: dict[str, _t.Any] = {}
    constraints: dict[str, _t.Any] = {}
    #: what the component needs; Beam resource hints on Dataflow (see ``Resource``)
    resources: _t.Optional[Resource] = None
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


class ProcessArgsDict(_t.TypedDict):
    """``TypedDict`` of the ``Process`` constructor arguments."""

    components: list[ComponentSpec]
    connectors: list[ConnectorSpec]
    name: _t.NotRequired[str | None]
    parameters: dict[str, _t.Any]
    state: _t.NotRequired[StateBackendSpec | None]


class ProcessArgsSpec(SpecModel):
    """Components and connectors of a process."""

    components: list[ComponentSpec] = Field(min_length=1)
    connectors: list[ConnectorSpec] = []
    name: _t.Optional[str] = None
    parameters: dict[str, _t.Any] = {}
    state: StateBackendSpec = Field(default_factory=StateBackendSpec)

    @field_validator("parameters", mode="before")
    @classmethod
    def _no_parameters(cls, v: _t.Any) -> _t.Any:
        return {} if v is None else v

    @field_validator("state", mode="before")
    @classmethod
    def _no_state(cls, v: _t.Any) -> _t.Any:
        return StateBackendSpec() if v is None else v


class ProcessSpec(SpecModel):
    """A process. ``type`` and ``connector_builder`` are accepted for plugboard compatibility:
    the engine is chosen on the command line (``--runner``). ``type`` is plugboard's
    ``LocalProcess`` or ``RayProcess`` under either prefix (``plugboard.process.X`` is kept as
    written); a ``RayProcess`` runs on Beam, which places and parallelises the components as
    Ray would (``spec.load`` prints a note)."""

    args: ProcessArgsSpec
    type: str = "plugboard_beam.process.LocalProcess"
    connector_builder: ConnectorBuilderSpec = Field(default_factory=ConnectorBuilderSpec)

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, v: _t.Any) -> _t.Any:
        return normalise_process_type(v) if isinstance(v, str) else v

    @field_validator("connector_builder", mode="after")
    @classmethod
    def _transport(cls, v: ConnectorBuilderSpec, info: ValidationInfo) -> ConnectorBuilderSpec:
        check_connector_builder(str(info.data.get("type", "")), v.type)
        return v

    @model_validator(mode="after")
    def _state_default(self) -> _t.Self:
        if self.is_ray and self.args.state.type == DEFAULT_STATE_BACKEND_CLS_PATH:
            # plugboard's default for a RayProcess (bypasses validation: no recursion)
            self.args.state.__dict__["type"] = RAY_STATE_BACKEND_CLS_PATH
        return self

    @property
    def is_ray(self) -> bool:
        """Whether the YAML asked for plugboard's ``RayProcess`` (which runs on Beam here)."""
        return self.type.endswith(".RayProcess")


class ProcessConfigSpec(SpecModel):
    """The ``plugboard:`` section of a model file. ``process:`` may be the path of another
    model file whose process is used (``spec.load`` resolves it from the file's folder)."""

    process: ProcessSpec
    tune: _t.Optional[TuneSpec] = None

    @field_validator("process", mode="before")
    @classmethod
    def _process_file(cls, v: _t.Any) -> _t.Any:
        """A path: that model file's process (relative to the current directory, as plugboard;
        ``spec.load_model`` reads it relative to the model file instead, with lines)."""
        if not isinstance(v, str):
            return v
        from plugboard_beam.spec.yaml_lines import MODEL_LIMITS, YamlSyntaxError, load_yaml  # the bounded loader

        path = Path(v)
        if not path.is_file():
            raise ValueError(f"process: {v!r} is not a model file")
        if path.stat().st_size > MODEL_LIMITS.max_bytes:
            raise ValueError(f"process: {v!r} is larger than {MODEL_LIMITS.max_bytes} bytes")
        try:
            data, _ = load_yaml(path.read_text())
        except YamlSyntaxError as exc:
            raise ValueError(f"process: {v!r}: {exc.problem.message}") from None
        try:
            return data["plugboard"]["process"]
        except (KeyError, TypeError):
            raise ValueError(f"process: {v!r} has no 'plugboard: process:' section") from None


class ConfigSpec(SpecModel):
    """A whole model file."""

    plugboard: ProcessConfigSpec


from plugboard_beam.schemas._graph import simple_cycles  # noqa: E402
from plugboard_beam.schemas._validation import (  # noqa: E402
    validate_all_inputs_connected,
    validate_input_events,
    validate_no_unresolved_cycles,
    validate_process,
)
from plugboard_beam.schemas.overrides import override_parameter, parse_parameter_name  # noqa: E402

__all__ = [
    "DEFAULT_CONNECTOR_CLS_PATH",
    "DEFAULT_STATE_BACKEND_CLS_PATH",
    "ENTITY_ID_REGEX",
    "RAY_STATE_BACKEND_CLS_PATH",
    "ConnectorBuilderArgsDict",
    "ConnectorBuilderArgsSpec",
    "ConnectorBuilderSpec",
    "ConnectorMode",
    "Direction",
    "Entity",
    "IODirection",
    "PlugboardBaseModel",
    "ProcessArgsDict",
    "Resource",
    "StateBackendArgsDict",
    "StateBackendArgsSpec",
    "StateBackendSpec",
    "TuneArgsDict",
    "override_parameter",
    "parse_parameter_name",
    "simple_cycles",
    "validate_all_inputs_connected",
    "validate_input_events",
    "validate_no_unresolved_cycles",
    "validate_process",
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
