"""Random identifiers (plugboard 0.9.0's ``plugboard.utils.random``)."""

import os
import string

RANDOM_CHAR_SET: str = string.ascii_letters + string.digits
RANDOM_CHAR_COUNT: int = 16
#: byte -> character, evenly: bytes 0..247 map 4 times onto the 62 characters, 248..255 are dropped
_EVEN = 256 - 256 % len(RANDOM_CHAR_SET)
_TABLE = bytes(ord(RANDOM_CHAR_SET[b % len(RANDOM_CHAR_SET)]) for b in range(256))
_DROP = bytes(range(_EVEN, 256))


def gen_rand_str(chars: int = RANDOM_CHAR_COUNT) -> str:
    """A random string of ``chars`` characters from ``RANDOM_CHAR_SET`` (for unique names),
    drawn from the operating system's random source, evenly over the characters."""
    out = b""
    while len(out) < chars:
        out += os.urandom(chars + 8).translate(_TABLE, _DROP)
    return out[:chars].decode("ascii")
