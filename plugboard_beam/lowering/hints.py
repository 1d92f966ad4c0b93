"""Components' ``Resource`` as Beam resource hints of the stage that runs them.

A stage's DoFn runs every component it fuses, so its hints are the largest of its members':
``memory`` (bytes) -> ``min_ram``; ``cpu`` above one -> ``cpu_count`` (rounded up: a worker has
at least one CPU, so fractions ask for nothing); ``gpu`` -> ``accelerator``
``type:<T>;count:<gpu rounded up>;install-nvidia-driver``, whose ``<T>`` is named by a custom
resource ``nvidia-…`` (``resources: {nvidia-l4: 1}``), ``nvidia-tesla-t4`` when none is.
Other custom resources (Ray's) have no Beam meaning: they are listed as ignored.

Dataflow reads the hints (the dry-run job shows them); the DirectRunner and ``--runner local``
place nothing, so there every requirement is reported as ignored, once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.schemas.resource import Resource

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import LoadedModel

DEFAULT_ACCELERATOR = "nvidia-tesla-t4"
ACCELERATOR_PREFIX = "nvidia-"


def component_resources(model: LoadedModel) -> dict[str, Resource]:
    """Each component's requirements (those asking for more than the defaults): its YAML
    ``resources``, else its class's declaration."""
    out: dict[str, Resource] = {}
    for spec in model.config.plugboard.process.args.components:
        declared = getattr(model.classes.get(spec.args.name), "resources", None)
        res = spec.args.resources or (declared if isinstance(declared, Resource) else None)
        if res is not None and not res.is_default:
            out[spec.args.name] = res
    return out


@dataclass
class Hints:
    """Beam resource hints of one stage, and what of its members' requirements Beam ignores."""

    hints: dict[str, _t.Union[int, str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def stage_hints(resources: _t.Mapping[str, Resource], members: _t.Iterable[str]) -> Hints:
    """The hints of a stage running ``members``; ``UserError`` if they ask for different GPUs."""
    out = Hints()
    ram = cpus = gpus = 0
    types: dict[str, list[str]] = {}
    for name in members:
        res = resources.get(name)
        if res is None:
            continue
        ram = max(ram, res.memory)
        if res.cpu > 1:
            cpus = max(cpus, math.ceil(res.cpu))
        elif res.cpu != Resource().cpu:
            out.ignored.append(f"{name}: cpu {res.cpu:g} (a worker has at least one CPU)")
        kinds = [k for k in res.resources if k.startswith(ACCELERATOR_PREFIX)]
        for key, value in res.resources.items():
            if key not in kinds:
                out.ignored.append(f"{name}: custom resource {key!r}={value:g} (Ray's; Beam has none)")
        if res.gpu > 0:
            gpus = max(gpus, math.ceil(res.gpu))
            for kind in kinds or [DEFAULT_ACCELERATOR]:
                types.setdefault(kind, []).append(name)
    if len(types) > 1:
        raise UserError("components run by one stage ask for different GPUs ("
                        + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(types.items()))
                        + "): give them the same one, or run them in separate stages (--stages component)")
    if ram:
        out.hints["min_ram"] = ram
    if cpus:
        out.hints["cpu_count"] = str(cpus)  # Beam parses this hint from text
    if gpus:
        out.hints["accelerator"] = f"type:{next(iter(types))};count:{gpus};install-nvidia-driver"
    return out


def describe_requirements(resources: _t.Mapping[str, Resource]) -> str:
    """``a (cpu=2, memory=536870912), b (gpu=1)``: what the components ask for beyond defaults."""
    parts = []
    for name, res in resources.items():
        asked = res.requested()
        if asked:
            parts.append(f"{name} ({', '.join(f'{k}={v}' for k, v in asked.items())})")
    return ", ".join(parts)


__all__ = ["DEFAULT_ACCELERATOR", "Hints", "component_resources", "describe_requirements", "stage_hints"]
