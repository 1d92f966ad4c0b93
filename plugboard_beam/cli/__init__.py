"""The ``plugboard-beam`` command line."""

from plugboard_beam.cli.main import entry as main

__all__ = ["main"]
