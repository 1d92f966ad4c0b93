"""Mermaid diagrams of a model (``flowchart LR``, plugboard's style; loops and event edges
drawn dotted)."""

from __future__ import annotations

import re

from plugboard_beam.graph.model import ModelGraph


def _node_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def mermaid(graph: ModelGraph) -> str:
    """The model as a Mermaid flowchart. Seeded edges (those that close a loop) are dotted
    and labelled with their seed values; event edges are dotted and labelled with their
    event types (``event: alarm``)."""
    lines = ["flowchart LR"]
    for node in graph.nodes:
        cls = node.type_path.rsplit(".", 1)[-1]
        lines.append(f'  {_node_id(node.name)}@{{ shape: rounded, label: "{cls}<br>**{node.name}**" }}')
    back = {e.id for e in graph.edges
            if e.kind == "field" and graph.is_seeded(e) and _closes_loop(graph, e.source, e.target)}
    for e in graph.edges:
        if e.kind == "event":
            types = ", ".join(e.types)
            lines.append(f'  {_node_id(e.source)} -. "event: {types}" .-> {_node_id(e.target)}')
            continue
        label = e.source_field if e.source_field == e.target_field else f"{e.source_field} → {e.target_field}"
        src, tgt = _node_id(e.source), _node_id(e.target)
        if e.id in back:
            seed = list(graph.node(e.target).initial_values[e.target_field])
            lines.append(f'  {src} -. "{label} (seed {seed})" .-> {tgt}')
        else:
            lines.append(f'  {src} -- "{label}" --> {tgt}')
    return "\n".join(lines) + "\n"


def _closes_loop(graph: ModelGraph, source: str, target: str) -> bool:
    """Whether ``target`` reaches ``source`` (so source -> target is part of a cycle)."""
    seen, todo = {target}, [target]
    while todo:
        v = todo.pop()
        if v == source:
            return True
        for w in graph.successors(v):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False
