"""Recording: every message that crosses a connector, and every delivered event, as Arrow
record batches (for Parquet). ``kind`` tells them apart: ``field`` rows are connector values,
``event`` rows are one event delivered to one target (source and target are component names,
``event_type`` its type, ``value`` its data as JSON, ``step`` the producer's tick)."""

from __future__ import annotations

import json
import typing as _t

import pyarrow as pa

from plugboard_beam.graph.model import Edge

#: key, step (the source's step index), source and target ("component.field"), the value as
#: JSON text, and the value as a number when it is one (for quick analysis); ``kind`` (field or
#: event) and the event's type (empty for fields).
SCHEMA = pa.schema([
    ("key", pa.string()),
    ("step", pa.int64()),
    ("source", pa.string()),
    ("target", pa.string()),
    ("value", pa.string()),
    ("number", pa.float64()),
    ("kind", pa.string()),
    ("event_type", pa.string()),
])


def event_data(event: _t.Any) -> _t.Any:
    """An event's ``data`` as plain JSON-able values."""
    data = event.data
    return data.model_dump(mode="json") if hasattr(data, "model_dump") else data


def encode(value: _t.Any) -> tuple[str, _t.Optional[float]]:
    """(JSON text, number or None) of a connector value."""
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    return text, number


class RecordBuffer:
    """Collects rows and hands them out as Arrow tables of about ``size`` rows."""

    def __init__(self, size: int = 16384) -> None:
        self.size = size
        self.key = ""
        self._cols: tuple[list[_t.Any], ...] = ([], [], [], [], [], [], [], [])

    def __call__(self, edge: Edge, step: int, value: _t.Any) -> None:
        k, st, so, ta, va, nu, ki, et = self._cols
        k.append(self.key)
        st.append(step)
        if edge.kind == "event":
            text, number = encode(event_data(value))
            so.append(edge.source)
            ta.append(edge.target)
            ki.append("event")
            et.append(value.type)
        else:
            text, number = encode(value)
            so.append(f"{edge.source}.{edge.source_field}")
            ta.append(f"{edge.target}.{edge.target_field}")
            ki.append("field")
            et.append("")
        va.append(text)
        nu.append(number)

    def __len__(self) -> int:
        return len(self._cols[0])

    def full(self) -> bool:
        """Enough rows for a batch."""
        return len(self) >= self.size

    def take(self) -> _t.Optional[pa.Table]:
        """The rows so far as one table (None if there are none)."""
        if not len(self):
            return None
        batch = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(self._cols, SCHEMA, strict=True)],
                                     schema=SCHEMA)
        self._cols = ([], [], [], [], [], [], [], [])
        return batch
