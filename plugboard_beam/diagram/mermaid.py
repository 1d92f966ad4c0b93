"""``MermaidDiagram``: a process as a Mermaid flowchart (plugboard 0.9.0's text, line for line)."""

from __future__ import annotations

import base64
import json
import typing as _t
import zlib

from plugboard_beam.diagram.diagram import Diagram
from plugboard_beam.events.event import type_name

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component

#: the Mermaid Live Editor
MERMAIDLIVE_URL = "https://mermaid.live/edit"


def _pako(text: str) -> str:
    """The Mermaid Live Editor's ``pako:`` state: its JSON, zlib-deflated, URL-safe base64
    without padding (as the editor writes it, so the link needs no escaping)."""
    state = json.dumps({"code": text, "mermaid": {"theme": "default"}}, separators=(",", ":"), ensure_ascii=False)
    packed = zlib.compress(state.encode(), 9)
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


class MermaidDiagram(Diagram):
    """A Mermaid ``flowchart LR``: one line per field connector (component ``-->``
    component), per event a component handles (event ``-.->`` component) and per event it
    emits (component ``-.->`` event); components are rounded nodes labelled with their class
    and name, events hexagons."""

    _header: str = "flowchart LR"
    _component_shape: str = "rounded"
    _event_shape: str = "hex"
    _component_connector: str = "-->"
    _event_connector: str = "-.->"

    def __init__(self, spec: str, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._spec = spec

    @classmethod
    def _node_from_component(cls, component: Component) -> str:
        return (f"{component.id}@{{ shape: {cls._component_shape}, label: "
                f"{type(component).__name__}<br>**{component.name}** }}")

    @classmethod
    def _node_from_event(cls, event: type) -> str:
        return f"{type_name(event)}@{{ shape: {cls._event_shape}, label: {event.__name__} }}"

    @property
    def diagram(self) -> str:
        """The flowchart text."""
        return self._spec

    @property
    def url(self) -> str:
        """The diagram on the Mermaid Live Editor (https://mermaid.live)."""
        return f"{MERMAIDLIVE_URL}#pako:{_pako(self._spec)}"

    @classmethod
    def from_process(cls, process: _t.Any, **kwargs: _t.Any) -> MermaidDiagram:
        """The diagram of ``process``."""
        lines = [f"{cls._node_from_component(s)} {cls._component_connector} {cls._node_from_component(t)}"
                 for s, t in cls._source_target_connections(process)]
        lines += [f"{cls._node_from_event(e)} {cls._event_connector} {cls._node_from_component(c)}"
                  for e, c in cls._event_inputs(process)]
        lines += [f"{cls._node_from_component(c)} {cls._event_connector} {cls._node_from_event(e)}"
                  for e, c in cls._event_outputs(process)]
        return cls(spec="\n  ".join((cls._header, *lines)), **kwargs)
