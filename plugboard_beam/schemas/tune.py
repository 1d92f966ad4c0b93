"""The ``tune:`` section of a model and the ``Tuner`` arguments (plugboard 0.9.0 compatible).

A parameter or objective names a field of the process: ``object_type`` (``component``),
``object_name`` (the component), ``field_type`` (``arg``, ``initial_value`` or ``parameter`` for
a parameter; ``field`` for an objective) and ``field_name``. Its ``full_name`` is
``component.<name>.<field_type>.<field>``, the key of a trial's ``config`` and ``metrics``.

Parameter types keep Ray Tune's names, as plugboard spells them: ``ray.tune.uniform`` and
``ray.tune.loguniform`` (floats in ``[lower, upper]``), ``ray.tune.randint`` (integers in
``[lower, upper)``, upper excluded as in Ray) and ``ray.tune.choice`` (one of ``categories``).
"""

from __future__ import annotations

import typing as _t

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

FieldType = _t.Literal["arg", "initial_value", "field", "parameter"]
Direction = _t.Literal["min", "max"]
PARAMETER_TYPES = ("ray.tune.uniform", "ray.tune.loguniform", "ray.tune.randint", "ray.tune.choice")
OPTUNA_SEARCH = "ray.tune.search.optuna.OptunaSearch"


class _TuneModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BaseFieldSpec(_TuneModel):
    """A field of the process: a component's argument, initial value, parameter or attribute."""

    object_type: _t.Literal["component", "process"] = "component"
    object_name: _t.Optional[str] = None
    field_type: FieldType
    field_name: str

    @model_validator(mode="after")
    def _named(self) -> _t.Self:
        if self.object_type == "component" and not self.object_name:
            raise ValueError("object_name: give the component's name")
        if self.object_type == "process" and self.field_type != "parameter":
            raise ValueError("object_type 'process' only has field_type 'parameter'")
        return self

    @property
    def full_name(self) -> str:
        """``component.<name>.<field_type>.<field>`` (the key of configs and metrics)."""
        return f"{self.object_type}.{self.object_name or 'default'}.{self.field_type}.{self.field_name}"

    @property
    def override(self) -> str:
        """The scenario override this field is set by (``comp.arg``, ``comp.initial_values.f``)."""
        if self.object_type == "process":
            return f"process.parameters.{self.field_name}"
        section = {"arg": "", "initial_value": "initial_values.", "parameter": "parameters."}[self.field_type]
        return f"{self.object_name}.{section}{self.field_name}"


class ObjectiveSpec(BaseFieldSpec):
    """An objective: a component's attribute read when the trial's run has ended."""

    field_type: FieldType = "field"

    @model_validator(mode="after")
    def _a_field(self) -> _t.Self:
        if self.field_type != "field":
            raise ValueError("an objective is a component's field: field_type must be 'field'")
        if self.object_type != "component":
            raise ValueError("an objective is read from a component: object_type must be 'component'")
        return self


class _ParameterSpec(BaseFieldSpec):
    field_type: FieldType = "arg"

    @model_validator(mode="after")
    def _settable(self) -> _t.Self:
        if self.field_type == "field":
            raise ValueError("a parameter sets an 'arg', 'initial_value' or 'parameter', not a 'field'")
        return self


class FloatParameterSpec(_ParameterSpec):
    """A float in ``[lower, upper]``: uniform, or log-uniform (``ray.tune.loguniform``)."""

    type: _t.Literal["ray.tune.uniform", "ray.tune.loguniform"] = "ray.tune.uniform"
    lower: float
    upper: float

    @model_validator(mode="after")
    def _bounds(self) -> _t.Self:
        if self.lower > self.upper:
            raise ValueError(f"bounds reversed: lower {self.lower} > upper {self.upper}")
        if self.type == "ray.tune.loguniform" and self.lower <= 0:
            raise ValueError(f"ray.tune.loguniform needs lower > 0 (got {self.lower})")
        return self


class IntParameterSpec(_ParameterSpec):
    """An integer in ``[lower, upper)`` (upper excluded, as Ray's ``randint``)."""

    type: _t.Literal["ray.tune.randint"] = "ray.tune.randint"
    lower: int
    upper: int

    @model_validator(mode="after")
    def _bounds(self) -> _t.Self:
        if self.lower >= self.upper:
            raise ValueError(f"bounds reversed or empty: ray.tune.randint draws from [lower, upper) and lower "
                             f"{self.lower} >= upper {self.upper}")
        return self


class CategoricalParameterSpec(_ParameterSpec):
    """One of ``categories``."""

    type: _t.Literal["ray.tune.choice"] = "ray.tune.choice"
    categories: list[_t.Any] = Field(min_length=1)


ParameterSpec = _t.Annotated[
    _t.Union[FloatParameterSpec, IntParameterSpec, CategoricalParameterSpec], Field(discriminator="type")]


class OptunaSpec(_TuneModel):
    """The search algorithm: Optuna's TPE sampler (``type`` keeps Ray's name). ``space``: the import
    path of a function ``space(trial)`` (optionally ``space(trial, spec)``) that suggests the
    parameters itself (define-by-run); ``storage``: an Optuna storage URL (``sqlite:///study.db``)
    where the study is kept and resumed; ``points_to_evaluate``: configs to try first."""

    type: _t.Literal["ray.tune.search.optuna.OptunaSearch"] = "ray.tune.search.optuna.OptunaSearch"
    space: _t.Optional[str] = None
    study_name: _t.Optional[str] = None
    storage: _t.Optional[str] = None
    points_to_evaluate: _t.Optional[list[dict[str, _t.Any]]] = None
    seed: _t.Optional[int] = None


class TuneArgsSpec(_TuneModel):
    """The ``Tuner`` arguments."""

    objective: _t.Union[ObjectiveSpec, list[ObjectiveSpec]]
    parameters: list[ParameterSpec] = Field(min_length=1)
    num_samples: PositiveInt
    mode: _t.Union[Direction, list[Direction]] = "max"
    max_concurrent: _t.Optional[PositiveInt] = None
    algorithm: OptunaSpec = Field(default_factory=OptunaSpec)

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameter_types(cls, v: _t.Any) -> _t.Any:
        """A parameter without ``type`` is read as plugboard reads it: ``categories`` make a
        choice, integer bounds a ``randint``, other bounds a ``uniform``."""
        if not isinstance(v, list):
            return v
        return [_with_type(p) for p in v]

    @model_validator(mode="after")
    def _modes(self) -> _t.Self:
        check_modes(self.objective, self.mode)
        return self


def _with_type(p: _t.Any) -> _t.Any:
    if not isinstance(p, dict) or "type" in p:
        return p
    if "categories" in p:
        kind = "ray.tune.choice"
    elif all(isinstance(p.get(b), int) and not isinstance(p.get(b), bool) for b in ("lower", "upper")):
        kind = "ray.tune.randint"
    else:
        kind = "ray.tune.uniform"
    return {**p, "type": kind}


def check_modes(objective: _t.Union[ObjectiveSpec, list[ObjectiveSpec]],
                mode: _t.Union[Direction, list[Direction]]) -> None:
    """One mode per objective: a list of modes for a list of objectives, one mode for one."""
    if isinstance(objective, list) != isinstance(mode, list):
        raise ValueError("give a list of modes for a list of objectives (multi-objective), one mode for one")
    if isinstance(objective, list) and isinstance(mode, list) and len(objective) != len(mode):
        raise ValueError(f"{len(objective)} objectives but {len(mode)} modes: give one mode per objective")
    if isinstance(objective, list) and not objective:
        raise ValueError("give at least one objective")


class TuneArgsDict(_t.TypedDict):
    """``TypedDict`` of the ``Tuner`` constructor arguments."""

    objective: str | list[str]
    parameters: list[ParameterSpec]
    num_samples: int
    mode: _t.NotRequired[Direction | list[Direction]]
    max_concurrent: _t.NotRequired[int | None]
    algorithm: OptunaSpec


class TuneSpec(_TuneModel):
    """The ``tune:`` section of a model file."""

    args: TuneArgsSpec


__all__ = ["OPTUNA_SEARCH", "PARAMETER_TYPES", "BaseFieldSpec", "CategoricalParameterSpec", "Direction",
           "FloatParameterSpec", "IntParameterSpec", "ObjectiveSpec", "OptunaSpec", "ParameterSpec",
           "TuneArgsDict", "TuneArgsSpec", "TuneSpec", "check_modes"]
