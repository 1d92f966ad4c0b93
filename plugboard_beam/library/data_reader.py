"""plugboard's module path of ``DataReader``."""

from plugboard_beam.library.data import DataReader, NoMoreDataException

__all__ = ["DataReader", "NoMoreDataException"]
