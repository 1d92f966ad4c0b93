"""The model graph: small frozen dataclasses with explicit ids, built from a validated spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
import typing as _t


@dataclass(frozen=True)
class Node:
    """A component of the model."""

    name: str
    type_path: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    #: Seeds of input fields, in order: ``{field: (v0, v1, ...)}``.
    initial_values: _t.Mapping[str, tuple[_t.Any, ...]] = field(default_factory=dict)
    line: _t.Optional[int] = None
    #: event type names it handles (``input_events``, without the built-in ``system.stop``)
    input_events: tuple[str, ...] = ()
    #: event type names it may emit (``output_events``, plus ``system.stop`` if it may stop)
    output_events: tuple[str, ...] = ()
    #: time limit in seconds of each ``init``/``step``/handler/``destroy`` call (None: none)
    step_timeout: _t.Optional[float] = None

    @property
    def is_source(self) -> bool:
        """A component without inputs steps until it closes itself."""
        return not self.inputs

    @property
    def is_event_driven(self) -> bool:
        """No input fields but handles events: it steps on ticks that delivered events."""
        return not self.inputs and bool(self.input_events)


@dataclass(frozen=True)
class Edge:
    """A connector, or an event edge. ``id`` is its position in the spec (it orders fan-in);
    event edges come after the connectors.

    An event edge (``kind == "event"``) carries, for every tick of ``source``, the batch
    (a list, possibly empty) of its events whose type is in ``types``. ``lag`` is 0 when
    ``source`` is upstream of ``target`` through unseeded field connectors (same tick),
    else 1 (the batch is seen one step later, like a seed of one empty batch).
    """

    id: int
    source: str
    source_field: str
    target: str
    target_field: str
    line: _t.Optional[int] = None
    kind: str = "field"
    types: tuple[str, ...] = ()
    lag: int = 0

    @property
    def is_event(self) -> bool:
        """An event edge (not a field connector)."""
        return self.kind == "event"

    @property
    def label(self) -> str:
        """``source.field -> target.field`` (``source =[types]=> target`` for events)."""
        if self.kind == "event":
            return f"{self.source} ={'|'.join(self.types)}=> {self.target}"
        return f"{self.source}.{self.source_field} -> {self.target}.{self.target_field}"


@dataclass(frozen=True)
class ModelGraph:
    """Nodes and edges of a model, in spec order."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    name: str = "model"

    @cached_property
    def _index(self) -> tuple[dict[str, Node], dict[str, list[Edge]], dict[str, list[Edge]]]:
        nodes = {n.name: n for n in self.nodes}
        ins: dict[str, list[Edge]] = {n.name: [] for n in self.nodes}
        outs: dict[str, list[Edge]] = {n.name: [] for n in self.nodes}
        for e in self.edges:
            ins.setdefault(e.target, []).append(e)
            outs.setdefault(e.source, []).append(e)
        return nodes, ins, outs

    @cached_property
    def memo(self) -> dict[_t.Any, _t.Any]:
        """What other layers derive from this (frozen) graph alone, computed once per graph
        (the engine's wiring, shared by every key's engine); not pickled."""
        return {}

    def __getstate__(self) -> dict[str, _t.Any]:
        # the index and the memo are rebuilt
        return {k: v for k, v in self.__dict__.items() if k not in ("_index", "memo")}

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return self._index[0][name]

    def in_edges(self, name: str, field_name: _t.Optional[str] = None) -> list[Edge]:
        """Edges into a node (or one of its fields), in spec order."""
        return [e for e in self._index[1].get(name, ()) if field_name in (None, e.target_field)]

    def out_edges(self, name: str, field_name: _t.Optional[str] = None) -> list[Edge]:
        """Edges out of a node (or one of its fields), in spec order."""
        return [e for e in self._index[2].get(name, ()) if field_name in (None, e.source_field)]

    def is_seeded(self, edge: Edge) -> bool:
        """Whether the edge's target field has initial values (lets a loop start); an event
        edge is seeded when it lags."""
        if edge.kind == "event":
            return edge.lag > 0
        return bool(self.node(edge.target).initial_values.get(edge.target_field))

    @property
    def field_edges(self) -> tuple[Edge, ...]:
        """The connectors (no event edges)."""
        return tuple(e for e in self.edges if e.kind == "field")

    @property
    def event_edges(self) -> tuple[Edge, ...]:
        """The event edges."""
        return tuple(e for e in self.edges if e.kind == "event")

    def successors(self, name: str, skip_seeded: bool = False) -> list[str]:
        """Names of the nodes fed by ``name``."""
        out: list[str] = []
        for e in self.out_edges(name):
            if skip_seeded and self.is_seeded(e):
                continue
            if e.target not in out:
                out.append(e.target)
        return out

    def strongly_connected(self, skip_seeded: bool = False) -> list[list[str]]:
        """Strongly connected components (Tarjan), each in spec order, in topological order."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        result: list[list[str]] = []
        counter = [0]
        order = {n.name: i for i, n in enumerate(self.nodes)}

        def visit(v: str) -> None:
            # Iterative Tarjan: models can be large, recursion would hit Python's limit.
            work = [(v, iter(self.successors(v, skip_seeded)))]
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on_stack.add(v)
            while work:
                node, it = work[-1]
                advanced = False
                for w in it:
                    if w not in index:
                        index[w] = low[w] = counter[0]
                        counter[0] += 1
                        stack.append(w)
                        on_stack.add(w)
                        work.append((w, iter(self.successors(w, skip_seeded))))
                        advanced = True
                        break
                    if w in on_stack:
                        low[node] = min(low[node], index[w])
                if advanced:
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp: list[str] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    result.append(sorted(comp, key=order.__getitem__))

        for n in self.nodes:
            if n.name not in index:
                visit(n.name)
        result.reverse()  # Tarjan emits sinks first
        return result

    def is_cyclic(self, names: _t.Collection[str], skip_seeded: bool = False) -> bool:
        """Whether this group of nodes (an SCC) forms a cycle."""
        if len(names) > 1:
            return True
        (only,) = names
        return only in self.successors(only, skip_seeded)

    def find_cycle(self, names: _t.Collection[str], skip_seeded: bool = False) -> list[Edge]:
        """One cycle (as edges) inside a strongly connected group of nodes."""
        group = set(names)
        start = next(n.name for n in self.nodes if n.name in group)
        # BFS back to start gives a shortest cycle through ``start``.
        prev: dict[str, Edge] = {}
        frontier = [start]
        seen = {start}
        while frontier:
            nxt: list[str] = []
            for v in frontier:
                for e in self.out_edges(v):
                    if e.target not in group or (skip_seeded and self.is_seeded(e)):
                        continue
                    if e.target == start:
                        path = [e]
                        while path[0].source != start:
                            path.insert(0, prev[path[0].source])
                        return path
                    if e.target not in seen:
                        seen.add(e.target)
                        prev[e.target] = e
                        nxt.append(e.target)
            frontier = nxt
        return []

    def schedule_order(self) -> list[str]:
        """A deterministic order to visit nodes in: topological once seeded edges are cut."""
        return list(self._schedule)

    @cached_property
    def _schedule(self) -> tuple[str, ...]:
        # computed once per graph: every key's engine asks (the graph is frozen)
        return tuple(name for scc in self.strongly_connected(skip_seeded=True) for name in scc)
