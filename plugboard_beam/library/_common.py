"""Shared bits of the library components."""

from __future__ import annotations

import typing as _t


def field_names(args: _t.Mapping[str, _t.Any]) -> list[str]:
    """The ``fields`` argument of a component whose fields are given by its arguments."""
    fields = args.get("fields")
    if not isinstance(fields, (list, tuple)) or not fields or not all(isinstance(f, str) for f in fields):
        raise ValueError("'fields' must be a non-empty list of field names")
    return list(fields)
