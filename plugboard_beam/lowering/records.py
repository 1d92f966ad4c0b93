"""Recording: every message that crosses a connector, and every delivered event, as Arrow
record batches (for Parquet). ``kind`` tells them apart: ``field`` rows are connector values,
``event`` rows are one event delivered to one target (source and target are component names,
``event_type`` its type, ``value`` its data as JSON, ``step`` the producer's tick)."""

from __future__ import annotations

import json
import typing as _t

import pyarrow as pa

from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import Edge
from plugboard_beam.library.json_limits import int_digits

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


#: the types a recorded value may be made of (JSON's own: read back, they are equal)
_SCALARS = (str, int, float, bool, type(None))


#: deepest nesting of lists and dicts a recorded value may have, and most digits of an integer
#: (Python's own int/str limit): past them ``json.dumps`` raises or recurses out of the stack
MAX_DEPTH = 64
MAX_INT_DIGITS = 4300


def encode(value: _t.Any) -> tuple[str, _t.Optional[float]]:
    """(JSON text, number or None) of a connector value; ``TypeError`` if JSON cannot hold it
    losslessly (tuples, sets, non-string dict keys, objects: never a silent ``repr``), or it is
    nested deeper than ``MAX_DEPTH`` or has an integer of more than ``MAX_INT_DIGITS`` digits.
    NaN and infinities are written as JSON's common extension (``NaN``, ``Infinity``); the
    number of an integer too large for a float is None."""
    _check_lossless(value, "the value")
    number: _t.Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    return json.dumps(value), number


def _check_lossless(value: _t.Any, where: str) -> None:
    # iterative: a list nested 100,000 deep is a failure of its key, not a RecursionError
    stack: list[tuple[_t.Any, str, int]] = [(value, where, 0)]
    while stack:
        v, at, depth = stack.pop()
        if isinstance(v, int) and not isinstance(v, bool) and int_digits(v) > MAX_INT_DIGITS:
            raise TypeError(f"{at} is an integer of {int_digits(v):,} digits, which JSON text cannot record "
                            f"(at most {MAX_INT_DIGITS:,} digits)")
        if isinstance(v, _SCALARS):
            continue
        if isinstance(v, (list, dict)) and depth >= MAX_DEPTH:
            raise TypeError(f"{at} is nested deeper than {MAX_DEPTH} lists/dicts, which is not recorded")
        if isinstance(v, list):
            stack.extend((item, f"{at}[{i}]", depth + 1) for i, item in enumerate(v))
            continue
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise TypeError(f"{at} has the key {k!r} ({type(k).__name__}); JSON object keys are strings")
                stack.append((item, f"{at}[{k!r}]", depth + 1))
            continue
        raise TypeError(f"{at} is a {type(v).__name__}, which JSON cannot record losslessly (record str, int, "
                        "float, bool, None, and lists and string-keyed dicts of them)")


class RecordBuffer:
    """Collects rows and hands them out as Arrow tables of about ``size`` rows."""

    def __init__(self, size: int = 16384) -> None:
        self.size = size
        self.key = ""
        self._cols: tuple[list[_t.Any], ...] = ([], [], [], [], [], [], [], [])

    def __call__(self, edge: Edge, step: int, value: _t.Any) -> None:
        try:
            text, number = encode(event_data(value) if edge.kind == "event" else value)
        except TypeError as exc:
            raise StepError(edge.source, self.key, step, "record", exc, field=edge.source_field) from None
        k, st, so, ta, va, nu, ki, et = self._cols
        k.append(self.key)
        st.append(step)
        if edge.kind == "event":
            so.append(edge.source)
            ta.append(edge.target)
            ki.append("event")
            et.append(value.type)
        else:
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
