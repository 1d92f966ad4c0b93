"""Random identifiers (plugboard 0.9.0's ``plugboard.utils.random``)."""

import secrets
import string

RANDOM_CHAR_SET: str = string.ascii_letters + string.digits
RANDOM_CHAR_COUNT: int = 16


def gen_rand_str(chars: int = RANDOM_CHAR_COUNT) -> str:
    """A random string of ``chars`` characters from ``RANDOM_CHAR_SET`` (for unique names)."""
    return "".join(secrets.choice(RANDOM_CHAR_SET) for _ in range(chars))
