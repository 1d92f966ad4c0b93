"""Checks of a process's topology on its ``process.dict()`` (plugboard 0.9.0's ``validate_*``).

Each takes the output of ``process.dict()`` (``components`` by name, each with its ``io``;
``connectors`` by id, each with its ``spec``) and returns a list of error messages, empty when
the process is fine. ``validate_process`` runs them all and returns every message at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import typing as _t

from plugboard_beam.schemas._graph import simple_cycles

ProcessDict = Mapping[str, _t.Any]


def _io(comp: Mapping[str, _t.Any]) -> Mapping[str, _t.Any]:
    io = comp.get("io") or {}
    return io if isinstance(io, Mapping) else {}


def _edges(process_dict: ProcessDict) -> list[tuple[str, str, str, str]]:
    """``(source, source field, target, target field)`` of every connector."""
    out = []
    for conn in (process_dict.get("connectors") or {}).values():
        spec = conn["spec"]
        out.append((spec["source"]["entity"], spec["source"]["descriptor"],
                    spec["target"]["entity"], spec["target"]["descriptor"]))
    return out


def validate_all_inputs_connected(process_dict: ProcessDict) -> list[str]:
    """Every input field of every component has a connector, or is filled by an input event
    (the component's ``io.event_field_coverage``)."""
    connected: dict[str, set[str]] = {}
    for _, _, target, field in _edges(process_dict):
        connected.setdefault(target, set()).add(field)
    errors = []
    for name, comp in (process_dict.get("components") or {}).items():
        io = _io(comp)
        missing = set(io.get("inputs") or ()) - connected.get(name, set())
        for fields in (io.get("event_field_coverage") or {}).values():
            missing -= set(fields)
        if missing:
            errors.append(f"Component '{name}' has unconnected inputs: {sorted(missing)}")
    return errors


def validate_input_events(process_dict: ProcessDict) -> list[str]:
    """Every input event of every component is an output event of some component."""
    comps = process_dict.get("components") or {}
    produced: set[str] = set()
    for comp in comps.values():
        produced.update(_io(comp).get("output_events") or ())
    errors = []
    for name, comp in comps.items():
        unmatched = set(_io(comp).get("input_events") or ()) - produced
        if unmatched:
            errors.append(f"Component '{name}' has input events with no producer: {sorted(unmatched)}")
    return errors


def validate_no_unresolved_cycles(process_dict: ProcessDict) -> list[str]:
    """Every loop of connectors between components passes through an input that has
    ``initial_values`` (otherwise none of the loop's components can take a first step)."""
    edges = [e for e in _edges(process_dict) if e[0] != e[2]]
    graph: dict[str, set[str]] = {}
    for source, _, target, _ in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    seeded = {name: set(_io(comp).get("initial_values") or {})
              for name, comp in (process_dict.get("components") or {}).items()}
    errors = []
    for cycle in simple_cycles(graph):
        hops = list(zip(cycle, cycle[1:] + cycle[:1], strict=False))
        resolved = any(field in seeded.get(target, set())
                       for source, _, target, field in edges if (source, target) in hops)
        if not resolved:
            path = " -> ".join([*cycle, cycle[0]])
            errors.append(f"Circular connection detected without initial values: {path}. "
                          "Set initial_values on a component input within the loop to resolve.")
    return errors


#: the checks ``validate_process`` runs, in order
VALIDATORS: tuple[Callable[[ProcessDict], list[str]], ...] = (
    validate_all_inputs_connected,
    validate_input_events,
    validate_no_unresolved_cycles,
)


def validate_process(process_dict: ProcessDict) -> list[str]:
    """Every check in ``VALIDATORS``; all their messages (empty: the process is valid)."""
    errors: list[str] = []
    for check in VALIDATORS:
        errors.extend(check(process_dict))
    return errors


__all__ = ["VALIDATORS", "validate_all_inputs_connected", "validate_input_events",
           "validate_no_unresolved_cycles", "validate_process"]
