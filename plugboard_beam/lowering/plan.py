"""Stage partitioning: which components run together in one Beam stage (one keyed DoFn).

* ``fused`` (default): the whole model is one stage. Every key runs its model in one keyed
  stateful DoFn; connector values never leave the worker, so nothing is serialised per message.
* ``component``: one stage per component, except that the components of a cycle share one
  stage (a batch pipeline cannot feed a PCollection back into itself). Values between stages
  travel as chunks of consecutive steps, grouped by key (a shuffle before each stage).
"""

from __future__ import annotations

from dataclasses import dataclass
import typing as _t

from plugboard_beam.graph.model import Edge, ModelGraph

PARTITIONS = ("fused", "component")


@dataclass(frozen=True)
class Stage:
    """A group of components run by one keyed stateful DoFn."""

    id: int
    members: tuple[str, ...]
    in_edges: tuple[Edge, ...]
    out_edges: tuple[Edge, ...]
    #: cycles inside this stage, each as the components on it (run in-process)
    loops: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        """A readable, unique transform name."""
        head = "+".join(self.members) if len(self.members) <= 3 else f"{self.members[0]}+{len(self.members) - 1} more"
        return f"S{self.id}[{head}]"


@dataclass(frozen=True)
class Plan:
    """The stages of a model, in topological order."""

    graph: ModelGraph
    partition: str
    stages: tuple[Stage, ...]
    #: components run outside the stages (Pub/Sub readers)
    external: tuple[str, ...] = ()
    #: edges routed through a feedback topic (streaming loops)
    cut: tuple[Edge, ...] = ()

    def stage_of(self, component: str) -> Stage:
        """The stage running ``component``."""
        return next(s for s in self.stages if component in s.members)

    def stage_lines(self) -> list[str]:
        """One line per stage: its components and the loops fused in it."""
        return [f"{st.name}: {', '.join(st.members)}"
                + "".join(f"; fused loop {' -> '.join((*lp, lp[0]))}" for lp in st.loops)
                for st in self.stages]

    def describe(self) -> str:
        """A human-readable plan (what ``process compile`` prints)."""
        g = self.graph
        n_events = len(g.event_edges)
        out = [f"model {g.name}: {len(g.nodes)} components, {len(g.edges) - n_events} connectors"
               + (f", {n_events} event edges" if n_events else ""),
               f"partition: {self.partition} -> {len(self.stages)} stage(s), each a keyed stateful DoFn "
               "(component state in Beam state, keyed by model instance)"]
        for st in self.stages:
            source = "Impulse per key (Create of the instances)" if not st.in_edges else (
                f"{len(st.in_edges)} connector PCollection(s), flattened and shuffled by key")
            out.append(f"  stage {st.name}")
            out.append(f"    components: {', '.join(st.members)}")
            out.append(f"    input: {source}")
            for loop in st.loops:
                out.append(f"    fused loop: {' -> '.join((*loop, loop[0]))} (runs in-process, seeded edge lags)")
            cut_ids = {e.id for e in self.cut}
            internal = [e for e in g.edges
                        if e.source in st.members and e.target in st.members and e.id not in cut_ids]
            if internal:
                out.append(f"    in-stage connectors: {len(internal)} (no serialisation)")
        for name in self.external:
            out.append(f"  Pub/Sub source {name}: ReadFromPubSub -> parse, order by seq, dedupe "
                       f"-> chunks into {', '.join(sorted({self.stage_of(e.target).name for e in g.out_edges(name)}))}"
                       "; malformed -> dead-letter topic")
        for e in self.cut:
            out.append(f"  feedback edge {e.label}: through a Pub/Sub feedback topic "
                       f"({self.stage_of(e.source).name} -> {self.stage_of(e.target).name})")
        cut_ids = {e.id for e in self.cut}
        if n_events:
            out.append("event edges (one batch of events per producer tick, possibly empty):")
            for e in g.event_edges:
                timing = "same tick (upstream through fields)" if e.lag == 0 else "one step later"
                where = ("through a Pub/Sub feedback topic" if e.id in cut_ids else
                         "in-stage" if self.stage_of(e.source) is self.stage_of(e.target) else
                         f"crosses stages {self.stage_of(e.source).name} -> {self.stage_of(e.target).name}")
                out.append(f"  {e.label}: {timing}; {where}")
        cross = [e for st in self.stages for e in st.out_edges if e.id not in cut_ids]
        if cross:
            out.append("PCollections between stages (chunks of consecutive steps per key):")
            for e in cross:
                out.append(f"  {e.label}: {self.stage_of(e.source).name} -> {self.stage_of(e.target).name} "
                           "(shuffle by key)")
        else:
            out.append("PCollections between stages: none (all connectors are in-stage)")
        out.append("side outputs: record (Parquet rows, with --record), errors (per-key failures)")
        return "\n".join(out)


def feedback_edges(graph: ModelGraph) -> tuple[Edge, ...]:
    """Where streaming cuts loops: edges into seeded inputs that close a cycle. An event edge
    from a component to itself (its own ``StopEvent``) stays in its stage: it never needs a topic."""
    sccs = [set(c) for c in graph.strongly_connected() if graph.is_cyclic(c)]
    return tuple(e for e in graph.edges
                 if graph.is_seeded(e) and not (e.kind == "event" and e.source == e.target)
                 and any(e.source in c and e.target in c for c in sccs))


def make_plan(
    graph: ModelGraph,
    partition: str = "fused",
    external: _t.Collection[str] = (),
    cut: _t.Collection[Edge] = (),
) -> Plan:
    """Partition ``graph`` into stages.

    ``external`` components are not run by any stage (Pub/Sub readers: their messages feed the
    stages directly); ``cut`` edges leave and re-enter through the runner (feedback topics), so
    the loops they close are no longer fused.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}: choose one of {', '.join(PARTITIONS)}")
    cut_ids = {e.id for e in cut}
    inner = ModelGraph(nodes=tuple(n for n in graph.nodes if n.name not in external),
                       edges=tuple(e for e in graph.edges if e.id not in cut_ids
                                   and e.source not in external and e.target not in external),
                       name=graph.name)
    groups: list[list[str]]
    if partition == "fused":
        groups = [[n.name for n in inner.nodes]] if inner.nodes else []
    else:
        groups = inner.strongly_connected()
    sccs = inner.strongly_connected()
    stages = []
    for i, members in enumerate(groups):
        mset = set(members)
        loops = tuple(tuple(e.source for e in inner.find_cycle(scc)) for scc in sccs
                      if set(scc) <= mset and inner.is_cyclic(scc))
        stages.append(Stage(
            id=i,
            members=tuple(members),
            in_edges=tuple(e for e in graph.edges
                           if e.target in mset and (e.source not in mset or e.id in cut_ids)),
            out_edges=tuple(e for e in graph.edges
                            if e.source in mset and (e.target not in mset or e.id in cut_ids)),
            loops=loops,
        ))
    return Plan(graph=graph, partition=partition, stages=tuple(stages),
                external=tuple(external), cut=tuple(cut))


def chunk_tag(edge: Edge) -> str:
    """The DoFn output tag carrying an edge's chunks."""
    return f"e{edge.id}"


def writer_tag(name: str) -> str:
    """The DoFn output tag carrying a writer's messages or rows (Pub/Sub writers, sink writers)."""
    return f"w_{name}"


__all__: _t.Sequence[str] = ["PARTITIONS", "Plan", "Stage", "chunk_tag", "make_plan", "writer_tag"]
