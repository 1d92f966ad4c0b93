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

    def stage_of(self, component: str) -> Stage:
        """The stage running ``component``."""
        return next(s for s in self.stages if component in s.members)

    def describe(self) -> str:
        """A human-readable plan (what ``process compile`` prints)."""
        g = self.graph
        out = [f"model {g.name}: {len(g.nodes)} components, {len(g.edges)} connectors",
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
            internal = [e for e in g.edges if e.source in st.members and e.target in st.members]
            if internal:
                out.append(f"    in-stage connectors: {len(internal)} (no serialisation)")
        cross = [e for st in self.stages for e in st.out_edges]
        if cross:
            out.append("PCollections between stages (chunks of consecutive steps per key):")
            for e in cross:
                out.append(f"  {e.label}: {self.stage_of(e.source).name} -> {self.stage_of(e.target).name} "
                           "(shuffle by key)")
        else:
            out.append("PCollections between stages: none (all connectors are in-stage)")
        out.append("side outputs: record (Parquet rows, with --record), errors (per-key failures)")
        return "\n".join(out)


def make_plan(graph: ModelGraph, partition: str = "fused") -> Plan:
    """Partition ``graph`` into stages."""
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}: choose one of {', '.join(PARTITIONS)}")
    groups: list[list[str]]
    if partition == "fused":
        groups = [[n.name for n in graph.nodes]]
    else:
        groups = graph.strongly_connected()
    sccs = graph.strongly_connected()
    stages = []
    for i, members in enumerate(groups):
        mset = set(members)
        loops = tuple(tuple(e.source for e in graph.find_cycle(scc)) for scc in sccs
                      if set(scc) <= mset and graph.is_cyclic(scc))
        stages.append(Stage(
            id=i,
            members=tuple(members),
            in_edges=tuple(e for e in graph.edges if e.target in mset and e.source not in mset),
            out_edges=tuple(e for e in graph.edges if e.source in mset and e.target not in mset),
            loops=loops,
        ))
    return Plan(graph=graph, partition=partition, stages=tuple(stages))


def chunk_tag(edge: Edge) -> str:
    """The DoFn output tag carrying an edge's chunks."""
    return f"e{edge.id}"


__all__: _t.Sequence[str] = ["PARTITIONS", "Plan", "Stage", "chunk_tag", "make_plan"]
