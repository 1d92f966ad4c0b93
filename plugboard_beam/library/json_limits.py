"""JSON that crosses a trust boundary: limits checked before parsing, strict JSON out, and
messages cut to fit Pub/Sub.

**In** (``check_payload``, ``loads_limited``): a payload from a topic is checked against
``DecodeLimits`` with a cheap pre-scan of its bytes *before* ``json.loads`` sees it — its size,
the nesting depth of arrays and objects, and the longest run of digits in a number. These are
the inputs that make the parser itself fail or run long: an array nested 100,000 deep raises
``RecursionError``, an integer of more than 4,300 digits raises ``ValueError`` in Python 3.12
(the int/str conversion limit, ``sys.get_int_max_str_digits()``), and a multi-megabyte message
costs memory and parse time on the one thread that reads a subscription. The defaults:

* ``max_bytes`` 1,000,000 (1 MB): a sensor reading is a small JSON object; 1 MB parses in
  milliseconds and leaves a rejected payload, its reason and attributes well inside Pub/Sub's
  10 MB message limit when it is dead-lettered;
* ``max_depth`` 64: nesting far beyond any reading, far below the parser's recursion limit;
* ``max_int_digits`` 4,300: Python's own int/str limit, so that every accepted number also
  converts back to text (``json.dumps``, ``str``) without raising.

**Out** (``dumps_strict``): strict JSON (RFC 8259) or ``NotJSON`` naming the part of the value
that is not: a non-finite float (``NaN``, ``Infinity``: not JSON), an integer over
``max_int_digits`` digits, nesting deeper than ``max_depth``, a non-string object key or a
value of another type.

**Pub/Sub's limits** (``fit_message``): a message of at most 10 MB with at most 100
attributes, attribute keys of at most 256 bytes and values of at most 1024 bytes. A dead letter
that would not fit is cut: its data to what fits, with the attributes ``truncated="true"``,
``original_bytes`` and ``sha256`` (hex digest of the original data), and its attribute values
cut at a UTF-8 character boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import json
import math
import re
import typing as _t

#: Pub/Sub's limit on one message (data, attributes and their keys); a publish request too
PUBSUB_MAX_MESSAGE = 10_000_000
#: what a message of ours may take: the limit less room for the request's own fields
MAX_PUBLISH_BYTES = PUBSUB_MAX_MESSAGE - 64_000
PUBSUB_MAX_ATTRIBUTES = 100
PUBSUB_MAX_ATTRIBUTE_KEY = 256
PUBSUB_MAX_ATTRIBUTE_VALUE = 1024

# A JSON string (escapes included; the alternatives are disjoint, so matching is linear).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SHAPE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_RUNS = re.compile(rb"\[+|\]+")
_DIGITS_ONLY = bytes.maketrans(b"0123456789", b"9" * 10)
_DIGITS = re.compile(rb"[0-9]+")


class LimitExceeded(ValueError):
    """A payload over one of its ``DecodeLimits`` (the message says which and by how much)."""


class NotJSON(ValueError):
    """A value that strict JSON cannot hold (the message says where in the value and why)."""


@dataclass(frozen=True)
class DecodeLimits:
    """What an untrusted JSON payload may be (see the module docstring for the defaults)."""

    max_bytes: int = 1_000_000
    max_depth: int = 64
    max_int_digits: int = 4300

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_depth", "max_int_digits"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def of(cls, max_bytes: _t.Optional[int] = None, max_depth: _t.Optional[int] = None,
           max_int_digits: _t.Optional[int] = None) -> DecodeLimits:
        """The defaults, with the limits given (not ``None``) replaced."""
        given = {"max_bytes": max_bytes, "max_depth": max_depth, "max_int_digits": max_int_digits}
        return cls(**{k: v for k, v in given.items() if v is not None})


def check_payload(data: bytes, limits: DecodeLimits) -> None:
    """Raise ``LimitExceeded`` if ``data`` is over a limit; cheap (byte operations and regular
    expressions in C, a Python loop only over runs of brackets)."""
    if len(data) > limits.max_bytes:
        raise LimitExceeded(f"payload of {len(data):,} bytes is over the limit of {limits.max_bytes:,} bytes")
    if len(data) <= limits.max_depth and len(data) <= limits.max_int_digits:
        return  # too short to break either limit
    outside = _STRING.sub(b'""', data)  # brackets and digits inside strings are text
    start = outside.translate(_DIGITS_ONLY).find(b"9" * (limits.max_int_digits + 1))  # (fast: bytes.find)
    if start >= 0:
        run = _DIGITS.match(outside, start)
        n = len(run.group()) if run is not None else limits.max_int_digits + 1
        raise LimitExceeded(f"a number with {n:,} digits is over the limit of {limits.max_int_digits:,} digits")
    # The brackets alone, as [ and ]. A few passes remove the innermost pairs (one level each, in
    # C), which collapses wide shallow structure; then a loop over runs of [ or ] (few, once the
    # wide parts are gone; a deep nest is two runs) adds up the depth, stopping when too deep.
    shape = outside.translate(_SHAPE, _NOT_BRACKETS)
    peeled = 0
    while shape and peeled < 4:
        shorter = shape.replace(b"[]", b"")
        if len(shorter) == len(shape):
            break  # unbalanced: not JSON (the parser says so), but it would still open these
        shape, peeled = shorter, peeled + 1
    depth = peeled
    for run in _RUNS.finditer(shape):
        n = run.end() - run.start()
        if shape[run.start()] == 91:  # [
            depth += n
            if depth > limits.max_depth:
                break
        else:
            depth -= n
    if depth > limits.max_depth or peeled > limits.max_depth:
        raise LimitExceeded(f"arrays/objects nested deeper than the limit of {limits.max_depth}")


def loads_limited(data: bytes, limits: DecodeLimits) -> _t.Any:
    """``json.loads`` of an untrusted payload after ``check_payload``. Raises ``LimitExceeded``
    or ``ValueError`` (not UTF-8, not JSON); nothing else."""
    check_payload(data, limits)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not JSON (not UTF-8): {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # defence in depth: a limit set above Python's own
        raise LimitExceeded(f"payload cannot be decoded: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------ out
def int_digits(value: int) -> int:
    """Decimal digits of ``value`` (without converting it to text, which may raise)."""
    n = abs(value)
    if n < 10**18:
        return len(str(n))
    estimate = int(n.bit_length() * 0.30102999566398120)  # log10(2)
    return estimate + (1 if n >= 10**estimate else 0)


def find_not_json(value: _t.Any, max_depth: int = 64, max_int_digits: int = 4300) -> _t.Optional[str]:
    """Why ``value`` is not strict JSON within the limits (``None`` if it is), naming where in it.
    Iterative: a value nested 100,000 deep is described, not a ``RecursionError``."""
    stack: list[tuple[_t.Any, str, int]] = [(value, "", 0)]
    while stack:
        v, where, depth = stack.pop()
        at = f" at {where}" if where else ""
        if v is None or isinstance(v, (bool, str)):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                return f"the float {v!r}{at} is not JSON (NaN and infinities have no JSON form)"
            continue
        if isinstance(v, int):
            if int_digits(v) > max_int_digits:
                return f"the integer{at} has {int_digits(v):,} digits, over the limit of {max_int_digits:,}"
            continue
        if isinstance(v, (list, tuple, dict)):
            if depth >= max_depth:
                return f"the value{at} is nested deeper than the limit of {max_depth}"
            if isinstance(v, dict):
                for k, item in v.items():
                    if not isinstance(k, str):
                        return f"the object{at} has the key {k!r} ({type(k).__name__}); JSON object keys are strings"
                    stack.append((item, f"{where}[{k!r}]", depth + 1))
            else:
                stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v))
            continue
        return f"the value{at} is a {type(v).__name__}, which JSON cannot hold"
    return None


def dumps_strict(value: _t.Any, max_depth: int = 64, max_int_digits: int = 4300) -> str:
    """``value`` as strict JSON text; ``NotJSON`` (naming where and why) if it cannot be: see
    ``find_not_json``. Tuples are written as arrays (as ``json.dumps`` does)."""
    problem = find_not_json(value, max_depth, max_int_digits)
    if problem is not None:
        raise NotJSON(problem)
    try:
        return json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:  # not expected after the walk
        raise NotJSON(f"{type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------ Pub/Sub limits
def cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8, at a character boundary."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def message_size(data: bytes, attributes: _t.Mapping[str, str]) -> int:
    """Bytes a message counts against Pub/Sub's limit: data, attribute keys and values."""
    return len(data) + sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())


def fit_message(data: bytes, attributes: _t.Mapping[str, str], max_bytes: int = MAX_PUBLISH_BYTES,
                keep: _t.Sequence[str] = ()) -> tuple[bytes, dict[str, str]]:
    """A message that Pub/Sub accepts: attribute keys and values cut to their limits, at most
    100 attributes (those named in ``keep`` first), and the data cut so that the whole is at
    most ``max_bytes``; a cut message says so (``truncated``, ``original_bytes``, ``sha256``)."""
    first = [k for k in keep if k in attributes] + [k for k in attributes if k not in keep]
    attrs: dict[str, str] = {}
    for k in first:
        key = cut_utf8(str(k), PUBSUB_MAX_ATTRIBUTE_KEY)
        if key and key not in attrs and len(attrs) < PUBSUB_MAX_ATTRIBUTES - 3:
            attrs[key] = cut_utf8(str(attributes[k]), PUBSUB_MAX_ATTRIBUTE_VALUE)
    data = bytes(data)
    if message_size(data, attrs) <= max_bytes:
        return data, attrs
    marks = {"truncated": "true", "original_bytes": str(len(data)), "sha256": hashlib.sha256(data).hexdigest()}
    attrs.update(marks)
    room = max(0, max_bytes - message_size(b"", attrs))
    return data[:room], attrs
