"""Events (plugboard 0.9.0 compatible): ``Event``, ``StopEvent``, ``SystemEvent``."""

from plugboard_beam.events.event import Event, StopEvent, SystemEvent

__all__ = ["Event", "StopEvent", "SystemEvent"]
