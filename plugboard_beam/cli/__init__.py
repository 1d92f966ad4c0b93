"""The ``plugboard-beam`` command line."""

from plugboard_beam.cli.main import main

__all__ = ["main"]
