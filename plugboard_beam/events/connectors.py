"""``EventConnectorBuilder`` (plugboard 0.9.0 compatible).

In plugboard, event connectors must be built and passed to the process. Here event edges are
derived from the components' ``input_events`` / ``output_events`` by the model graph, so the
connectors this builder returns are declarations only: ``LocalProcess`` accepts and skips them.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.events.event import StopEvent, type_name


class EventConnector:
    """One event type's fan-out from its producers to its consumers (a declaration)."""

    def __init__(self, event_type: str, producers: _t.Sequence[str], consumers: _t.Sequence[str]) -> None:
        self.event_type = event_type
        self.producers = tuple(producers)
        self.consumers = tuple(consumers)

    @property
    def id(self) -> str:
        """``events.<type>``."""
        return f"events.{self.event_type}"

    def __repr__(self) -> str:
        return f"EventConnector({self.event_type}: {list(self.producers)} -> {list(self.consumers)})"


class EventConnectorBuilder:
    """Builds one ``EventConnector`` per event type used by ``components``."""

    def __init__(self, connector_builder: _t.Any = None, **_kwargs: _t.Any) -> None:
        self.connector_builder = connector_builder

    def build(self, components: _t.Iterable[_t.Any]) -> dict[str, EventConnector]:
        """``{type: EventConnector}`` for every type some component emits or handles."""
        producers: dict[str, list[str]] = {}
        consumers: dict[str, list[str]] = {}
        for comp in components:
            for ev in comp.io.output_events:
                producers.setdefault(type_name(ev), []).append(comp.name)
            for ev in (*comp.io.input_events, StopEvent):
                consumers.setdefault(type_name(ev), []).append(comp.name)
        types = [t for t in (*producers, *consumers) if t in producers or t != StopEvent.type]
        return {t: EventConnector(t, producers.get(t, []), consumers.get(t, [])) for t in dict.fromkeys(types)}
