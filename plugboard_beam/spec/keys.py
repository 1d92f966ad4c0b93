"""Keys are data, never paths.

A key (model instance) comes from a scenarios file or a message attribute. Wherever it is put
into a string argument (``{key}``), a file name, a topic or a resource name, it goes through
``key_for_path``: the result is always one harmless path segment, so a path built from a
template can never leave the template's folder, and distinct keys give distinct segments.
"""

from __future__ import annotations

import unicodedata

#: The key every run has when no scenarios are given.
DEFAULT_KEY = "default"

#: The longest key, in UTF-8 bytes once encoded (a file name is at most 255 bytes on most
#: file systems; this leaves room for the rest of a template such as ``out-{key}.csv``).
MAX_ENCODED_KEY_BYTES = 200

#: Characters percent-encoded wherever they appear (besides control characters).
_ALWAYS = frozenset("%/\\")


class InvalidKey(ValueError):
    """A key that cannot name a model instance (empty, or too long once encoded)."""


def _encode_char(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def _must_encode(ch: str) -> bool:
    return ch in _ALWAYS or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def key_for_path(key: str) -> str:
    """``key`` as one safe path segment: percent-encodes ``%``, ``/``, ``\\``, control and
    format characters, and a leading ``.`` (so ``.`` and ``..`` cannot result). Injective
    (``urllib.parse.unquote`` gives the key back). Raises ``InvalidKey`` for an empty key or
    one longer than ``MAX_ENCODED_KEY_BYTES`` once encoded."""
    if not isinstance(key, str):
        raise InvalidKey(f"a key is a string, got {type(key).__name__}")
    if key == "":
        raise InvalidKey("empty key")
    parts = [_encode_char(ch) if _must_encode(ch) else ch for ch in key]
    if key[0] == ".":
        parts[0] = "%2E"
    out = "".join(parts)
    size = len(out.encode("utf-8"))
    if size > MAX_ENCODED_KEY_BYTES:
        raise InvalidKey(
            f"key of {len(key)} characters is too long ({size} bytes once encoded for file names; "
            f"at most {MAX_ENCODED_KEY_BYTES})"
        )
    return out


def check_key(key: str) -> None:
    """Raise ``InvalidKey`` (with the reason) if ``key`` cannot name a model instance."""
    key_for_path(key)


def substitute_key(value: str, key: str) -> str:
    """``value`` with every ``{key}`` replaced by ``key_for_path(key)``."""
    if "{key}" not in value:
        return value
    return value.replace("{key}", key_for_path(key))
