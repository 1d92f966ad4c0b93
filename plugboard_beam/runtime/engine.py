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

The engine is plain synchronous Python. Component coroutines are driven by ``Driver``
without an event loop unless they really suspend. Edges leaving the engine (to another Beam
stage) collect values in ``OutPort`` buffers; edges entering it are fed through ``InPort``.
"""

from __future__ import annotations

from collections import deque
import time
import types
import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import Edge, ModelGraph
from plugboard_beam.runtime.driver import Driver

_Coroutine = types.CoroutineType
Deliver = _t.Callable[[_t.Any], None]
#: Called with (edge, source step index, value) for every message crossing a connector.
Recorder = _t.Callable[[Edge, int, _t.Any], None]


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

    def close(self) -> None:
        """The upstream ended."""
        self.closed = True
        field = self.field
        if len(field.ports) == 1:
            field.ended = True
        else:
            field.merge()


class OutPort:
    """A connector leaving the engine: its values wait here until the caller takes them."""

    __slots__ = ("edge", "end_sent", "ended", "start", "values")

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.values: list[_t.Any] = []
        self.start = 0  # source step index of values[0]
        self.ended = False
        self.end_sent = False

    def put(self, value: _t.Any) -> None:
        """Buffer one value."""
        self.values.append(value)

    def take(self) -> tuple[int, list[_t.Any], bool]:
        """(start step, values, ended) since the last take; clears the buffer."""
        start, values = self.start, self.values
        self.start += len(values)
        self.values = []
        return start, values, self.ended

    def close(self) -> None:
        """The source component ended."""
        self.ended = True


class Runner:
    """One component instance and its wiring."""

    __slots__ = (
        "comp",
        "dict_io",
        "done",
        "ends",
        "fields",
        "is_source",
        "name",
        "out_edges",
        "outs",
        "step_fn",
        "steps",
        "targets",
    )

    def __init__(self, comp: Component, inputs: _t.Sequence[str], outputs: _t.Sequence[str]) -> None:
        self.comp = comp
        self.name = comp.name
        self.fields: list[Field] = [Field(f, comp.io.initial_values.get(f, ())) for f in inputs]
        self.outs: list[tuple[str, list[Deliver]]] = [(f, []) for f in outputs]
        self.out_edges: list[list[Edge]] = [[] for _ in outputs]
        self.ends: list[_t.Callable[[], None]] = []
        self.targets: list[deque[_t.Any]] = []  # queues of in-engine targets (for backpressure)
        self.steps = 0
        self.done = False
        self.is_source = not inputs
        self.step_fn = comp.step
        # Plain attributes are read/written through __dict__ (fast); a class that defines a
        # property for a field is served through getattr/setattr instead.
        cls = type(comp)
        self.dict_io = not any(
            hasattr(cls.__dict__.get(f) or getattr(cls, f, None), "__set__") for f in (*inputs, *outputs)
        )


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
    ) -> None:
        self.graph = graph
        self.key = key
        #: edges that leave and re-enter through the caller even between members (feedback)
        self.cut = frozenset(cut)
        self.members: tuple[str, ...] = tuple(n for n in graph.schedule_order() if members is None or n in members)
        self.driver = driver or Driver()
        self.recorder = recorder
        self.burst = burst
        self.inputs: dict[int, InPort] = {}
        self.outputs: dict[int, OutPort] = {}
        self.runners: dict[str, Runner] = {}
        self.initialised = False
        self.destroyed = False
        self.idle = False  # the last run() stopped because nothing could step
        self._build(components)

    # ----------------------------------------------------------------- wiring
    def _build(self, components: _t.Mapping[str, Component]) -> None:
        graph, members = self.graph, set(self.members)
        for name in self.members:
            node = graph.node(name)
            self.runners[name] = Runner(components[name], node.inputs, node.outputs)
        for name in self.members:
            runner = self.runners[name]
            for fld in runner.fields:
                edges = graph.in_edges(name, fld.name)
                for edge in edges:
                    port = InPort(edge, fld, runner, direct=len(edges) == 1)
                    fld.ports.append(port)
                    if edge.source not in members or edge.id in self.cut:
                        self.inputs[edge.id] = port
        for edge in graph.edges:
            if edge.source not in members:
                continue
            src = self.runners[edge.source]
            idx = [f for f, _ in src.outs].index(edge.source_field)
            if edge.target in members and edge.id not in self.cut:
                tgt = self.runners[edge.target]
                fld = next(f for f in tgt.fields if f.name == edge.target_field)
                port = next(p for p in fld.ports if p.edge.id == edge.id)
                src.outs[idx][1].append(port.put)
                src.targets.append(port.queue)
                src.ends.append(port.close)
            else:
                out = OutPort(edge)
                self.outputs[edge.id] = out
                src.outs[idx][1].append(out.put)
                src.ends.append(out.close)
            src.out_edges[idx].append(edge)

    # -------------------------------------------------------------- lifecycle
    def _call(self, runner: Runner, phase: str, fn: _t.Callable[[], _t.Any]) -> None:
        try:
            self.driver.call(fn)
        except Exception as exc:
            raise StepError(runner.name, self.key, runner.steps, phase, exc) from exc

    def init(self) -> None:
        """Call ``init()`` of every component (in spec order)."""
        with self.driver:
            for node in self.graph.nodes:
                runner = self.runners.get(node.name)
                if runner is not None:
                    self._call(runner, "init", runner.comp.init)
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
                try:
                    self._call(runner, "destroy", runner.comp.destroy)
                except StepError as err:
                    errors.append(err)
        return errors

    @property
    def finished(self) -> bool:
        """Every component of this engine has ended."""
        return all(r.done for r in self.runners.values())

    def steps(self) -> dict[str, int]:
        """Steps done so far, per component."""
        return {name: r.steps for name, r in self.runners.items()}

    # ------------------------------------------------------------- scheduling
    def _finish(self, runner: Runner) -> None:
        runner.done = True
        for end in runner.ends:
            end()

    def _step(self, runner: Runner) -> None:
        comp = runner.comp
        if runner.dict_io:
            d = comp.__dict__
            for fld in runner.fields:
                d[fld.name] = fld.buf.popleft()
        else:
            for fld in runner.fields:
                setattr(comp, fld.name, fld.buf.popleft())
        try:
            res = runner.step_fn()
            if type(res) is _Coroutine:
                try:
                    yielded = res.send(None)
                except StopIteration:
                    pass
                else:
                    self.driver.resume(res, yielded)
        except Exception as exc:
            raise StepError(runner.name, self.key, runner.steps, "step", exc) from exc
        runner.steps += 1
        if comp.io._is_closed:
            self._finish(runner)
            return
        if runner.dict_io:
            get = comp.__dict__.get
            for name, delivers in runner.outs:
                value = get(name)
                for put in delivers:
                    put(value)
        else:
            for name, delivers in runner.outs:
                value = getattr(comp, name, None)
                for put in delivers:
                    put(value)
        if self.recorder is not None:
            self._record(runner)

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
        burst = self.burst
        limit = 2 * burst  # backpressure: skip a component whose targets hold this many values
        gate = True
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
                    if runner.done:
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
            )
        outputs = {eid: (o.start, o.values, o.ended, o.end_sent) for eid, o in self.outputs.items()}
        return {
            "graph": self.graph,
            "cut": self.cut,
            "key": self.key,
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
        self.members = state["members"]
        self.cut = state["cut"]
        self.burst = state["burst"]
        self.driver = Driver()
        self.recorder = None
        self.inputs, self.outputs, self.runners = {}, {}, {}
        self._build({name: data[0] for name, data in state["runners"].items()})
        for name, (_, steps, done, fields) in state["runners"].items():
            r = self.runners[name]
            r.steps, r.done = steps, done
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
