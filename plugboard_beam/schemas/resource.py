"""``Resource``: what a component needs (CPU, GPU, memory, custom resources), as plugboard 0.9.0.

Values are numbers or strings with a unit suffix, parsed exactly as plugboard does: decimal SI
prefixes ``n u m k M G T P E`` (``"250m"`` is 0.25, ``"5k"`` 5000) and binary ones
``Ki Mi Gi Ti Pi Ei`` (``"10Mi"`` is 10 * 1024**2). Memory is a whole number of bytes.

On Dataflow the values become Beam resource hints of the component's transforms
(``Resource.beam_hints``); on ``--runner local`` and the DirectRunner there is nothing to place,
so the runners report them as ignored, once.
"""

from __future__ import annotations

import math
import re
import typing as _t

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: unit suffix -> multiplier (plugboard's table)
RESOURCE_SUFFIXES: dict[str, float] = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
}
#: decimal places of the values given to Ray (kept for ``to_ray_options``)
RAY_RESOURCE_PRECISION = 4
#: longest resource string parsed (checked before the regular expression runs)
_MAX_TEXT = 64
_VALUE = re.compile(r"^(\d+(?:\.\d+)?)([a-zA-Z]+)?$")


def parse_resource_value(value: _t.Any) -> float:
    """A resource value as a float: a number, or a string such as ``"500m"``, ``"1.5"``, ``"1Gi"``.
    Raises ``ValueError`` naming the value for anything else (negative, unknown suffix, ...)."""
    if isinstance(value, bool):
        raise ValueError(f"Resource value must be a string, int, or float: {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"Resource value must be a finite number >= 0: {value!r}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"Resource value must be a string, int, or float: {value!r}")
    text = value.strip()
    if len(text) > _MAX_TEXT:
        raise ValueError(f"Invalid resource value format: {text[:_MAX_TEXT]!r}... (too long)")
    match = _VALUE.match(text)
    if not match:
        raise ValueError(f"Invalid resource value format: {text}")
    multiplier = 1.0
    suffix = match.group(2)
    if suffix is not None:
        if suffix not in RESOURCE_SUFFIXES:
            raise ValueError(f"Unknown resource suffix '{suffix}' in value: {text} "
                             f"(known: {', '.join(RESOURCE_SUFFIXES)})")
        multiplier = RESOURCE_SUFFIXES[suffix]
    return float(match.group(1)) * multiplier


class Resource(BaseModel):
    """Resource requirements of a component (plugboard's ``Resource``).

    ``cpu`` (default 0.001), ``gpu`` (default 0) and ``memory`` (bytes, default 0), and custom
    ``resources`` by name. Mutable, validated on assignment, as plugboard's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    cpu: float = 0.001
    gpu: float = 0
    memory: int = 0
    resources: dict[str, float] = Field(default_factory=dict)

    @field_validator("cpu", "gpu", mode="before")
    @classmethod
    def _parse_cpu_gpu(cls, v: _t.Any) -> float:
        return parse_resource_value(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _parse_memory(cls, v: _t.Any) -> int:
        return int(parse_resource_value(v))

    @field_validator("resources", mode="before")
    @classmethod
    def _parse_resources(cls, v: _t.Any) -> dict[str, float]:
        if not isinstance(v, dict):
            raise ValueError(f"resources must be a mapping of name to value, got {type(v).__name__}")
        return {str(key): parse_resource_value(value) for key, value in v.items()}

    def to_ray_options(self, style: _t.Literal["actor", "placement_group"] = "actor") -> dict[str, _t.Any]:
        """The requirements as Ray actor (or placement group) options, as plugboard gives them;
        zero values are left out."""
        options: dict[str, _t.Any] = {}
        cpu_key, gpu_key = ("num_cpus", "num_gpus") if style == "actor" else ("CPU", "GPU")
        if self.cpu > 0:
            options[cpu_key] = round(self.cpu, RAY_RESOURCE_PRECISION)
        if self.gpu > 0:
            options[gpu_key] = round(self.gpu, RAY_RESOURCE_PRECISION)
        if self.memory > 0:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = {k: round(v, RAY_RESOURCE_PRECISION) for k, v in self.resources.items()}
        return options

    @property
    def is_default(self) -> bool:
        """Whether nothing beyond plugboard's defaults is asked for."""
        return self == Resource()

    def requested(self) -> dict[str, _t.Any]:
        """What is asked for beyond the defaults (for notices): ``{"cpu": 2.0, "memory": ...}``."""
        default = Resource()
        return {k: v for k, v in self.model_dump().items() if v != getattr(default, k)}


__all__ = ["RAY_RESOURCE_PRECISION", "RESOURCE_SUFFIXES", "Resource", "parse_resource_value"]
