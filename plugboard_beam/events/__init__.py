"""Events (plugboard 0.9.0 compatible): ``Event``, ``StopEvent``, ``SystemEvent`` and
``EventConnectorBuilder``."""

from plugboard_beam.events.connectors import EventConnector, EventConnectorBuilder
from plugboard_beam.events.event import Event, StopEvent, SystemEvent
from plugboard_beam.events.handlers import EventHandlers

__all__ = ["Event", "EventConnector", "EventHandlers", "EventConnectorBuilder", "StopEvent", "SystemEvent"]
