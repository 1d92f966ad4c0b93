"""The ``plugboard-beam`` command line."""

from plugboard_beam.cli.main import entry as main

#: plugboard's name for its command-line application (``plugboard.cli.app``): calling it runs
#: the command line (here a click group's entry point, not a typer app)
app = main

__all__ = ["app", "main"]
