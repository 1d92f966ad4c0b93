"""``IOController``: what a component declares it reads and writes (plugboard 0.9.0 compatible)."""

from __future__ import annotations

import asyncio
import typing as _t

from plugboard_beam.exceptions import ChannelClosedError, IOSetupError, IOStreamClosedError


def _field_names(fields: _t.Optional[_t.Iterable[_t.Any]], what: str) -> tuple[str, ...]:
    names: list[str] = []
    for f in fields or ():
        if not isinstance(f, str) or not f.isidentifier() or f.startswith("_"):
            raise IOSetupError(f"{what} field names must be public identifiers, got {f!r}")
        if f not in names:
            names.append(f)
    return tuple(names)


def _safe(event_type: _t.Any) -> str:
    """An event type (class or name) as plugboard's ``safe_type``: ``.`` and ``-`` made ``_``."""
    return str(getattr(event_type, "type", event_type)).replace(".", "_").replace("-", "_")


class IOController:
    """Declares a component's input and output fields and the event types it emits and handles.

    Declared on the class (``io = IO(inputs=[...], outputs=[...])``); every component instance
    gets its own copy bound to its name. ``await self.io.close()`` inside ``step`` ends the
    component: nothing from that step is sent and its output streams end.

    In a process the engine moves the values. A component driven by hand is wired as in
    plugboard: ``await io.connect(connectors)`` takes the connectors' channels, ``read()``
    receives one value per input field (``initial_values`` first), ``write()`` sends the
    outputs of the last step; ``Component.step()`` calls them around the user's step.
    """

    __slots__ = (
        "_event_in",
        "_event_out",
        "_events",
        "_in_channels",
        "_is_closed",
        "_out_channels",
        "_out_types",
        "_outbox",
        "_received",
        "_received_events",
        "_stopped",
        "_tasks",
        "_unread",
        "event_field_coverage",
        "initial_values",
        "input_events",
        "inputs",
        "namespace",
        "output_events",
        "outputs",
    )

    def __init__(
        self,
        inputs: _t.Optional[_t.Iterable[str]] = None,
        outputs: _t.Optional[_t.Iterable[str]] = None,
        initial_values: _t.Optional[_t.Mapping[str, _t.Iterable[_t.Any]]] = None,
        input_events: _t.Optional[_t.Iterable[_t.Any]] = None,
        output_events: _t.Optional[_t.Iterable[_t.Any]] = None,
        namespace: _t.Optional[str] = None,
        event_field_coverage: _t.Optional[_t.Mapping[str, _t.Iterable[str]]] = None,
        **_ignored: _t.Any,
    ) -> None:
        self.inputs: tuple[str, ...] = _field_names(inputs, "input")
        self.outputs: tuple[str, ...] = _field_names(outputs, "output")
        self.input_events: tuple[_t.Any, ...] = tuple(input_events or ())
        self.output_events: tuple[_t.Any, ...] = tuple(output_events or ())
        self.initial_values: dict[str, list[_t.Any]] = {k: list(v) for k, v in (initial_values or {}).items()}
        self.namespace = namespace
        #: event safe type -> the input fields its handler populates (``populates_fields``)
        self.event_field_coverage: dict[str, list[str]] = {
            k: list(v) for k, v in (event_field_coverage or {}).items()}
        #: types ``queue_event`` accepts (``system.stop`` only if declared, or added by the
        #: component when its code names ``StopEvent``: the graph has stop edges only then)
        self._out_types: frozenset[str] = frozenset(
            t for t in (getattr(e, "type", None) for e in self.output_events) if isinstance(t, str)
        )
        self._fresh()

    def bound(self, namespace: str, initial_values: _t.Mapping[str, _t.Iterable[_t.Any]],
              event_field_coverage: _t.Mapping[str, _t.Iterable[str]]) -> IOController:
        """A new instance's IO from this (already checked) declaration: what ``IOController(
        inputs=self.inputs, ..., namespace=namespace, ...)`` gives, without checking the field
        names again (a component's constructor calls it for every instance)."""
        io = IOController.__new__(IOController)
        io.inputs, io.outputs = self.inputs, self.outputs
        io.input_events, io.output_events = self.input_events, self.output_events
        io.initial_values = {k: list(v) for k, v in initial_values.items()}
        io.namespace = namespace
        io.event_field_coverage = {k: list(v) for k, v in event_field_coverage.items()}
        io._out_types = self._out_types  # (worked out once, by the declaration)
        io._fresh()
        return io

    def _fresh(self) -> None:
        """The state of an IO that has not run yet."""
        self._is_closed = False
        self._stopped = False
        #: channels of a component driven by hand (``connect``): by field, in connector order
        self._in_channels: dict[str, list[_t.Any]] = {}
        self._out_channels: dict[str, list[_t.Any]] = {}
        self._received: dict[str, _t.Any] = {}  # read() -> the component's input fields
        self._outbox: dict[str, _t.Any] = {}  # the component's outputs -> write()
        self._unread: dict[str, list[_t.Any]] = {}  # fan-in values received ahead of their turn
        #: event channels of a component driven by hand: in (its input events and ``StopEvent``)
        #: and out by event safe type; reads under way (they outlive a ``read`` that returned
        #: on the other); events received for the component's handlers
        self._event_in: list[_t.Any] = []
        self._event_out: dict[str, list[_t.Any]] = {}
        self._tasks: dict[str, asyncio.Future[_t.Any]] = {}
        self._received_events: list[_t.Any] = []
        #: events queued since the engine last took them (the current tick's)
        self._events: list[_t.Any] = []

    @property
    def is_closed(self) -> bool:
        """``True`` once the component called ``close()``."""
        return self._is_closed

    @property
    def is_connected(self) -> bool:
        """Whether ``connect()`` gave this IO channels (a component driven by hand)."""
        return bool(self._in_channels or self._out_channels or self._event_in or self._event_out)

    async def connect(self, connectors: _t.Iterable[_t.Any]) -> None:
        """Take the channels of the ``connectors`` that start or end at this component
        (plugboard's ``IOController.connect``); ``ValueError`` for a field it does not have."""
        ins = {_safe(e) for e in self.input_events} | {"system_stop"}
        outs = {_safe(e) for e in self._out_types}
        for conn in connectors:
            src, tgt = conn.spec.source, conn.spec.target
            if conn.spec.mode == "pubsub":  # an event connector (build_event_connectors)
                if src.entity in ins:
                    self._event_in.append(await conn.connect_recv())
                if src.entity in outs:
                    self._event_out.setdefault(src.entity, []).append(await conn.connect_send())
                continue
            if src.entity == self.namespace:
                if src.descriptor not in self.outputs:
                    raise ValueError(f"Unrecognised output field {src.descriptor}.")
                self._out_channels.setdefault(src.descriptor, []).append(await conn.connect_send())
            if tgt.entity == self.namespace:
                if tgt.descriptor not in self.inputs:
                    raise ValueError(f"Unrecognised input field {tgt.descriptor}.")
                self._in_channels.setdefault(tgt.descriptor, []).append(await conn.connect_recv())
        for fld in self._in_channels:  # seeds come first, as in a process
            self._unread.setdefault(fld, list(self.initial_values.get(fld, ())))

    async def read(self, timeout: _t.Optional[float] = None) -> None:
        """Receive, as plugboard: the next value of every connected input field (its
        ``initial_values`` first; a field fed by several connectors takes whichever sends first)
        or an event, whichever comes first (a read left waiting goes on in the next ``read``).
        Raises ``IOStreamClosedError`` if this IO is closed, or (closing it) when an input
        channel has closed; ``TimeoutError`` after ``timeout`` seconds without either."""
        if self._is_closed:
            raise IOStreamClosedError("Attempted read on a closed io controller.")
        if self._in_channels and "fields" not in self._tasks:
            self._tasks["fields"] = asyncio.ensure_future(self._read_fields())
        for i, chan in enumerate(self._event_in):
            if f"event{i}" not in self._tasks:
                self._tasks[f"event{i}"] = asyncio.ensure_future(chan.recv())
        if not self._tasks:
            return
        done, _ = await asyncio.wait(list(self._tasks.values()), timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise TimeoutError(f"no input for namespace {self.namespace} within {timeout} s")
        closed: _t.Optional[BaseException] = None
        for key, task in list(self._tasks.items()):
            if not task.done():
                continue
            del self._tasks[key]
            exc = task.exception()
            if isinstance(exc, ChannelClosedError):
                closed = exc
            elif exc is not None:
                raise exc
            elif key == "fields":
                self._received.update(task.result())
            else:
                self._received_events.append(task.result())
        if closed is not None:
            await self.close()
            raise IOStreamClosedError(f"Error reading input for namespace: {self.namespace}: {closed}") from closed

    async def _read_fields(self) -> dict[str, _t.Any]:
        values: dict[str, _t.Any] = {}
        for fld, chans in self._in_channels.items():
            values[fld] = await self._recv(fld, chans)
        return values

    def take_received_events(self) -> list[_t.Any]:
        """The events ``read()`` received since the last call (for the component's handlers)."""
        events, self._received_events = self._received_events, []
        return events

    async def _recv(self, fld: str, chans: list[_t.Any]) -> _t.Any:
        unread = self._unread.get(fld)
        if unread:
            return unread.pop(0)
        if len(chans) == 1:
            return await chans[0].recv()
        tasks = [asyncio.ensure_future(c.recv()) for c in chans]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        values = [t.result() for t in tasks if t in done]  # raises ChannelClosedError
        self._unread.setdefault(fld, []).extend(values[1:])
        return values[0]

    async def write(self) -> None:
        """Send the outputs of the last step on every connected output channel. Raises
        ``IOStreamClosedError`` if this IO is closed (as plugboard's, after a closing step)."""
        if self._is_closed:
            raise IOStreamClosedError("Attempted write on a closed io controller.")
        outbox, self._outbox = self._outbox, {}
        events = self.take_events() if self._event_out else []
        try:
            for fld, chans in self._out_channels.items():
                if fld in outbox:
                    for chan in chans:
                        await chan.send(outbox[fld])
            for event in events:
                for chan in self._event_out.get(_safe(event.type), ()):
                    await chan.send(event)
        except ChannelClosedError as exc:
            raise IOStreamClosedError(f"Error writing output for namespace: {self.namespace}: {exc}") from exc

    async def close(self) -> None:
        """Ends this component: its output streams end after the current step (which sends nothing)."""
        self._is_closed = True
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}
        for chans in self._out_channels.values():
            for chan in chans:
                await chan.close()

    def close_sync(self) -> None:
        """``close()`` for plain ``def step`` components."""
        self._is_closed = True

    def queue_event(self, event: _t.Any) -> None:
        """Emit ``event`` (it belongs to the current step's tick; see SEMANTICS, Events).

        Its type must be one of this component's ``output_events`` (``StopEvent`` always is).
        """
        etype = getattr(event, "type", None)
        if not isinstance(etype, str) or not hasattr(event, "model_dump"):
            raise TypeError(f"component '{self.namespace}': queue_event needs an Event, got {type(event).__name__}")
        if etype not in self._out_types:
            declared = sorted(self._out_types)
            raise ValueError(
                f"component '{self.namespace}' queued an event of type {etype!r}, which is not in its "
                f"output_events {declared}: add {type(event).__name__} to IO(output_events=[...])"
            )
        self._events.append(event)

    def take_events(self) -> list[_t.Any]:
        """The events queued since the last call (the engine's end of ``queue_event``)."""
        events = self._events
        if events:
            self._events = []
        return events

    def dict(self) -> dict[str, _t.Any]:
        """The declaration as plugboard's ``IOController.dict()`` (event types by their
        ``safe_type``, ``system_stop`` first in both directions, then as declared)."""

        def safe(events: _t.Iterable[_t.Any]) -> list[str]:
            return list(dict.fromkeys(["system_stop", *(_safe(e) for e in events)]))

        return {
            "namespace": self.namespace,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "input_events": safe(self.input_events),
            "output_events": safe(self.output_events),
            "initial_values": {k: list(v) for k, v in self.initial_values.items()},
            "event_field_coverage": {k: list(v) for k, v in self.event_field_coverage.items()},
        }

    def __repr__(self) -> str:
        return f"IOController(inputs={list(self.inputs)}, outputs={list(self.outputs)})"
