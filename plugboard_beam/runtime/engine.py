"""The step engine: the one place that decides when a component steps.

It implements ``SEMANTICS.md`` for a set of component instances of one key (a whole model
for ``LocalProcess``, or the components of one Beam stage):

* a source (no inputs) steps until it calls ``io.close()``; the closing step sends nothing;
* a component with inputs steps when every input field has its next value (lock-step);
  the first values of a field are its ``initial_values``;
* after each step every output field sends its current value (sticky; ``None`` if unset);
* a field fed by several connectors takes their values ordered by (source step, connector
  order in the spec) and ends when all of them have ended;
* a component whose input field has ended (and is used up) steps no more and ends its outputs.

Events (SEMANTICS, Events) travel on event edges as one batch (a list, possibly empty) per
tick of the producer, so a consumer can tell "no event this tick" from "not arrived yet". A
consumer's ``Channel`` per producer is seeded with one empty batch when the edge lags; before
its step k a component takes one batch from every channel, handles them in channel order
(lagging channels first, then producer schedule level, ties by name), then steps. Components
with events run through ``_advance``; the loop for components without events is unchanged.

The engine is plain synchronous Python. Component coroutines are driven by ``Driver``
without an event loop unless they really suspend. Edges leaving the engine (to another Beam
stage) collect values in ``OutPort`` buffers; edges entering it are fed through ``InPort``.
"""

from __future__ import annotations

from collections import deque
import functools
import keyword
import pickle
import time
import types
import typing as _t

from plugboard_beam.component.component import DRIVEN, Component, Status, overrides_run, raw_method
from plugboard_beam.exceptions import IOStreamClosedError, StepError
from plugboard_beam.graph.events import schedule_levels
from plugboard_beam.graph.model import Edge, ModelGraph, Node
from plugboard_beam.logs import SCOPE_ATTR, LogScope
from plugboard_beam.runtime.driver import Driver
from plugboard_beam.runtime.user_run import UserRun

_Coroutine = types.CoroutineType
Deliver = _t.Callable[[_t.Any], None]
#: Called with (edge, source step index, value) for every message crossing a connector.
Recorder = _t.Callable[[Edge, int, _t.Any], None]


def plain_name(name: str) -> bool:
    """Whether a field name may be written into a round function's source as an attribute
    name (``c.x``): ASCII letters, digits and ``_``, not starting with a digit or ``_``, not a
    keyword. (Field names are checked to be public identifiers when declared; ASCII-only keeps
    Python's NFKC folding of identifiers in source from reading another attribute than
    ``getattr`` would.)"""
    return (name.isascii() and name.isidentifier() and not name.startswith("_")
            and not keyword.iskeyword(name))


def _make_stepper_factory(source: bool, reads: int, puts: int,
                          names: _t.Optional[tuple[tuple[str, ...], tuple[str, ...]]] = None,
                          ) -> _t.Callable[..., _t.Callable[[], bool]]:
    """The source of ``Engine._stepper``'s function for one runner shape, compiled: ``make(...)``
    binds one runner's objects (``r``/``b``/``q`` i: input field name, its buffer, its
    ``popleft``; ``s``/``p`` i: output field name and one of its deliveries) and returns its
    round function. The step in the middle is ``Engine._step``'s, unrolled over the shape.
    (Positional: ``make`` is called once per runner and key, and keyword arguments built per
    call cost ~6 us of its ~10, measured.)

    With ``names`` (the input fields' and each delivery's output field's names, every one a
    ``plain_name``), fields are written ``c.x = ...`` and read ``c.y`` in the source: Python's
    specialised attribute access, ~8x faster than the ``setattr``/``getattr`` builtins (measured:
    ~30 against ~250 ns a step for one input and one output). A read of an unset field gives
    ``None`` as ``getattr(c, name, None)`` does. Without ``names`` the source holds no field name
    at all: they are bound as values."""
    ins, outs = names if names is not None else ((), ())
    args = [f"r{i}, b{i}, q{i}" for i in range(reads)] + [f"s{i}, p{i}" for i in range(puts)]
    if names is not None:
        if len(ins) != reads or len(outs) != puts or not all(plain_name(n) for n in (*ins, *outs)):
            raise ValueError(f"field names {names!r} cannot be written into a round function")
        bind_in = [f"            c.{ins[i]} = q{i}()" for i in range(reads)]
        send = [line for i in range(puts) for line in (
            "            try:",
            f"                v = c.{outs[i]}",
            "            except AttributeError:",
            "                v = None",
            f"            p{i}(v)")]
    else:
        bind_in = [f"            setattr(c, r{i}, q{i}())" for i in range(reads)]
        send = [f"            p{i}(getattr(c, s{i}, None))" for i in range(puts)]
    lines = [
        f"def make(engine, runner, finish, c, io, step_fn, fields{''.join(', ' + n for n in args)}):",
        "    def steps():",
        "        stepped = False",
        *(["        n = engine.burst", "        while n:"] if source
          else ["        while " + " and ".join(f"b{i}" for i in range(reads)) + ":"]),
        *bind_in,
        "            try:",
        "                res = step_fn()",
        "                if type(res) is Coroutine:",
        "                    for yielded in res.__await__():  # (as in Engine._step)",
        "                        engine.driver.resume(res, yielded)",
        "                        break",
        "            except IOStreamClosedError:",
        "                io._is_closed = True  # as in Engine._step",
        "            except Exception as exc:",
        "                c._status = Status.FAILED",
        "                raise StepError(runner.name, engine.key, runner.steps, 'step', exc) from exc",
        "            runner.steps += 1",
        "            if io._is_closed:",
        "                finish(runner)",
        "                return True",
        *send,
        "            stepped = True",
        *(["            n -= 1", "        return True"] if source else [
            "        for fld in fields:",
            "            if fld.ended and not fld.buf:",
            "                finish(runner)",
            "                return True",
            "        return stepped",
        ]),
        "    return steps",
    ]
    namespace: dict[str, _t.Any] = {"Coroutine": _Coroutine, "IOStreamClosedError": IOStreamClosedError,
                                    "StepError": StepError, "Status": Status}
    title = f"source={source} reads={reads} puts={puts}{' named' if names is not None else ''}"
    exec(compile("\n".join(lines), f"<engine stepper {title}>", "exec"), namespace)
    return _t.cast(_t.Callable[..., _t.Callable[[], bool]], namespace["make"])


class Field:
    """An input field: a stream of values (seeds first), merged from one or more ports."""

    __slots__ = ("buf", "ended", "name", "ports", "skips", "turn")

    def __init__(self, name: str, seeds: _t.Iterable[_t.Any]) -> None:
        self.name = name
        self.buf: deque[_t.Any] = deque(seeds)
        self.ports: list[InPort] = []
        self.ended = False
        self.turn = 0  # fan-in: index of the port whose value comes next
        self.skips = 0  # fan-in: consecutive ended ports skipped

    def merge(self) -> None:
        """Fan-in: move values from the ports into ``buf`` in (source step, port order)."""
        ports = self.ports
        n = len(ports)
        buf = self.buf
        while True:
            port = ports[self.turn]
            if port.queue:
                buf.append(port.queue.popleft())
                self.skips = 0
            elif port.closed:
                self.skips += 1
                if self.skips >= n:
                    self.ended = True
                    return
            else:
                return
            self.turn = self.turn + 1 if self.turn + 1 < n else 0


class InPort:
    """The receiving end of one connector."""

    __slots__ = ("closed", "edge", "field", "put", "queue", "received", "runner")

    def __init__(self, edge: Edge, field: Field, runner: Runner, direct: bool) -> None:
        self.edge = edge
        self.field = field
        self.runner = runner
        self.closed = False
        self.received = 0
        # One connector into a field: values go straight to the field's stream.
        self.queue: deque[_t.Any] = field.buf if direct else deque()
        self.put: Deliver = self.queue.append if direct else self._put_merge

    def _put_merge(self, value: _t.Any) -> None:
        self.queue.append(value)
        self.field.merge()

    def put_all(self, values: _t.Iterable[_t.Any]) -> None:
        """``put`` each of ``values`` (a chunk from another stage): at once into the field's
        buffer when this is its only connector."""
        if self.queue is self.field.buf:
            self.queue.extend(values)
        else:
            for value in values:
                self._put_merge(value)

    def close(self) -> None:
        """The upstream ended."""
        self.closed = True
        field = self.field
        if len(field.ports) == 1:
            field.ended = True
        else:
            field.merge()


#: the batch of a tick without events (shared; batches are never mutated)
NO_EVENTS: tuple[()] = ()


class Channel:
    """The receiving end of one event edge: batches of events, one per producer tick.

    Has the ``put`` / ``received`` / ``closed`` / ``close`` interface of ``InPort``, so a
    lowering feeds it the same way (chunks of consecutive batches).
    """

    __slots__ = ("buf", "closed", "edge", "put", "put_all", "queue", "received")

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        # A lagging edge starts with one empty batch: the consumer's step 0 sees "tick -1".
        self.buf: deque[_t.Sequence[_t.Any]] = deque(NO_EVENTS for _ in range(edge.lag))
        self.queue = self.buf
        self.closed = False
        self.received = 0
        self.put: Deliver = self.buf.append
        #: ``put`` each of a chunk's batches (``InPort.put_all``)
        self.put_all: _t.Callable[[_t.Iterable[_t.Any]], None] = self.buf.extend

    def close(self) -> None:
        """The producer ended: later ticks deliver nothing."""
        self.closed = True


class OutPort:
    """A connector leaving the engine: its values wait here until the caller takes them."""

    __slots__ = ("edge", "end_sent", "ended", "put", "start", "values")

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.values: list[_t.Any] = []
        #: buffer one value: the list's own ``append`` (no Python call per value crossing to
        #: another stage; ``values`` stays the same list, ``take`` copies it out)
        self.put: Deliver = self.values.append
        self.start = 0  # source step index of values[0]
        self.ended = False
        self.end_sent = False

    def take(self) -> tuple[int, list[_t.Any], bool]:
        """(start step, values, ended) since the last take; clears the buffer."""
        start, values = self.start, self.values[:]
        self.start += len(values)
        self.values.clear()
        return start, values, self.ended

    def close(self) -> None:
        """The source component ended."""
        self.ended = True


class Runner:
    """One component instance and its wiring."""

    __slots__ = (
        "channels",
        "comp",
        "dict_io",
        "done",
        "ends",
        "ev_outs",
        "event_driven",
        "evented",
        "fields",
        "handlers",
        "is_source",
        "limit",
        "log",
        "name",
        "out_edges",
        "outs",
        "reads",
        "retired",
        "sends",
        "step_fn",
        "stepper",
        "steps",
        "targets",
        "ticks",
        "user_run",
    )

    def __init__(self, comp: Component, inputs: _t.Sequence[str], outputs: _t.Sequence[str],
                 limit: _t.Optional[float] = None, key: str = "", job_id: _t.Optional[str] = None,
                 info: _t.Optional[ClassInfo] = None) -> None:
        self.comp = comp
        self.name = comp.name
        #: what the component's ``_logger`` binds: key, this runner's steps, phase, job id
        self.log = LogScope(key, job_id, self)
        setattr(comp, SCOPE_ATTR, self.log)
        #: ``step_timeout``: seconds each call may take (None: called on the engine's thread)
        self.limit = limit
        self.fields: list[Field] = [Field(f, comp.io.initial_values.get(f, ())) for f in inputs]
        self.outs: list[tuple[str, list[Deliver]]] = [(f, []) for f in outputs]
        #: set once wired (``Engine._build``): (field, its stream) per input; (field, its
        #: deliveries) per output that has any
        self.reads: tuple[tuple[str, deque[_t.Any]], ...] = ()
        self.sends: tuple[tuple[str, tuple[Deliver, ...]], ...] = ()
        self.out_edges: list[list[Edge]] = [[] for _ in outputs]
        self.ends: list[_t.Callable[[], None]] = []
        self.targets: list[deque[_t.Any]] = []  # queues of in-engine targets (for backpressure)
        self.steps = 0
        self.done = False
        self.is_source = not inputs
        # Events: channels in delivery order; (types, deliver, edge, crosses a stage) per out edge.
        self.channels: list[Channel] = []
        self.ev_outs: list[tuple[frozenset[str], Deliver, Edge, bool]] = []
        self.evented = False  # has channels or event edges: scheduled by Engine._advance
        self.event_driven = False  # no input fields, handles user events
        cls = type(comp)
        if info is None:
            info = ClassInfo.of(cls, inputs, outputs)
        #: no property for any field: only outputs with deliveries are read (see ``ClassInfo``)
        self.dict_io: bool = info.dict_io
        self.handlers: _t.Mapping[str, str] = info.handlers
        self.ticks = 0  # event-driven components: ticks so far (their steps are fewer)
        self.retired = True  # no events left to handle (False while channels may deliver)
        setattr(comp, DRIVEN, True)  # its hand-driven wrappers only call through
        self.step_fn = raw_method(comp, "step")
        #: the component's own ``run()`` when its class overrides it (``user_run.py``)
        self.user_run: _t.Optional[UserRun] = UserRun(comp) if info.own_run else None
        #: its steps of one round as one function, made on its first round (``Engine._stepper``)
        self.stepper: _t.Optional[_t.Callable[[], bool]] = None


class ClassInfo(_t.NamedTuple):
    """What a runner needs to know of a component's class, for its fields (worked out once per
    class and node: ``Wiring.class_info``)."""

    #: no property for any of the fields (then only outputs with deliveries are read)
    dict_io: bool
    #: the class's event handlers (``EventIO.handlers``)
    handlers: _t.Mapping[str, str]
    #: the class overrides ``run()`` with code of its own (``overrides_run``)
    own_run: bool

    @classmethod
    def of(cls, klass: type, inputs: _t.Sequence[str], outputs: _t.Sequence[str]) -> ClassInfo:
        """``klass``'s info for these fields. A class that defines a property for a field has
        every output read after each step (its getter may do work); otherwise only the outputs
        that go somewhere are read. (Fields are read and written with getattr/setattr, never
        through the instance's ``__dict__``: see ``Component``.)"""
        dict_io = not any(hasattr(klass.__dict__.get(f) or getattr(klass, f, None), "__set__")
                          for f in (*inputs, *outputs))
        return cls(dict_io, _t.cast(_t.Any, klass).event_io().handlers, bool(overrides_run(klass)))


class Wiring:
    """What an engine's wiring derives from the graph alone, for one set of members and cut
    edges: worked out once per graph (kept in ``ModelGraph.memo``) and shared by the engines of
    every key, which then only make their ports and runners from it."""

    __slots__ = ("_classes", "channels", "event_links", "field_links", "fields", "nodes")

    def __init__(self, graph: ModelGraph, members: tuple[str, ...], cut: frozenset[int]) -> None:
        inside = set(members)
        has_events = any(e.kind == "event" for e in graph.edges)
        order = schedule_levels(graph) if has_events else {}
        self.nodes: tuple[Node, ...] = tuple(graph.node(n) for n in members)
        #: per member: its event channels' edges in delivery order (tick: lagging channels hold
        #: the older tick; then the producer's place in the schedule, ties by component name;
        #: SEMANTICS, Events, Order), each with whether it enters from outside the engine
        self.channels: dict[str, list[tuple[Edge, bool]]] = {}
        #: per member: per input field (in ``node.inputs`` order), its connectors in spec order
        self.fields: dict[str, list[list[tuple[Edge, bool]]]] = {}
        for node in self.nodes:
            edges = [e for e in graph.in_edges(node.name) if e.kind == "event"]
            edges.sort(key=lambda e: (-e.lag, order.get(e.source, 0), e.source))
            self.channels[node.name] = [(e, e.source not in inside or e.id in cut) for e in edges]
            self.fields[node.name] = [
                [(e, e.source not in inside or e.id in cut) for e in graph.in_edges(node.name, f)]
                for f in node.inputs
            ]
        #: field connectors out of members, in spec order: (edge, source, output index, target
        #: (member, field index, port index) or None for an edge that leaves the engine)
        self.field_links: list[tuple[Edge, str, int, _t.Optional[tuple[str, int, int]]]] = []
        #: event edges out of members: (edge, source, types, target (member, channel index) or None)
        self.event_links: list[tuple[Edge, str, frozenset[str], _t.Optional[tuple[str, int]]]] = []
        for edge in graph.edges:
            if edge.source not in inside:
                continue
            internal = edge.target in inside and edge.id not in cut
            if edge.kind == "field":
                idx = list(graph.node(edge.source).outputs).index(edge.source_field)
                field_target: _t.Optional[tuple[str, int, int]] = None
                if internal:
                    fi = list(graph.node(edge.target).inputs).index(edge.target_field)
                    pi = [e.id for e, _ in self.fields[edge.target][fi]].index(edge.id)
                    field_target = (edge.target, fi, pi)
                self.field_links.append((edge, edge.source, idx, field_target))
        for edge in graph.edges:
            if edge.kind != "event" or edge.source not in inside:
                continue
            event_target: _t.Optional[tuple[str, int]] = None
            if edge.target in inside and edge.id not in cut:
                ci = [e.id for e, _ in self.channels[edge.target]].index(edge.id)
                event_target = (edge.target, ci)
            self.event_links.append((edge, edge.source, frozenset(edge.types), event_target))
        self._classes: dict[tuple[str, type], ClassInfo] = {}

    @classmethod
    def of(cls, graph: ModelGraph, members: tuple[str, ...], cut: frozenset[int]) -> Wiring:
        """The graph's wiring for ``members`` and ``cut`` (made on first use)."""
        memo = graph.memo
        key = ("engine-wiring", members, cut)
        wiring = memo.get(key)
        if wiring is None:
            wiring = memo[key] = cls(graph, members, cut)
        return _t.cast(Wiring, wiring)

    def class_info(self, node: Node, klass: type) -> ClassInfo:
        """``ClassInfo`` of ``klass`` as ``node`` (worked out once per graph, not per key)."""
        info = self._classes.get((node.name, klass))
        if info is None:
            info = self._classes[(node.name, klass)] = ClassInfo.of(klass, node.inputs, node.outputs)
        return info


class Engine:
    """Runs the components of one key (all of a model, or the members of one stage)."""

    def __init__(
        self,
        graph: ModelGraph,
        components: _t.Mapping[str, Component],
        *,
        key: str = "",
        members: _t.Optional[_t.Collection[str]] = None,
        driver: _t.Optional[Driver] = None,
        recorder: _t.Optional[Recorder] = None,
        burst: int = 64,
        cut: _t.Collection[int] = (),
        job_id: _t.Optional[str] = None,
    ) -> None:
        self.graph = graph
        self.key = key
        #: bound to the components' log records (``plugboard_beam.logs.LogScope``)
        self.job_id = job_id
        #: edges that leave and re-enter through the caller even between members (feedback)
        self.cut = frozenset(cut)
        self.members: tuple[str, ...] = tuple(n for n in graph.schedule_order() if members is None or n in members)
        self.driver = driver or Driver()
        self.recorder = recorder
        self.burst = burst
        self.inputs: dict[int, _t.Union[InPort, Channel]] = {}
        self.outputs: dict[int, OutPort] = {}
        self.runners: dict[str, Runner] = {}
        self.initialised = False
        self.destroyed = False
        self.idle = False  # the last run() stopped because nothing could step
        self._build(components)

    # ----------------------------------------------------------------- wiring
    def _build(self, components: _t.Mapping[str, Component]) -> None:
        wiring = Wiring.of(self.graph, self.members, self.cut)
        runners, inputs, outputs = self.runners, self.inputs, self.outputs
        for node in wiring.nodes:
            comp = components[node.name]
            runner = Runner(comp, node.inputs, node.outputs, node.step_timeout, self.key, self.job_id,
                            wiring.class_info(node, type(comp)))
            runner.event_driven = node.is_event_driven
            runners[node.name] = runner
        for node in wiring.nodes:
            runner = runners[node.name]
            for edge, external in wiring.channels[node.name]:
                ch = Channel(edge)
                runner.channels.append(ch)
                if external:
                    inputs[edge.id] = ch
            runner.retired = not runner.channels
        for node in wiring.nodes:
            runner = runners[node.name]
            for fld, edges in zip(runner.fields, wiring.fields[node.name], strict=True):
                direct = len(edges) == 1
                for edge, external in edges:
                    port = InPort(edge, fld, runner, direct)
                    fld.ports.append(port)
                    if external:
                        inputs[edge.id] = port
        for edge, source, idx, target in wiring.field_links:
            src = runners[source]
            if target is not None:
                port = runners[target[0]].fields[target[1]].ports[target[2]]
                src.outs[idx][1].append(port.put)
                src.targets.append(port.queue)
                src.ends.append(port.close)
            else:
                out = OutPort(edge)
                outputs[edge.id] = out
                src.outs[idx][1].append(out.put)
                src.ends.append(out.close)
            src.out_edges[idx].append(edge)
        for edge, source, wanted, at in wiring.event_links:
            src = runners[source]
            if at is not None:
                ch = runners[at[0]].channels[at[1]]
                src.ev_outs.append((wanted, ch.put, edge, False))
                src.targets.append(ch.buf)
                src.ends.append(ch.close)
            else:
                out = OutPort(edge)
                outputs[edge.id] = out
                src.ev_outs.append((wanted, out.put, edge, True))
                src.ends.append(out.close)
        for runner in runners.values():
            runner.evented = bool(runner.channels or runner.ev_outs or runner.event_driven)
            runner.reads = tuple([(fld.name, fld.buf) for fld in runner.fields])
            runner.sends = tuple([(name, tuple(delivers)) for name, delivers in runner.outs if delivers])

    # -------------------------------------------------------------- lifecycle
    def _call(self, runner: Runner, phase: str, fn: _t.Callable[[], _t.Any]) -> None:
        runner.log.phase = phase
        try:
            if runner.limit is not None:
                self.driver.call_limited(fn, runner.limit, f"{phase}()")
            else:
                self.driver.do(fn)
        except Exception as exc:
            raise StepError(runner.name, self.key, runner.steps, phase, exc) from exc
        finally:
            runner.log.phase = None

    def init(self) -> None:
        """Call ``init()`` of every component (in spec order)."""
        with self.driver:
            for node in self.graph.nodes:
                runner = self.runners.get(node.name)
                if runner is not None:
                    self._call(runner, "init", runner.comp.init)
                    runner.comp._status = Status.INIT
        self.initialised = True

    def destroy(self) -> list[StepError]:
        """Call ``destroy()`` of every component once, even after failures; return the errors."""
        errors: list[StepError] = []
        if self.destroyed:
            return errors
        self.destroyed = True
        with self.driver:
            for node in self.graph.nodes:
                runner = self.runners.get(node.name)
                if runner is None:
                    continue
                if runner.user_run is not None:  # a run() still waiting: its finally runs now
                    try:
                        self._call(runner, "run", runner.user_run.close)
                    except StepError as err:
                        errors.append(err)
                try:
                    self._call(runner, "destroy", runner.comp.destroy)
                except StepError as err:
                    errors.append(err)
        return errors

    def release(self) -> None:
        """After a key has ended here (destroyed, its results read): drop the wiring (ports,
        channels, buffers, deliveries), which is full of reference cycles, so that the key's
        objects are freed at once by reference counting instead of piling up as cyclic garbage
        until the collector's next full pass (which walks every live object: with many keys, a
        cost that grows with the keys run so far). Components, statuses and step counts stay."""
        if not self.destroyed:
            return
        self.inputs, self.outputs = {}, {}
        for runner in self.runners.values():
            runner.log.counter = None  # the component's log scope pointed back at its runner
            for fld in runner.fields:
                for port in fld.ports:
                    del port.put, port.field, port.runner  # (``put`` may be its own bound method)
                fld.ports = []
            runner.fields, runner.channels, runner.ends, runner.targets, runner.ev_outs = [], [], [], [], []
            runner.outs = [(name, []) for name, _ in runner.outs]
            runner.out_edges = [[] for _ in runner.outs]
            runner.reads, runner.sends = (), ()
            runner.stepper = None

    @property
    def finished(self) -> bool:
        """Every component of this engine has ended (and handled its last events)."""
        return all(r.done and r.retired for r in self.runners.values())

    def steps(self) -> dict[str, int]:
        """Steps done so far, per component."""
        return {name: r.steps for name, r in self.runners.items()}

    # ------------------------------------------------------------- scheduling
    def _finish(self, runner: Runner) -> None:
        runner.done = True
        comp = runner.comp
        io = comp.io
        if runner.user_run is not None and not runner.user_run.ended:
            self._end_user_run(runner)
        if comp._status not in (Status.FAILED, Status.STOPPED):  # stopped: a cancelled run
            comp._status = Status.STOPPED if io._stopped else Status.COMPLETED
        if io._stopped or not runner.channels:
            runner.retired = True  # a stopped component's IO is closed: later events are not delivered
        for end in runner.ends:
            end()

    def _end_user_run(self, runner: Runner) -> None:
        """The component's inputs ended: its own ``run()`` gets ``IOStreamClosedError`` at
        its waiting ``self.step()`` and finishes."""
        run = _t.cast(UserRun, runner.user_run)
        runner.log.phase = "run"
        try:
            run.end(self.driver)
        except Exception as exc:
            runner.comp._status = Status.FAILED
            raise StepError(runner.name, self.key, runner.steps, "run", exc) from exc
        finally:
            runner.log.phase = None

    def _step(self, runner: Runner) -> None:
        comp = runner.comp
        if runner.user_run is not None:
            self._gated_step(runner)
            return
        for name, buf in runner.reads:
            setattr(comp, name, buf.popleft())
        try:
            if runner.limit is None:
                self.driver.do(runner.step_fn)  # (no StopIteration for a step that returns)
            else:
                self.driver.call_limited(runner.step_fn, runner.limit)
        except IOStreamClosedError:
            # A step that raises it (plugboard code may, to end): the component ends, as
            # plugboard's ``Component.run`` ends on it; the step sends nothing.
            comp.io._is_closed = True
        except Exception as exc:
            comp._status = Status.FAILED
            raise StepError(runner.name, self.key, runner.steps, "step", exc) from exc
        runner.steps += 1
        if comp.io._is_closed:
            self._finish(runner)
            return
        self._send(runner, runner.dict_io)

    def _send(self, runner: Runner, plain: bool) -> None:
        """After a step that left the IO open: every output field sends its current value
        (with ``plain`` fields only the outputs that go somewhere are read); the recorder
        sees them."""
        comp = runner.comp
        if plain:
            for name, delivers in runner.sends:
                value = getattr(comp, name, None)
                for put in delivers:
                    put(value)
        else:
            for name, puts in runner.outs:
                value = getattr(comp, name, None)
                for put in puts:
                    put(value)
        if self.recorder is not None:
            self._record(runner)

    def _stepper(self, runner: Runner) -> _t.Optional[_t.Callable[[], bool]]:
        """The plain case of ``run()``'s round for ``runner`` as one function: a source's burst
        of steps, or the steps of a component with inputs as long as every input has a value
        (then its end if one has ended and is used up); it returns whether it did anything.

        Each step is ``_step`` written out for the runner's shape (how many inputs, which
        outputs go where) with its buffers, component, step function and deliveries bound
        once, so a step costs no Python call besides the component's own ``step()`` and the
        deliveries. Only for a runner whose fields are plain attributes, without a
        step time limit, events or its own ``run()``; ``run()`` uses it only while no recorder
        is attached (the other cases go through ``_step``/``_advance`` as before)."""
        if runner.evented or runner.user_run is not None or runner.limit is not None or not runner.dict_io:
            return None
        comp = runner.comp
        args: list[_t.Any] = [self, runner, self._finish, comp, comp.io, runner.step_fn, tuple(runner.fields)]
        ins: list[str] = []
        outs: list[str] = []
        for name, buf in runner.reads:
            args += (name, buf, buf.popleft)
            ins.append(name)
        for name, delivers in runner.sends:
            for put in delivers:
                args += (name, put)
                outs.append(name)
        fields = (tuple(ins), tuple(outs))
        memo = self.graph.memo
        shape = ("engine-stepper", runner.is_source, fields)
        make = memo.get(shape)
        if make is None:
            named = fields if all(plain_name(n) for n in (*ins, *outs)) else None
            make = memo[shape] = _make_stepper_factory(
                runner.is_source, len(ins), len(outs), named)
        step: _t.Callable[[], bool] = make(*args)
        return step

    def _gated_step(self, runner: Runner) -> None:
        """``_step`` of a component whose own ``run()`` the engine drives: bind the inputs,
        resume the ``run()`` for one step, send the outputs; a ``run()`` that returned after
        the step ends the component (its outputs of that step are sent)."""
        comp = runner.comp
        run = _t.cast(UserRun, runner.user_run)
        for fld in runner.fields:
            setattr(comp, fld.name, fld.buf.popleft())
        ended = False
        try:
            if run.co is None and run.start(self.driver):
                comp.io._is_closed = True  # returned without stepping
            elif not comp.io._is_closed:
                ended = run.step(self.driver)
        except IOStreamClosedError:
            comp.io._is_closed = True  # the run() let it out: it ends, this step sends nothing
        except Exception as exc:
            comp._status = Status.FAILED
            raise StepError(runner.name, self.key, runner.steps, "step", exc) from exc
        runner.steps += 1
        if comp.io._is_closed:
            self._finish(runner)
            return
        self._send(runner, False)
        if ended:
            self._finish(runner)

    def _record(self, runner: Runner) -> None:
        recorder = _t.cast(Recorder, self.recorder)
        step = runner.steps - 1
        for (name, _), edges in zip(runner.outs, runner.out_edges, strict=False):
            value = getattr(runner.comp, name, None)
            for edge in edges:
                recorder(edge, step, value)

    def run(
        self,
        on_progress: _t.Optional[_t.Callable[[Engine], None]] = None,
        progress_every: float = 0.5,
        max_rounds: int = 0,
    ) -> bool:
        """Step components until none can step; return whether all have ended.

        Sources step ``burst`` times per round, the others as long as their inputs are ready,
        so buffers stay bounded by the burst, whatever the number of steps. With
        ``max_rounds`` it returns after that many rounds (the caller drains ``outputs`` and
        calls again).
        """
        runners = [self.runners[n] for n in self.members]
        for runner in runners:
            if not runner.done:
                comp = runner.comp
                if comp._status in (Status.CREATED, Status.INIT):
                    comp._status = Status.RUNNING
                if runner.stepper is None:
                    runner.stepper = self._stepper(runner)
        burst = self.burst
        limit = 2 * burst  # backpressure: skip a component whose targets hold this many values
        gate = True
        plain = self.recorder is None  # runners may step through their ``stepper``
        next_report = time.monotonic() + progress_every if on_progress else float("inf")
        with self.driver:
            progress = True
            rounds = 0
            while progress:
                if max_rounds and rounds >= max_rounds:
                    break
                rounds += 1
                progress = False
                gated = False
                for runner in runners:
                    if runner.done and runner.retired:
                        continue
                    if gate:
                        for q in runner.targets:
                            if len(q) >= limit:
                                break
                        else:
                            q = None
                        if q is not None:
                            gated = True
                            continue
                    if runner.evented:
                        if self._advance(runner):
                            progress = True
                        continue
                    stepper = runner.stepper
                    if stepper is not None and plain:
                        if stepper():
                            progress = True
                        continue
                    if runner.is_source:
                        n = burst
                        while n and not runner.done:
                            self._step(runner)
                            n -= 1
                        progress = True
                        continue
                    fields = runner.fields
                    while True:
                        for fld in fields:
                            if not fld.buf:
                                break
                        else:
                            self._step(runner)
                            progress = True
                            if runner.done:
                                break
                            continue
                        for fld in fields:
                            if fld.ended and not fld.buf:
                                self._finish(runner)
                                progress = True
                                break
                        break
                # Backpressure only orders the work; if it stopped everything, lift it once.
                if gated and not progress:
                    progress = True
                    gate = False
                else:
                    gate = True
                if on_progress is not None and time.monotonic() >= next_report:
                    on_progress(self)
                    next_report = time.monotonic() + progress_every
            self.idle = not progress
        return self.finished

    def end_all(self) -> None:
        """Stop every component that is still running; their outputs end."""
        for runner in self.runners.values():
            if not runner.done:
                self._finish(runner)
            runner.retired = True

    # ----------------------------------------------------------------- events
    def _advance(self, runner: Runner) -> bool:
        """Run a component with events as far as its inputs and channels allow (SEMANTICS,
        Events); return whether it did anything."""
        progress = False
        budget = self.burst
        fields = runner.fields
        channels = runner.channels
        events: _t.Optional[_t.Sequence[_t.Any]]
        while not (runner.done and runner.retired):
            if runner.done:
                # After its last step: handle what still arrives (no step), then retire.
                state = self._channels_state(runner)
                if state == 0:
                    break
                if state == 2:
                    runner.retired = True
                else:
                    self._handle(runner, self._pop(runner))
                    runner.comp.io.take_events()  # its outputs have ended: nothing is delivered
                    if runner.comp.io._stopped:
                        runner.comp._status = Status.STOPPED
                        runner.retired = True
                progress = True
                continue
            if fields:
                blocked = None
                for fld in fields:
                    if not fld.buf:
                        blocked = fld
                        break
                if blocked is not None:
                    if not blocked.ended:
                        break
                    self._finish(runner)
                    progress = True
                    continue
                ready = True
                for ch in channels:
                    if not ch.buf and not ch.closed:
                        ready = False
                        break
                if not ready:
                    break
            elif runner.event_driven:
                events = None
                exhausted = True
                for ch in channels:
                    if ch.buf:
                        exhausted = False
                    elif not ch.closed:
                        break
                else:
                    if exhausted:
                        self._last_step(runner)
                        self._finish(runner)
                        progress = True
                        continue
                    for ch in channels:
                        if ch.buf:
                            batch = ch.buf.popleft()
                            if batch:
                                events = batch if events is None else [*events, *batch]
                    tick = runner.ticks
                    runner.ticks += 1
                    if events:
                        self._handle(runner, events)
                        if runner.outs:
                            self._step(runner)
                    if not runner.done:
                        if runner.comp.io._is_closed:
                            self._finish(runner)
                        elif runner.ev_outs:
                            self._flush(runner, tick)
                    progress = True
                    continue
                break
            else:  # a source
                if not budget or self._channels_state(runner) == 0:
                    break
                budget -= 1
            tick = runner.steps
            if channels:
                events = None
                for ch in channels:
                    if ch.buf:
                        batch = ch.buf.popleft()
                        if batch:
                            events = batch if events is None else [*events, *batch]
                if events:
                    self._handle(runner, events)
            self._step(runner)
            if not runner.done and runner.ev_outs:
                self._flush(runner, tick)
            progress = True
        return progress

    @staticmethod
    def _channels_state(runner: Runner) -> int:
        """0: some channel has not delivered its next batch; 1: every channel has (or ended);
        2: every channel has ended and is used up."""
        exhausted = 2
        for ch in runner.channels:
            if ch.buf:
                exhausted = 1
            elif not ch.closed:
                return 0
        return exhausted

    @staticmethod
    def _pop(runner: Runner) -> list[_t.Any]:
        """The next batch of every channel, in delivery order."""
        events: list[_t.Any] = []
        for ch in runner.channels:
            if ch.buf:
                batch = ch.buf.popleft()
                if batch:
                    events.extend(batch)
        return events

    def _handle(self, runner: Runner, events: _t.Sequence[_t.Any]) -> None:
        """Run the handlers of ``events`` one at a time; a ``StopEvent`` closes the IO."""
        comp = runner.comp
        io = comp.io
        handlers = runner.handlers
        for event in events:
            etype = event.type
            method = handlers.get(etype)
            if method is not None:
                try:
                    handler = functools.partial(getattr(comp, method), event)
                    result = (self.driver.call(handler) if runner.limit is None
                              else self.driver.call_limited(handler, runner.limit, f"handler {method}()"))
                    if result is not None and hasattr(result, "model_dump") and isinstance(
                        getattr(result, "type", None), str
                    ):
                        io.queue_event(result)  # a handler's returned event is emitted
                except Exception as exc:
                    comp._status = Status.FAILED
                    phase = f"handler {method}() of event {etype!r} from '{event.source}' before step {runner.steps}"
                    raise StepError(runner.name, self.key, runner.steps, phase, exc) from exc
            if etype == "system.stop":
                io._stopped = True
                io._is_closed = True

    def _last_step(self, runner: Runner) -> None:
        """An event-driven component with outputs steps once more after its producers ended;
        that step's outputs (and events) are not sent."""
        comp = runner.comp
        if not runner.outs or comp.io._is_closed:
            return
        try:
            if runner.limit is not None:
                self.driver.call_limited(runner.step_fn, runner.limit)
            else:
                self.driver.call(runner.step_fn)
        except Exception as exc:
            comp._status = Status.FAILED
            raise StepError(runner.name, self.key, runner.steps, "step", exc) from exc
        runner.steps += 1
        comp.io.take_events()

    def _flush(self, runner: Runner, tick: int) -> None:
        """Send this tick's batch (possibly empty) on every event edge of ``runner``."""
        io = runner.comp.io
        events = io._events
        if not events:
            for _, put, _, _ in runner.ev_outs:
                put(NO_EVENTS)
            return
        io._events = []
        for event in events:
            event._tick = tick
        recorder = self.recorder
        for wanted, put, edge, crosses in runner.ev_outs:
            batch = [e for e in events if e.type in wanted] if events else []
            if batch and crosses:
                try:
                    pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    runner.comp._status = Status.FAILED
                    raise StepError(
                        runner.name, self.key, tick,
                        f"sending events {sorted({e.type for e in batch})} of step {tick} to "
                        f"'{edge.target}' (another stage)",
                        TypeError(f"the event cannot be pickled to cross a stage boundary: {exc}"),
                    ) from exc
            put(batch)
            if recorder is not None:
                for event in batch:
                    recorder(edge, tick, event)

    def drain(self, failed: _t.Collection[str]) -> list[StepError]:
        """After a failure: stop the failed components and the sources, then let every other
        component step on the values it already has, so partial outputs are complete up to the
        failure. Returns further failures (their components stop too)."""
        errors: list[StepError] = []
        stopped = set(failed)
        while True:
            for runner in self.runners.values():
                if not runner.done and (runner.is_source or runner.name in stopped):
                    self._finish(runner)
            try:
                self.run()
                return errors
            except StepError as err:
                errors.append(err)
                stopped.add(err.component)

    # --------------------------------------------------------------- snapshot
    def attach(self, graph: ModelGraph) -> None:
        """Finish restoring an engine that was pickled without its graph (see ``StageRun.dump``)."""
        state = self.__dict__.pop("_detached", None)
        if state is not None:
            self.__setstate__({**state, "graph": graph})
    def __getstate__(self) -> dict[str, _t.Any]:
        """Plain data (components, buffers, counters): wiring is rebuilt from the graph."""
        live = [n for n, r in self.runners.items() if r.user_run is not None and r.user_run.co is not None
                and not r.user_run.ended]
        if live:
            raise TypeError(f"components {live} are inside their own run(), which cannot be pickled")
        runners = {}
        for name, r in self.runners.items():
            runners[name] = (
                r.comp,
                r.steps,
                r.done,
                [
                    (
                        list(f.buf),
                        f.ended,
                        f.turn,
                        f.skips,
                        [(list(p.queue) if p.queue is not f.buf else None, p.closed, p.received) for p in f.ports],
                    )
                    for f in r.fields
                ],
                (r.ticks, r.retired, [(list(c.buf), c.closed, c.received) for c in r.channels]),
            )
        outputs = {eid: (o.start, o.values, o.ended, o.end_sent) for eid, o in self.outputs.items()}
        return {
            "graph": self.graph,
            "cut": self.cut,
            "key": self.key,
            "job_id": self.job_id,
            "members": self.members,
            "burst": self.burst,
            "runners": runners,
            "outputs": outputs,
            "initialised": self.initialised,
            "destroyed": self.destroyed,
        }

    def __setstate__(self, state: dict[str, _t.Any]) -> None:
        if state["graph"] is None:
            self._detached = state  # pickled without its graph: ``attach`` finishes the restore
            return
        self.graph = state["graph"]
        self.key = state["key"]
        self.job_id = state.get("job_id")
        self.members = state["members"]
        self.cut = state["cut"]
        self.burst = state["burst"]
        self.driver = Driver()
        self.recorder = None
        self.inputs, self.outputs, self.runners = {}, {}, {}
        self._build({name: data[0] for name, data in state["runners"].items()})
        for name, (_, steps, done, fields, events) in state["runners"].items():
            r = self.runners[name]
            r.steps, r.done = steps, done
            r.ticks, r.retired, chans = events
            for ch, (buf, closed, received) in zip(r.channels, chans, strict=True):
                ch.buf.clear()
                ch.buf.extend(buf)
                ch.closed, ch.received = closed, received
            for fld, (buf, ended, turn, skips, ports) in zip(r.fields, fields, strict=False):
                fld.buf.clear()
                fld.buf.extend(buf)
                fld.ended, fld.turn, fld.skips = ended, turn, skips
                for port, (queue, closed, received) in zip(fld.ports, ports, strict=False):
                    if queue is not None:
                        port.queue.extend(queue)
                    port.closed, port.received = closed, received
        for eid, (start, values, ended, end_sent) in state["outputs"].items():
            out = self.outputs[eid]
            out.start, out.ended, out.end_sent = start, ended, end_sent
            out.values.extend(values)
        self.initialised = state["initialised"]
        self.destroyed = state["destroyed"]
        self.idle = False
