"""Validation of a model's events, and its event edges (a phase of ``spec.load``).

Problems reported (each with the component's YAML line):

* an ``input_events`` type that no component of the model emits (its handler would never run);
* a handler (``@E.handler``) for a type that is not in the component's ``input_events``;
* one event type name used by two different classes;
* an event-driven component (no input fields) whose outputs reach, through unseeded field
  connectors, a component that emits events to it: it could never take a first step.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.events.event import StopEvent, class_path
from plugboard_beam.graph.events import NodeEvents, with_events
from plugboard_beam.graph.model import ModelGraph
from plugboard_beam.spec.errors import ModelError, Problem

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import Context


def event_problems(graph: ModelGraph, classes: _t.Mapping[str, type[Component]]) -> list[Problem]:
    """Everything wrong with the events of a model whose components have these classes."""
    problems: list[Problem] = []
    emitted: set[str] = set()
    owners: dict[str, dict[str, str]] = {}  # type name -> class path -> first component
    for node in graph.nodes:
        cls = classes.get(node.name)
        if cls is None:
            continue
        eio = cls.event_io()
        emitted.update(eio.output_types)
        for ev in (*eio.inputs, *eio.outputs):
            owners.setdefault(ev.type, {}).setdefault(class_path(ev), node.name)
    for node in graph.nodes:
        cls = classes.get(node.name)
        if cls is None:
            continue
        eio = cls.event_io()
        elem = f"component '{node.name}' ({cls.__name__})"
        for t in eio.input_types:
            if t not in emitted:
                problems.append(Problem(
                    f"input event {t!r} is not emitted by any component of the model (no component "
                    "lists it in output_events), so its handler would never run", node.line, elem))
        accepted = set(eio.input_types) | {StopEvent.type}
        for t, method in eio.handlers.items():
            if t not in accepted:
                problems.append(Problem(
                    f"handler {method}() is for event type {t!r}, which is not in input_events "
                    f"{sorted(accepted - {StopEvent.type})}: add the event class to IO(input_events=[...])",
                    node.line, elem))
    for t, paths in owners.items():
        if len(paths) > 1:
            which = ", ".join(f"{p} (used by '{c}')" for p, c in paths.items())
            first = graph.node(next(iter(paths.values())))
            problems.append(Problem(
                f"event type name {t!r} is used by {len(paths)} different classes: {which}; "
                "give each class its own type", first.line, f"event type {t!r}"))
    return problems


def _starved_loops(graph: ModelGraph) -> list[Problem]:
    """Event-driven components that wait on events from their own field downstream."""
    problems: list[Problem] = []
    field_graph = ModelGraph(nodes=graph.nodes, edges=graph.field_edges, name=graph.name)
    for node in graph.nodes:
        if not node.is_event_driven or not node.outputs:
            continue
        reach: set[str] = set()
        todo = [node.name]
        while todo:
            for nxt in field_graph.successors(todo.pop(), skip_seeded=True):
                if nxt not in reach:
                    reach.add(nxt)
                    todo.append(nxt)
        for other in graph.nodes:
            if other.name in reach and set(other.output_events) & set(node.input_events):
                problems.append(Problem(
                    f"event-driven component '{node.name}' feeds '{other.name}' through connectors and "
                    f"'{other.name}' emits the events '{node.name}' steps on, so neither can take a first "
                    f"step; give an input on the path from '{node.name}' to '{other.name}' initial_values",
                    node.line, f"component '{node.name}'"))
    return problems


def node_events(classes: _t.Mapping[str, type[Component]]) -> dict[str, NodeEvents]:
    """Event type names per component."""
    out: dict[str, NodeEvents] = {}
    for name, cls in classes.items():
        eio = cls.event_io()
        out[name] = NodeEvents(inputs=eio.input_types, outputs=eio.output_types)
    return out


def add_events(graph: ModelGraph, classes: _t.Mapping[str, type[Component]]) -> ModelGraph:
    """``graph`` with event edges; raises ``ModelError`` if the events are inconsistent."""
    problems = event_problems(graph, classes)
    if not problems:
        graph = with_events(graph, node_events(classes))
        problems = _starved_loops(graph)
    if problems:
        raise ModelError(problems, graph.name)
    return graph


def check_events(ctx: Context) -> None:
    """Load phase: report event problems, else add the event edges to ``ctx.graph``."""
    graph = _t.cast(ModelGraph, ctx.graph)
    problems = event_problems(graph, ctx.classes)
    if problems:
        ctx.problems.extend(problems)
        return
    ctx.graph = with_events(graph, node_events(ctx.classes))
    ctx.problems.extend(_starved_loops(ctx.graph))
