"""``Diagram``: the base class of diagrams of a process (plugboard 0.9.0's)."""

from __future__ import annotations

from abc import ABC, abstractmethod
import typing as _t

from plugboard_beam.events.event import SystemEvent

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component


class Diagram(ABC):
    """A diagram of a process: ``from_process`` builds it, ``diagram`` is its text (also
    ``str()``)."""

    def __init__(self, **kwargs: _t.Any) -> None:
        self.options = kwargs  # a diagram backend's own options (plugboard passes them through)

    @property
    @abstractmethod
    def diagram(self) -> str:
        """The diagram as text."""

    @classmethod
    @abstractmethod
    def from_process(cls, process: _t.Any, **kwargs: _t.Any) -> Diagram:
        """The diagram of ``process`` (a ``LocalProcess``: its ``components`` and ``connectors``)."""

    def __str__(self) -> str:
        return self.diagram

    @classmethod
    def _source_target_connections(cls, process: _t.Any) -> _t.Iterator[tuple[Component, Component]]:
        """(source, target) components of each field connector, in the process's order; event
        connectors (whose ends are not components) are left out."""
        for connector in process.connectors.values():
            spec = getattr(connector, "spec", None)
            if spec is None:
                continue
            source = process.components.get(spec.source.entity)
            target = process.components.get(spec.target.entity)
            if source is not None and target is not None:
                yield source, target

    @classmethod
    def _event_inputs(cls, process: _t.Any) -> _t.Iterator[tuple[type, Component]]:
        """(event class, component) for each event a component handles (not system events)."""
        for component in process.components.values():
            for event in component.io.input_events:
                if not (isinstance(event, type) and issubclass(event, SystemEvent)):
                    yield event, component

    @classmethod
    def _event_outputs(cls, process: _t.Any) -> _t.Iterator[tuple[type, Component]]:
        """(event class, component) for each event a component emits (not system events)."""
        for component in process.components.values():
            for event in component.io.output_events:
                if not (isinstance(event, type) and issubclass(event, SystemEvent)):
                    yield event, component
