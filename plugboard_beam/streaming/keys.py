"""Keys are data: which keys read from a topic a streaming run accepts.

A key names a model instance. It travels in message attributes (Pub/Sub limits an attribute
value to 1024 bytes of UTF-8), in log lines and failure rows, and, through ``{key}`` in string
arguments, into file names. A key that could not travel safely is rejected with a reason and
its message goes to the dead-letter topic.

``key_for_path`` is the one place a key meets a file path here. Until the spec layer's encoder
(``plugboard_beam.spec.keys.key_for_path``) is merged this is a local stand-in with the same
contract (a key becomes one path segment that cannot leave its folder); swap the import below.
"""

from __future__ import annotations

import re
import typing as _t

#: longest key accepted from a message (characters)
MAX_KEY = 256

_UNSAFE = re.compile(r"[\x00-\x1f\x7f%/\\]")


def key_for_path(key: str) -> str:
    """``key`` as one file-name segment: ``%``, ``/``, ``\\`` and control characters
    percent-encoded, and a name made only of dots (``.``, ``..``) encoded too."""
    out = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", key)
    if out and set(out) == {"."}:
        out = out.replace(".", "%2E")
    return out


def key_problem(key: _t.Any) -> _t.Optional[str]:
    """Why ``key`` cannot be a streaming key, or ``None`` when it can."""
    if not isinstance(key, str) or not key:
        return "the key is empty"
    if len(key) > MAX_KEY:
        return f"the key is longer than {MAX_KEY} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "the key contains control characters"
    if key_for_path(key) != key:
        # ``{key}`` file names would need encoding: reject until the spec layer encodes keys
        # itself (then only the checks above remain).
        return "the key contains '/', '\\', '%' or is only dots (keys may become file names)"
    return None
