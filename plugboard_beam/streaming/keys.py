"""Keys are data: which keys read from a topic a streaming run accepts.

A key names a model instance. It travels in message attributes (Pub/Sub limits an attribute
value to 1024 bytes of UTF-8), in log lines and failure rows, and, through ``{key}`` in string
arguments, into file names, where ``plugboard_beam.spec.keys.key_for_path`` encodes it as one
path segment. A streaming key must also be usable verbatim (a file name and the key on the
output messages agree), so a key that the encoder would change is rejected here: its message goes
to the dead-letter topic with the reason.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.spec.keys import InvalidKey, key_for_path

#: longest key accepted from a message (characters)
MAX_KEY = 256


def key_problem(key: _t.Any) -> _t.Optional[str]:
    """Why ``key`` cannot be a streaming key, or ``None`` when it can."""
    if not isinstance(key, str) or not key:
        return "the key is empty"
    if len(key) > MAX_KEY:
        return f"the key is longer than {MAX_KEY} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "the key contains control characters"
    try:
        encoded = key_for_path(key)
    except InvalidKey as exc:
        return f"the key cannot name a model instance: {exc}"
    if encoded != key:
        return "the key contains '/', '\\', '%' or format characters, or starts with a dot (keys may become file names)"
    return None
