"""``simple_cycles``: every elementary cycle of a directed graph (plugboard 0.9.0's name and
signature; networkx does the work, Johnson's algorithm)."""

from __future__ import annotations

from collections.abc import Iterator
import typing as _t

if _t.TYPE_CHECKING:
    import networkx as nx


def simple_cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Each elementary cycle of ``graph`` (vertex -> its successors) as a list of vertices; a
    self-loop is the cycle ``[v]``. (networkx is imported here: its import is ~0.1 s, a quarter
    of the CLI's start, and only a model with loops asks for its cycles.)"""
    import networkx as nx

    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(graph)
    g.add_edges_from((v, w) for v, nbrs in graph.items() for w in nbrs)
    for cycle in nx.simple_cycles(g):
        yield list(cycle)


__all__ = ["simple_cycles"]
