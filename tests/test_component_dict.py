"""No engine touches a component's ``__dict__`` (issue 19, per step).

In CPython 3.12 an object's attributes live in inline slots until something reads its
``__dict__``; from then on every attribute read and write on it goes through a real dict and
costs 3-5x more, for the rest of the object's life. A user's ``step()`` does little besides
reading and writing ``self.<field>``, so one ``comp.__dict__`` in the engine made every step
~0.6 us slower (of ~1.7 us). These tests run components through each engine path and check
that their ``__dict__`` was never made."""

from __future__ import annotations

import asyncio
import gc
import typing as _t

import pytest

from components import Add, Counter, Double, Sink, SyncCounter
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.component.component import RAW, has_value, raw_method
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.process import LocalProcess
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import finish
from plugboard_beam.schemas import ConnectorSpec
from plugboard_beam.spec.load import graph_from_components


def dict_made(obj: object) -> bool:
    """Whether ``obj.__dict__`` has been made: until then the garbage collector's view of the
    object holds its attribute values themselves; after, only the dict (CPython 3.12)."""
    name = _t.cast(_t.Any, obj).name
    return not any(r is name for r in gc.get_referents(obj))


class Plain:
    def __init__(self) -> None:
        self.name = "plain"
        self.other = 1


def test_the_check_tells_a_made_dict_from_none() -> None:
    obj = Plain()
    assert not dict_made(obj)
    assert obj.__dict__["other"] == 1
    assert dict_made(obj)


class Summed(Component):
    """Reads and writes its fields through ``self`` only: ``y = a + b + 1`` of ``x = (a, b)``."""

    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self.y = self.x[0] + self.x[1] + 1


def chain() -> tuple[list[Component], list[tuple[str, str]]]:
    return ([Counter(name="a", n=50), SyncCounter(name="b", n=50), Double(name="d"), Add(name="add"),
             Summed(name="e"), Sink(name="s")],
            [("a.v", "d.x"), ("d.y", "add.a"), ("b.v", "add.b"), ("add.s", "e.x"), ("e.y", "s.x")])


@pytest.mark.parametrize("record", [False, True], ids=["prepared-steps", "general-step"])
def test_the_engine_leaves_component_dicts_alone(record: bool) -> None:
    components, wires = chain()
    assert not any(dict_made(c) for c in components)  # construction neither
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    seen: list[_t.Any] = []
    engine = Engine(graph, {c.name: c for c in components}, key="k1",
                    recorder=(lambda edge, step, value: seen.append(value)) if record else None)
    engine.init()
    assert engine.run() is True
    finish(engine)
    sink = _t.cast(Sink, components[-1])
    assert sink.rows == [2 * i + i + 1 for i in range(50)]  # the run did run
    assert [str(c.status) for c in components] == ["completed"] * 6
    assert [c.name for c in components if dict_made(c)] == []
    assert bool(seen) is record


def test_a_local_process_leaves_component_dicts_alone() -> None:
    components, wires = chain()
    process = LocalProcess(components=components,
                           connectors=[AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires])

    async def go() -> None:
        async with process:
            await process.run()

    asyncio.run(go())
    assert len(_t.cast(Sink, components[-1]).rows) == 50
    assert [c.name for c in components if dict_made(c)] == []


def test_has_value_and_raw_method_read_no_dict() -> None:
    comp = Summed(name="e")
    assert not has_value(comp, "x") and comp.x is None  # unset public fields read as None
    comp.x = (0, 0)
    assert has_value(comp, "x")
    step = raw_method(comp, "step")
    assert getattr(step, "__func__", None) is getattr(Summed.step, RAW)
    assert not dict_made(comp)

    def mine() -> None:
        pass

    comp.step = mine  # type: ignore[method-assign]  # set on the instance: that one is used
    assert raw_method(comp, "step") is mine


class Defaulted(Component):
    """An output with a class-level default: sent until the step sets its own (plugboard reads
    outputs with ``getattr(self, field, None)``, so it sends the class's value too)."""

    io = IO(inputs=["x"], outputs=["y"])
    y = -1

    async def step(self) -> None:
        if self.x % 2:
            self.y = self.x


@pytest.mark.parametrize("record", [False, True], ids=["prepared-steps", "general-step"])
def test_an_output_read_from_the_class_is_sent_on_both_paths(record: bool) -> None:
    components: list[Component] = [Counter(name="a", n=6), Defaulted(name="d"), Sink(name="s")]
    graph = graph_from_components(components, [ConnectorSpec(source="a.v", target="d.x"),
                                               ConnectorSpec(source="d.y", target="s.x")])
    engine = Engine(graph, {c.name: c for c in components}, key="k1",
                    recorder=(lambda edge, step, value: None) if record else None)
    engine.init()
    assert engine.run() is True
    finish(engine)
    assert _t.cast(Sink, components[-1]).rows == [-1, 1, 1, 3, 3, 5]
