"""What a streaming run sends itself through Pub/Sub, encoded so that it cannot run code and
authenticated so that nobody else can forge it.

**Values that may cross a cut edge** (a feedback topic) are plain data: ``None``, ``bool``,
``int`` (any size), ``float`` (``nan`` and ``±inf`` included), ``str``, ``bytes``, and
``list``, ``tuple`` and ``dict`` of these (dict keys of the scalar types or tuples), nested at
most ``MAX_DEPTH`` deep. Integer and real number types of other libraries (``numpy.int64``,
``numpy.float32``, ...) cross as ``int`` / ``float``. Anything else (objects, sets, arrays, ...)
cannot: encoding it raises ``Unencodable`` naming where in the value it sits, and the stage
reports that as the key's failure.

The encoding is JSON with explicit tags: JSON's own ``null``, booleans, strings, finite
floats, integers up to 2**53 and arrays stand for themselves; everything else is a one-entry
object ``{"i": "<digits>"}`` (big int), ``{"f": "nan"|"inf"|"-inf"}``, ``{"b": "<base64>"}``,
``{"t": [...]}`` (tuple), ``{"d": [[k, v], ...]}`` (dict) or ``{"e": [event, tick]}`` (an
event of the model, as ``plugboard_beam.events.codec`` writes it). Decoding accepts exactly these
shapes and nothing else; an event is validated by the model's own class for its type.

**Messages** (feedback chunks and stage completions) are one JSON object (``data``) whose
HMAC-SHA256 under the run's secret is the attribute ``mac``. The secret is ``os.urandom(32)``
made when a DirectRunner run starts, or a Secret Manager secret on Dataflow. The DoFns in the
pipeline hold a ``Codec`` with only a reference to it (a ``secrets.KeySource``), loaded in
their ``setup()``: a pickled ``Codec`` never holds the secret (pickling one that was given the
bytes themselves raises), so it is never in the job graph, a staged file, a template, a
message, a resource name or a log. The run id is inside the authenticated data, so a message of another
run (or an earlier one) is rejected too. ``Codec.open`` never raises on what it received: it
returns ``None`` for anything unauthenticated or malformed (the caller counts and drops it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
import hashlib
import hmac
import json
import math
import numbers
import os
from types import MappingProxyType
import typing as _t

from plugboard_beam.events.codec import EventDecodeError
from plugboard_beam.events.codec import decode as decode_event
from plugboard_beam.events.codec import encode as encode_event
from plugboard_beam.events.event import Event
from plugboard_beam.library.json_limits import int_digits
from plugboard_beam.streaming.secrets import KeySource

#: deepest nesting of lists, tuples and dicts that may cross a cut edge
MAX_DEPTH = 32
#: largest internal message we accept (Pub/Sub's own limit is 10 MB)
MAX_MESSAGE = 8_000_000
#: most digits of an integer that may cross (Python's own int/str limit is 4300)
MAX_INT_DIGITS = 4000
#: the attribute carrying the MAC
MAC = "mac"
#: the attribute marking an internal message (its value is the kind)
KIND = "pbb"
_BIG = 2**53


class Unencodable(ValueError):
    """A value that may not cross a cut edge; ``where`` says which part of it (``[0]["a"]``)."""

    def __init__(self, where: str, type_name: str) -> None:
        self.where = where
        self.type_name = type_name
        at = f" at {where}" if where else ""
        super().__init__(f"a value of type {type_name}{at} cannot cross a cut edge (allowed: None, bool, int, "
                         "float, str, bytes and lists, tuples and dicts of them)")


class Malformed(ValueError):
    """Received data that is not a value of the encoding."""


def encode_value(value: _t.Any, where: str = "", depth: int = 0) -> _t.Any:
    """``value`` as JSON-able data (see the module docstring); raises ``Unencodable``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"f": repr(value)}
    if isinstance(value, int):
        if -_BIG < value < _BIG:
            return value
        if int_digits(value) > MAX_INT_DIGITS:  # str() would raise past Python's 4300 digits
            raise Unencodable(where, f"int of {int_digits(value):,} digits (at most {MAX_INT_DIGITS:,})")
        return {"i": str(value)}
    if depth >= MAX_DEPTH:
        if isinstance(value, (list, tuple, dict)):
            raise Unencodable(where, f"{type(value).__name__} nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [encode_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"t": [encode_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"d": [[encode_value(k, f"{where} key {k!r}", depth + 1), encode_value(v, f"{where}[{k!r}]", depth + 1)]
                      for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Event):
        return {"e": [encode_event(value), value.tick]}
    if isinstance(value, numbers.Integral):
        return encode_value(int(value), where, depth)
    if isinstance(value, numbers.Real):
        return encode_value(float(value), where, depth)
    raise Unencodable(where, type(value).__name__)


def decode_value(data: _t.Any, depth: int = 0, events: _t.Mapping[str, type[Event]] = MappingProxyType({})
                 ) -> _t.Any:
    """The inverse of ``encode_value``; raises ``Malformed`` for any other shape. ``events``:
    the model's event classes by type (an event of any other type is malformed)."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if depth >= MAX_DEPTH + 1:
        raise Malformed("nested too deep")
    if isinstance(data, list):
        return [decode_value(v, depth + 1, events) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise Malformed(f"unexpected {type(data).__name__}")
    (tag, body), = data.items()
    if tag == "f" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "i" and isinstance(body, str) and body.lstrip("-").isdigit() and len(body) <= MAX_INT_DIGITS + 1:
        return int(body)
    if tag == "b" and isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise Malformed("bad base64") from exc
    if tag == "t" and isinstance(body, list):
        return tuple(decode_value(v, depth + 1, events) for v in body)
    if tag == "e" and isinstance(body, list) and len(body) == 2 and type(body[1]) is int:
        try:
            event = decode_event(body[0], events)
        except EventDecodeError as exc:
            raise Malformed(str(exc)) from None
        event._tick = body[1]
        return event
    if tag == "d" and isinstance(body, list):
        out = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise Malformed("bad dict entry")
            k = decode_value(pair[0], depth + 1, events)
            try:
                out[k] = decode_value(pair[1], depth + 1, events)
            except TypeError as exc:  # an unhashable key
                raise Malformed("unhashable dict key") from exc
        return out
    raise Malformed(f"unknown tag {tag!r}")


def new_secret() -> bytes:
    """A fresh per-run secret."""
    return os.urandom(32)


@dataclass(frozen=True)
class Codec:
    """Seals and opens one run's internal messages. ``secret``: the bytes (the driver, tests) or
    a ``KeySource`` loaded on first use or by ``load()`` (the DoFns' ``setup()``). ``repr`` never
    shows the secret; pickling keeps only the ``KeySource``."""

    run_id: str
    secret: _t.Union[bytes, KeySource] = field(repr=False)
    #: the model's event classes by type name (events on cut event edges are decoded with them)
    events: _t.Mapping[str, type[Event]] = field(default_factory=dict, repr=False)

    def load(self) -> bytes:
        """The secret (loaded from its source once); raises ``secrets.KeyUnavailable``."""
        if isinstance(self.secret, (bytes, bytearray)):
            return bytes(self.secret)
        key = self.__dict__.get("_key")
        if key is None:
            key = self.secret.load()
            object.__setattr__(self, "_key", key)
        return _t.cast(bytes, key)

    def __getstate__(self) -> dict[str, _t.Any]:
        if isinstance(self.secret, (bytes, bytearray)):
            raise TypeError("a Codec holding its secret cannot be pickled (it would put the secret into the "
                            "job graph): give it a KeySource (streaming/secrets.py)")
        return {k: v for k, v in self.__dict__.items() if k != "_key"}

    def _mac(self, data: bytes) -> str:
        return hmac.new(self.load(), data, hashlib.sha256).hexdigest()

    def seal(self, kind: str, body: dict[str, _t.Any]) -> tuple[bytes, dict[str, str]]:
        """``(data, attributes)`` of an internal message of ``kind`` carrying ``body``."""
        data = json.dumps({"run": self.run_id, "kind": kind, **body}, separators=(",", ":"),
                          allow_nan=False).encode()
        return data, {KIND: kind, MAC: self._mac(data)}

    def open(self, data: _t.Optional[bytes], attributes: _t.Optional[_t.Mapping[str, str]],
             kind: str) -> _t.Optional[dict[str, _t.Any]]:
        """The body of an authentic message of this run and ``kind``, else ``None`` (never raises)."""
        try:
            mac = (attributes or {}).get(MAC)
            if not isinstance(mac, str) or not data or len(data) > MAX_MESSAGE:
                return None
            if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(bytes(data)).encode()):
                return None
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("run") != self.run_id or body.get("kind") != kind:
                return None
            return body
        except (ValueError, TypeError, RecursionError):
            return None

    # ------------------------------------------------------------- feedback chunks
    def seal_chunk(self, key: str, chunk: tuple[int, int, list[_t.Any], bool]) -> tuple[bytes, dict[str, str]]:
        """A feedback chunk; raises ``Unencodable`` (with ``where`` naming the value's index)."""
        edge, start, values, ended = chunk
        encoded = []
        for i, v in enumerate(values):
            try:
                encoded.append(encode_value(v))
            except Unencodable as exc:
                raise Unencodable(f"step {start + i}{' ' + exc.where if exc.where else ''}", exc.type_name) from None
        return self.seal("chunk", {"key": key, "edge": edge, "start": start, "end": bool(ended), "values": encoded})

    def seal_chunks(self, key: str, chunk: tuple[int, int, list[_t.Any], bool]) -> list[tuple[bytes, dict[str, str]]]:
        """``seal_chunk``, as several messages (one value each) when one would be over
        ``MAX_MESSAGE``; a single value over it raises ``Unencodable`` naming its step."""
        sealed = self.seal_chunk(key, chunk)
        if len(sealed[0]) <= MAX_MESSAGE:
            return [sealed]
        edge, start, values, ended = chunk
        if len(values) <= 1:
            kind = type(values[0]).__name__ if values else "chunk"
            raise Unencodable(f"step {start}", f"{kind} ({len(sealed[0]):,} bytes encoded; a feedback message "
                                               f"holds at most {MAX_MESSAGE:,})")
        return [m for i, v in enumerate(values)
                for m in self.seal_chunks(key, (edge, start + i, [v], ended and i == len(values) - 1))]

    def open_chunk(self, data: _t.Optional[bytes], attributes: _t.Optional[_t.Mapping[str, str]],
                   ) -> _t.Optional[tuple[str, tuple[int, int, list[_t.Any], bool]]]:
        """``(key, chunk)`` of an authentic feedback message, else ``None``."""
        body = self.open(data, attributes, "chunk")
        if body is None:
            return None
        try:
            key, edge, start, end, values = body["key"], body["edge"], body["start"], body["end"], body["values"]
            if not (isinstance(key, str) and type(edge) is int and type(start) is int and start >= 0
                    and isinstance(end, bool) and isinstance(values, list)):
                return None
            return key, (edge, start, [decode_value(v, 0, self.events) for v in values], end)
        except (KeyError, Malformed, RecursionError, ValueError):
            return None
