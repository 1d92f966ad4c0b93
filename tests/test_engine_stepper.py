"""The engine's prepared round functions (``Engine._stepper``, issue 19): a runner without a
recorder, step time limit, events, own ``run()`` or property fields steps through a function
generated for its shape; every other case goes through ``Engine._step``. Each model here runs
both ways (a recorder attached sends every runner through ``_step``) and must give the same
values, steps, statuses and failure."""

from __future__ import annotations

import typing as _t

import pytest

from components import Add, Boom, Counter, Double, Pass, SetThenClose, Sink, Sink2, Sleepy, SyncCounter
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.exceptions import IOStreamClosedError, StepError
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import finish
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.schemas import ConnectorSpec
from plugboard_beam.spec.load import graph_from_components


class QuitAt(Component):
    """Passes ``x`` on; its step raises ``IOStreamClosedError`` when ``x`` is ``at`` (it ends)."""

    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, at: int, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._at = at

    async def step(self) -> None:
        if self.x == self._at:
            raise IOStreamClosedError("enough")
        self.y = self.x


class Split(Component):
    """Two outputs: ``x`` and ``-x``."""

    io = IO(inputs=["x"], outputs=["lo", "hi"])

    async def step(self) -> None:
        self.lo, self.hi = self.x, -self.x


class SourceQuits(Component):
    """A source whose plain ``def`` step raises ``IOStreamClosedError`` after ``n`` values."""

    io = IO(outputs=["v"])

    def __init__(self, n: int, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._n, self._i = n, 0

    def step(self) -> None:  # type: ignore[override]
        if self._i >= self._n:
            raise IOStreamClosedError("done")
        self.v = self._i
        self._i += 1


class Prop(Component):
    """Its output is a property (read and written through getattr/setattr)."""

    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._y: _t.Any = None

    @property
    def y(self) -> _t.Any:
        return ("via property", self._y)

    @y.setter
    def y(self, value: _t.Any) -> None:
        self._y = value

    async def step(self) -> None:
        self.y = self.x


class OwnRun(Component):
    """Its own ``run()``: steps until its input ends."""

    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self.y = 10 * self.x

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except IOStreamClosedError:
                break


class OddNames(Component):
    """Field names a round function cannot write as attributes (keywords): its round function
    binds them as values."""

    io = IO(inputs=["class"], outputs=["None"])

    async def step(self) -> None:
        setattr(self, "None", 3 * getattr(self, "class"))


class Strict(Component):
    """A ``__getattr__`` that raises for every unknown name: its output, never set, still reads
    as ``None`` (``getattr(c, field, None)``, as plugboard reads outputs)."""

    io = IO(inputs=["x"], outputs=["y", "never"])

    def __getattr__(self, key: str) -> _t.Any:
        raise AttributeError(key)

    async def step(self) -> None:
        self.y = self.x


Case = tuple[list[Component], list[tuple[str, str]]]


def chain_fan_out_fan_in() -> Case:
    return ([Counter(name="a", n=300, start=1), Counter(name="b", n=250), Double(name="d"),
             Add(name="add", initial_values={"b": [-1, -2]}), Sink(name="s1"), Sink2(name="s2"),
             Split(name="sp"), Sink2(name="s3")],
            [("a.v", "d.x"), ("d.y", "add.a"), ("b.v", "add.b"), ("add.s", "s1.x"), ("add.s", "s2.a"),
             ("a.v", "s2.b"), ("b.v", "s2.b"), ("a.v", "sp.x"), ("sp.hi", "s3.a"), ("sp.lo", "s3.b")])


def plain_def_source() -> Case:
    return [SyncCounter(name="a", n=150), Pass(name="p"), Sink(name="s")], [("a.v", "p.x"), ("p.y", "s.x")]


def closing_step_sends_nothing() -> Case:
    return [SetThenClose(name="a", n=70), Sink(name="s")], [("a.v", "s.x")]


def step_raises_io_closed() -> Case:
    return ([Counter(name="a", n=200), QuitAt(name="q", at=77), Sink(name="s")],
            [("a.v", "q.x"), ("q.y", "s.x")])


def source_raises_io_closed() -> Case:
    return [SourceQuits(name="a", n=90), Sink(name="s")], [("a.v", "s.x")]


def step_really_awaits() -> Case:
    return [Counter(name="a", n=5), Sleepy(name="z"), Sink(name="s")], [("a.v", "z.x"), ("z.y", "s.x")]


def loop_with_seeds() -> Case:
    return ([Counter(name="a", n=100), Add(name="c", initial_values={"b": [0, 0]}), Pass(name="p"),
             Sink(name="s")],
            [("a.v", "c.a"), ("c.s", "p.x"), ("p.y", "c.b"), ("c.s", "s.x")])


def step_fails() -> Case:
    return [Counter(name="a", n=100), Boom(name="bomb"), Sink(name="s")], [("a.v", "bomb.x"), ("bomb.y", "s.x")]


def property_field() -> Case:
    return [Counter(name="a", n=80), Prop(name="p"), Sink(name="s")], [("a.v", "p.x"), ("p.y", "s.x")]


def own_run() -> Case:
    return [Counter(name="a", n=80), OwnRun(name="o"), Sink(name="s")], [("a.v", "o.x"), ("o.y", "s.x")]


def odd_names() -> Case:
    return ([Counter(name="a", n=60), OddNames(name="o"), Sink(name="s")],
            [("a.v", "o.class"), ("o.None", "s.x")])


def strict_getattr() -> Case:
    return ([Counter(name="a", n=40), Strict(name="t"), Sink(name="s"), Sink(name="n")],
            [("a.v", "t.x"), ("t.y", "s.x"), ("t.never", "n.x")])


CASES: dict[str, tuple[_t.Callable[[], Case], frozenset[str]]] = {
    # name: (model, the components that step through ``_step`` even without a recorder)
    "chain_fan_out_fan_in": (chain_fan_out_fan_in, frozenset()),
    "plain_def_source": (plain_def_source, frozenset()),
    "closing_step_sends_nothing": (closing_step_sends_nothing, frozenset()),
    "step_raises_io_closed": (step_raises_io_closed, frozenset()),
    "source_raises_io_closed": (source_raises_io_closed, frozenset()),
    "step_really_awaits": (step_really_awaits, frozenset()),
    "loop_with_seeds": (loop_with_seeds, frozenset()),
    "step_fails": (step_fails, frozenset()),
    "property_field": (property_field, frozenset({"p"})),
    "own_run": (own_run, frozenset({"o"})),
    "odd_names": (odd_names, frozenset()),
    "strict_getattr": (strict_getattr, frozenset()),
}


def logged(fn: _t.Callable[[], _t.Any], name: str, order: list[str]) -> _t.Callable[[], _t.Any]:
    def step() -> _t.Any:
        order.append(name)
        return fn()
    return step


def outcome(make: _t.Callable[[], Case], *, record: bool, limit: _t.Optional[float] = None,
            burst: int = 8) -> tuple[dict[str, _t.Any], Engine]:
    """Run the model to its end; what it produced (per component: steps, status, inputs seen)."""
    components, wires = make()
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    records: list[tuple[int, int, _t.Any]] = []
    engine = Engine(graph, {c.name: c for c in components}, key="k1", burst=burst,
                    recorder=(lambda edge, step, value: records.append((edge.id, step, value))) if record else None)
    order: list[str] = []  # the components' steps in the order the engine made them
    for runner in engine.runners.values():
        if limit is not None:
            runner.limit = limit  # as a node's step_timeout sets it
        runner.step_fn = logged(runner.step_fn, runner.name, order)
    error: _t.Optional[tuple[str, str, int, str]] = None
    finished: _t.Optional[bool] = None
    engine.init()
    try:
        finished = engine.run()
    except StepError as err:
        error = (err.component, err.key, err.step, str(err))
        finish(engine, err)
    ended = {c.name: str(c.status) for c in components}  # before the failure protocol's end
    finish(engine)
    result = {
        "finished": finished,
        "ended": ended,
        "steps": engine.steps(),
        "status": {c.name: str(c.status) for c in components},
        "rows": {c.name: list(c.rows) for c in components if "rows" in c.__dict__},
        "error": error,
        "order": order,
    }
    return result, engine


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepared_steps_match_the_general_step(case: str) -> None:
    make, general = CASES[case]
    fast, engine = outcome(make, record=False)
    slow, slow_engine = outcome(make, record=True)
    assert fast == slow
    assert any(rows for rows in fast["rows"].values())
    assert fast["finished"] is (None if case == "step_fails" else True)
    # which runners had a prepared function: all but the general ones (a recorder changes
    # which one is used, not which one is prepared)
    for eng in (engine, slow_engine):
        assert {n for n, r in eng.runners.items() if r.stepper is None} == general
    if case == "step_fails":
        assert fast["error"][:3] == ("bomb", "k1", 2)
        assert fast["rows"]["s"] == [0, 1]
    if case == "step_raises_io_closed":
        assert fast["rows"]["s"] == list(range(77))
        assert fast["steps"]["q"] == 78
    if case == "source_raises_io_closed":
        assert fast["rows"]["s"] == list(range(90)) and fast["steps"]["a"] == 91
    if case == "odd_names":
        assert fast["rows"]["s"] == [3 * v for v in range(60)]
    if case == "strict_getattr":
        assert fast["rows"]["s"] == list(range(40)) and fast["rows"]["n"] == [None] * 40


def test_prepared_function_only_for_the_plain_case() -> None:
    """A step time limit or a component's own run() or property fields: no prepared function."""
    _, engine = outcome(own_run, record=False)
    runners = engine.runners
    assert runners["a"].stepper is not None and runners["s"].stepper is not None
    assert runners["o"].stepper is None
    _, engine = outcome(property_field, record=False)
    assert engine.runners["p"].stepper is None and engine.runners["a"].stepper is not None
    limited, engine = outcome(chain_fan_out_fan_in, record=False, limit=30.0)
    assert all(r.stepper is None for r in engine.runners.values())
    assert limited == outcome(chain_fan_out_fan_in, record=False)[0]
    engine.release()
    assert all(r.stepper is None for r in engine.runners.values())


def test_round_function_is_made_once_per_shape_and_graph() -> None:
    components, wires = chain_fan_out_fan_in()
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    engine = Engine(graph, {c.name: c for c in components})
    run_to_end(engine)
    made = {k[1:]: v for k, v in graph.memo.items() if isinstance(k, tuple) and k[0] == "engine-stepper"}
    # (source, (input fields, output field of each delivery)): one per distinct shape and names
    assert sorted(made) == sorted([
        (False, (("a", "b"), ("s", "s"))),   # add (to s1 and s2)
        (False, (("a", "b"), ())),           # s2 and s3 (Sink2): one function for both
        (False, (("x",), ())),               # s1
        (False, (("x",), ("lo", "hi"))),     # sp (outputs in declared order)
        (False, (("x",), ("y",))),           # d
        (True, ((), ("v", "v"))),            # b
        (True, ((), ("v", "v", "v"))),       # a
    ])
    again = Engine(graph, {c.name: c for c in chain_fan_out_fan_in()[0]})
    run_to_end(again)
    assert {k[1:]: v for k, v in graph.memo.items() if isinstance(k, tuple) and k[0] == "engine-stepper"} == made


def test_field_names_are_written_into_a_round_function_only_when_plain() -> None:
    """Plain names are written as attribute names (fast attribute access); a keyword, a non-ASCII
    name or anything else is bound as a value and never written into the source."""
    from plugboard_beam.runtime.engine import _make_stepper_factory, plain_name

    assert plain_name("x") and plain_name("out_1") and plain_name("match")  # (a soft keyword)
    for name in ("class", "\ufb01eld", "_x", "1x", "a.b", "x; import os", ""):
        assert not plain_name(name), name
    named = _attributes(_make_stepper_factory(False, 1, 1, (("x",), ("y",))))
    assert ("STORE_ATTR", "x") in named and ("LOAD_ATTR", "y") in named
    assert ("LOAD_GLOBAL", "setattr") not in named and ("LOAD_GLOBAL", "getattr") not in named
    plain = _attributes(_make_stepper_factory(False, 1, 1))
    assert ("LOAD_GLOBAL", "setattr") in plain and ("LOAD_GLOBAL", "getattr") in plain
    assert not {n for op, n in plain if op in ("STORE_ATTR", "LOAD_ATTR")} & {"x", "y"}
    with pytest.raises(ValueError, match="cannot be written"):
        _make_stepper_factory(False, 1, 1, (("x; import os",), ("y",)))
    graph, comps = _odd_engine()
    run_to_end(Engine(graph, comps))
    odd = {k[2]: v for k, v in graph.memo.items() if isinstance(k, tuple) and k[0] == "engine-stepper"}
    attrs = _attributes(odd[(("class",), ("None",))])  # made, bound as values (odd_names case)
    assert ("LOAD_GLOBAL", "setattr") in attrs and ("LOAD_GLOBAL", "getattr") in attrs
    assert not {n for op, n in attrs if op in ("STORE_ATTR", "LOAD_ATTR")} & {"class", "None"}


def _odd_engine() -> tuple[_t.Any, dict[str, Component]]:
    components, wires = odd_names()
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    return graph, {c.name: c for c in components}


def _attributes(make: _t.Callable[..., _t.Any]) -> set[tuple[str, str]]:
    """(opname, name) of the attribute and global accesses in a compiled round function."""
    import dis

    inner = next(c for c in make.__code__.co_consts if hasattr(c, "co_names"))
    return {(i.opname, str(i.argval)) for i in dis.get_instructions(inner)
            if i.opname in ("STORE_ATTR", "LOAD_ATTR", "LOAD_GLOBAL")}
