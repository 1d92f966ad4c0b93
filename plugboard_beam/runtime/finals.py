"""A key's final values: the fields a run was asked to report when the key ends (the objectives
of a tuning study), and the ``ConstraintError`` that made it infeasible, if one did.

Every engine that runs keys reports them the same way (``--runner local`` in its report, a Beam
stage DoFn on its ``final`` output as JSON), so a study reads its trials alike on every runner.
"""

from __future__ import annotations

import json
import math
import numbers
import typing as _t

from plugboard_beam.exceptions import ConstraintError, StepError

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component

#: ``component.field`` names
Fields = tuple[str, ...]


def final_values(key: str, components: _t.Mapping[str, Component], fields: Fields,
                 errors: _t.Sequence[StepError] = ()) -> dict[str, _t.Any]:
    """``{"key", "values": {"comp.field": value}, "constraint": None or {"objective_value": x}}``
    for the ``fields`` whose component is among ``components`` (a stage holds some of them)."""
    values: dict[str, _t.Any] = {}
    for name in fields:
        comp_name, _, field = name.partition(".")
        comp = components.get(comp_name)
        if comp is not None:
            values[name] = _plain(getattr(comp, field, None))
    constraint = None
    for err in errors:
        cause = err.__cause__
        if isinstance(cause, ConstraintError) or err.error_type == "ConstraintError":
            value = getattr(cause, "objective_value", None)
            constraint = {"objective_value": None if value is None else float(value),
                          "component": err.component, "step": err.step, "reason": err.error_message}
            break
    return {"key": key, "values": values, "constraint": constraint}


def _plain(value: _t.Any) -> _t.Any:
    """A JSON-able value: numbers of any library as float/int, other values as text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        json.dumps(value, allow_nan=True)
        return value
    except (TypeError, ValueError):
        return repr(value)


def to_json(row: dict[str, _t.Any]) -> str:
    """One JSON line (non-finite floats as JSON's NaN/Infinity, which ``from_json`` reads back)."""
    return json.dumps(row, allow_nan=True)


def from_json(line: str) -> dict[str, _t.Any]:
    """The inverse of ``to_json``."""
    row: dict[str, _t.Any] = json.loads(line)
    return row


def merge(rows: _t.Iterable[dict[str, _t.Any]]) -> dict[str, dict[str, _t.Any]]:
    """Rows of several stages of a key, as one row per key."""
    out: dict[str, dict[str, _t.Any]] = {}
    for row in rows:
        have = out.setdefault(row["key"], {"key": row["key"], "values": {}, "constraint": None})
        have["values"].update(row.get("values") or {})
        if have["constraint"] is None and row.get("constraint"):
            have["constraint"] = row["constraint"]
    return out


def is_number(value: _t.Any) -> bool:
    """A real number an optimiser can take (NaN excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
