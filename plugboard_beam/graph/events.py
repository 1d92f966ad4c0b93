"""Event edges: every producer of an event type reaches every consumer of it.

One edge per (producer, consumer) pair, carrying the types they share. Its ``lag`` follows
SEMANTICS (Events, Ticks): 0 when the producer is upstream of the consumer through unseeded
field connectors (the consumer sees the producer's tick-k events with its step k), else 1.
An event-driven component (no input fields) has no field upstreams, and its own ticks are not
its steps, so its events always lag.
"""

from __future__ import annotations

import dataclasses
import typing as _t

from plugboard_beam.graph.model import Edge, ModelGraph, Node

STOP = "system.stop"


@dataclasses.dataclass(frozen=True)
class NodeEvents:
    """The event types of one component: handled (user types) and emitted."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _field_upstream(graph: ModelGraph) -> dict[str, set[str]]:
    """For every node, the nodes that reach it through unseeded field connectors."""
    preds: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for e in graph.field_edges:
        if not graph.is_seeded(e):
            preds[e.target].append(e.source)
    ups: dict[str, set[str]] = {}
    for n in graph.nodes:
        seen: set[str] = set()
        todo = list(preds[n.name])
        while todo:
            v = todo.pop()
            if v not in seen:
                seen.add(v)
                todo.extend(preds[v])
        ups[n.name] = seen
    return ups


def with_events(graph: ModelGraph, events: _t.Mapping[str, NodeEvents]) -> ModelGraph:
    """``graph`` with its nodes' event types and its event edges (after the connectors).

    Every component handles ``system.stop``; ``events`` names what each node emits (with
    ``system.stop`` for those that may stop the model).
    """
    nodes = tuple(
        dataclasses.replace(n, input_events=events[n.name].inputs, output_events=events[n.name].outputs)
        if n.name in events else n
        for n in graph.nodes
    )
    fields_only = ModelGraph(nodes=nodes, edges=graph.field_edges, name=graph.name)
    ups = _field_upstream(fields_only)
    edges = list(fields_only.edges)
    next_id = max((e.id for e in edges), default=-1) + 1
    by_name = {n.name: n for n in nodes}
    for prod in nodes:
        if not prod.output_events:
            continue
        for cons in nodes:
            handled = set(cons.input_events) | {STOP}
            types = tuple(t for t in prod.output_events if t in handled)
            if not types:
                continue
            same_tick = prod.name in ups[cons.name] and not by_name[prod.name].is_event_driven
            edges.append(Edge(id=next_id, source=prod.name, source_field="", target=cons.name,
                              target_field="", line=cons.line, kind="event", types=types,
                              lag=0 if same_tick else 1))
            next_id += 1
    return ModelGraph(nodes=nodes, edges=tuple(edges), name=graph.name)


def schedule_levels(graph: ModelGraph) -> dict[str, int]:
    """The place of every node in the schedule: the length of the longest chain of unseeded
    field connectors that leads to it (sources are 0). Producers at the same level are at
    the same place in the schedule, and their events are delivered by component name
    (SEMANTICS, Events, Order)."""
    preds: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for e in graph.field_edges:
        if not graph.is_seeded(e):
            preds[e.target].append(e.source)
    level: dict[str, int] = {}
    for name in graph.schedule_order():  # topological once seeded edges are cut
        level[name] = max((level.get(p, -1) + 1 for p in preds[name]), default=0)
    return level


def producers(graph: ModelGraph, type_name: str) -> list[Node]:
    """Nodes that emit ``type_name``."""
    return [n for n in graph.nodes if type_name in n.output_events]
