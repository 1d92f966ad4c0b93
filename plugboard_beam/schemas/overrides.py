"""Naming and setting one field of a process spec (plugboard 0.9.0's ``parse_parameter_name`` and
``override_parameter``; the names ``--param`` / ``-p`` and tuning use).

A name is ``component.<component>.<arg|initial_value|parameter>.<field>``,
``process.default.parameter.<field>``, or a bare ``<field>`` (a process parameter).
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.schemas.tune import BaseFieldSpec, FieldType

if _t.TYPE_CHECKING:
    from plugboard_beam.schemas import ProcessSpec

_FORMAT = ("Parameter name must have the format '<name>', "
           "'component.<name>.<arg|initial_value|parameter>.<field>' or 'process.default.parameter.<field>'.")
#: longest name parsed (a command-line value: bounded before it is split)
MAX_NAME_CHARS = 512


def parse_parameter_name(name: str) -> BaseFieldSpec:
    """The field ``name`` designates; ``ValueError`` saying what is wrong with it otherwise."""
    if not name:
        raise ValueError("Parameter name must not be empty.")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"Parameter name is too long ({len(name)} characters, at most {MAX_NAME_CHARS}).")
    if "." not in name:
        name = f"process.default.parameter.{name}"
    parts = name.split(".", maxsplit=3)
    if len(parts) != 4:
        raise ValueError(_FORMAT)
    object_type, object_name, field_type, field_name = parts
    if not object_name or not field_name:
        raise ValueError("Parameter names must include an object name and field name.")
    if object_type not in ("component", "process"):
        raise ValueError(f"Unknown object type {object_type!r} for parameter override.")
    if object_type == "process" and object_name != "default":
        raise ValueError("Process parameter names must use 'process.default'.")
    settable = ("arg", "initial_value", "parameter") if object_type == "component" else ("parameter",)
    if field_type not in settable:
        raise ValueError(f"Parameter name {name!r} does not identify an overridable parameter.")
    return BaseFieldSpec(
        object_type=_t.cast(_t.Literal["component", "process"], object_type),
        object_name=None if object_type == "process" else object_name,
        field_type=_t.cast(FieldType, field_type),
        field_name=field_name,
    )


def override_parameter(process: ProcessSpec, param: BaseFieldSpec, value: _t.Any) -> None:
    """Set the field ``param`` of ``process`` (in place) to ``value``; ``ValueError`` if the
    component is not in the process."""
    if param.object_type == "process":
        process.args.parameters[param.field_name] = value
        return
    if param.object_type != "component":
        raise ValueError(f"Unknown object type {param.object_type} for parameter override.")
    component = next((c for c in process.args.components if c.args.name == param.object_name), None)
    if component is None:
        raise ValueError(f"Component {param.object_name} not found in process.")
    if param.field_type == "arg":
        setattr(component.args, param.field_name, value)
    elif param.field_type == "initial_value":
        component.args.initial_values[param.field_name] = value
    elif param.field_type == "parameter":
        component.args.parameters[param.field_name] = value
    else:
        raise ValueError(f"field_type {param.field_type!r} cannot be overridden (a 'field' is read, not set)")


__all__ = ["override_parameter", "parse_parameter_name"]
