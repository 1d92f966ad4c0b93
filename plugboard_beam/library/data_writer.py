"""plugboard's module path of ``DataWriter``."""

from plugboard_beam.library.data import DataWriter

__all__ = ["DataWriter"]
