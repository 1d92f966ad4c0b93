"""Events (plugboard 0.9.0 compatible): ``Event``, ``StopEvent``, ``SystemEvent`` and
``EventConnectorBuilder``."""

from plugboard_beam.events.connectors import EventConnector, EventConnectorBuilder
from plugboard_beam.events.event import Event, StopEvent, SystemEvent

__all__ = ["Event", "EventConnector", "EventConnectorBuilder", "StopEvent", "SystemEvent"]
