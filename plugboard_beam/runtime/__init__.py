"""The runtime: the step engine every lowering shares."""

from plugboard_beam.runtime.driver import Driver
from plugboard_beam.runtime.engine import Engine, InPort, OutPort

__all__ = ["Driver", "Engine", "InPort", "OutPort"]
