"""``Component``: the base class users subclass (plugboard 0.9.0 compatible)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
import functools
import inspect
import typing as _t

import structlog

from plugboard_beam.component.io_controller import IOController
from plugboard_beam.events.event import HANDLER_POPULATES, HANDLER_TYPE, Event, StopEvent, type_name
from plugboard_beam.exceptions import IOSetupError, IOStreamClosedError
from plugboard_beam.logs import component_logger
from plugboard_beam.schemas import Status as Status  # re-exported: plugboard_beam.component.Status
from plugboard_beam.schemas.resource import Resource
from plugboard_beam.utils.registry import ClassRegistry

#: plugboard's period (seconds) of process status checks while a hand-driven read waits. The
#: step engine never waits on a read, so nothing here uses it; kept so plugboard code that
#: imports or patches ``plugboard.component.component.IO_READ_TIMEOUT_SECONDS`` runs.
IO_READ_TIMEOUT_SECONDS: float = 20.0

#: Constructor keywords every component accepts (``ComponentArgsDict``).
BASE_ARGS: frozenset[str] = frozenset({"name", "initial_values", "parameters", "state", "constraints", "resources"})


@dataclass(frozen=True)
class EventIO:
    """What a component class does with events (collected along its class hierarchy)."""

    #: event classes it handles / emits, as declared in ``IO(input_events=..., output_events=...)``
    inputs: tuple[type[Event], ...]
    outputs: tuple[type[Event], ...]
    #: event type name -> name of the handler method
    handlers: _t.Mapping[str, str]
    #: whether its code may queue ``StopEvent`` (declared, or named in one of its methods)
    may_stop: bool

    @property
    def input_types(self) -> tuple[str, ...]:
        """Type names of ``inputs``."""
        return tuple(type_name(e) for e in self.inputs)

    @property
    def output_types(self) -> tuple[str, ...]:
        """Type names of ``outputs`` (plus ``system.stop`` if ``may_stop``)."""
        names = [type_name(e) for e in self.outputs]
        if self.may_stop and StopEvent.type not in names:
            names.append(StopEvent.type)
        return tuple(names)


def _names_stop_event(klass: type) -> bool:
    """Whether a method defined on ``klass`` refers to ``StopEvent`` by name."""
    for value in vars(klass).values():
        fn = getattr(value, "__func__", value)
        fn = getattr(fn, RAW, fn)
        code = getattr(fn, "__code__", None)
        todo = [code] if code is not None else []
        while todo:
            c = todo.pop()
            if "StopEvent" in c.co_names:
                return True
            todo.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return False


#: attribute of the wrapped ``init``/``step`` holding the user's function (the engines call that)
RAW = "_plugboard_beam_raw"
#: flag of a component an engine drives (its wrappers then only call through)
DRIVEN = "_plugboard_beam_driven"
#: flag of a component whose own ``run()`` an engine drives: ``self.step()``
#: called by that ``run()`` waits for the engine (``StepGate``) instead of stepping at once
GATED = "_plugboard_beam_gated"
#: attribute of a ``run`` method that only does what the engines do anyway (not a user's loop)
ENGINE_RUN = "_plugboard_beam_engine_run"
#: what ``self.step()`` yields, under an engine that drives the component's own ``run()``, to
#: ask for its next step (``runtime/user_run.py`` resumes it when the inputs are there)
STEP_GATE = object()


def engine_run(fn: _t.Callable[..., _t.Any]) -> _t.Callable[..., _t.Any]:
    """Mark a ``run`` override as one the engines need not call (it only loops ``step()`` and
    does what ``destroy()`` does too), e.g. a library writer's save-the-rest."""
    setattr(fn, ENGINE_RUN, True)
    return fn


def overrides_run(cls: type) -> _t.Optional[str]:
    """The class that overrides ``Component.run`` with code of its own (plugboard users may:
    plugboard's process calls each component's ``run()``), or None."""
    for klass in cls.__mro__:
        fn = klass.__dict__.get("run")
        if fn is not None:
            return None if getattr(fn, ENGINE_RUN, False) else klass.__qualname__
    return None


class StepGate:
    """``self.step()`` inside a component's own ``run()`` driven by an engine: awaiting it
    yields ``STEP_GATE`` until the engine has the step's inputs in place, then runs the step
    (the engine then sends its outputs). The engine throws ``IOStreamClosedError`` into it
    when the inputs have ended, as plugboard's ``step()`` raises it on closed IO."""

    __slots__ = ("_comp", "_raw")

    def __init__(self, comp: Component, raw: _t.Callable[..., _t.Any]) -> None:
        self._comp = comp
        self._raw = raw

    def __await__(self) -> _t.Generator[_t.Any, None, None]:
        yield STEP_GATE
        comp = self._comp
        comp._plugboard_beam_stepping = True
        try:
            res = self._raw(comp)
            if inspect.isawaitable(res):
                yield from res.__await__()
        finally:
            comp._plugboard_beam_stepping = False


def _wrap_init(raw: _t.Callable[..., _t.Any]) -> _t.Callable[..., _t.Any]:
    """``init`` that sets the status to ``init`` once it returns (plugboard's wrapper)."""
    if inspect.iscoroutinefunction(raw):
        @functools.wraps(raw)
        async def init(self: Component) -> None:
            await raw(self)
            self._status = Status.INIT
    else:
        @functools.wraps(raw)
        def init(self: Component) -> None:
            raw(self)
            self._status = Status.INIT
    setattr(init, RAW, raw)
    return init


def _before_step(comp: Component) -> None:
    """Raise if the IO is closed; else status ``running``."""
    io = comp.io
    if io._is_closed:
        raise IOStreamClosedError("Attempted read on a closed io controller.")
    comp._status = Status.RUNNING


def _bind_received(comp: Component) -> bool:
    """Set the input fields ``read()`` received; whether the step may run: with connected
    inputs, once all of them received a value in this read (not on an event alone); else once
    every input field has a value."""
    io = comp.io
    received, io._received = io._received, {}
    for fld, value in received.items():
        setattr(comp, fld, value)
    if io._in_channels:
        return all(f in received for f in io._in_channels)
    return all(has_value(comp, f) for f in io.inputs)


async def _handle_received_events(comp: Component) -> None:
    """Call the handler of each event ``read()`` received (a returned event is queued)."""
    handlers = type(comp).event_io().handlers
    for event in comp.io.take_received_events():
        name = handlers.get(event.type)
        if name is None:
            continue
        result = getattr(comp, name)(event)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Event):
            comp.io.queue_event(result)


def _after_step(comp: Component, stepped: bool) -> None:
    """Raise if the step closed the IO; else put its outputs in the outbox ``write()`` sends."""
    io = comp.io
    if io._is_closed:
        raise IOStreamClosedError("Attempted write on a closed io controller.")
    if stepped:
        io._outbox = {f: getattr(comp, f, None) for f in io.outputs}


def _wrap_step(raw: _t.Callable[..., _t.Any]) -> _t.Callable[..., _t.Any]:
    """``step`` as plugboard runs it when called by hand: status ``running`` during the step,
    ``waiting`` after it and ``failed`` if it raises; with connected IO (``io.connect``) it
    reads the inputs first and writes the outputs after; a step on closed IO, or one that
    closes it, raises ``IOStreamClosedError``. Under an engine (and in ``super().step()``)
    it only calls the user's step."""
    if inspect.iscoroutinefunction(raw):
        @functools.wraps(raw)
        async def step(self: Component) -> None:
            if self._plugboard_beam_stepping:
                return await raw(self)  # type: ignore[no-any-return]
            if self._plugboard_beam_gated:
                return await StepGate(self, raw)
            if self._plugboard_beam_driven:
                return await raw(self)  # type: ignore[no-any-return]
            _before_step(self)
            io = self.io
            if io._in_channels or io._event_in:
                await io.read()
            ready = _bind_received(self)
            self._plugboard_beam_stepping = True
            try:
                await _handle_received_events(self)
                if ready and not io._is_closed:
                    await raw(self)
            except Exception:
                self._status = Status.FAILED
                raise
            finally:
                self._plugboard_beam_stepping = False
            _after_step(self, ready)
            await io.write()
            self._status = Status.WAITING
            return None
    else:
        @functools.wraps(raw)
        def step(self: Component) -> _t.Any:
            if self._plugboard_beam_stepping:
                return raw(self)
            if self._plugboard_beam_gated:
                return StepGate(self, raw)  # awaited by the component's own run()
            if self._plugboard_beam_driven:
                return raw(self)
            _before_step(self)
            ready = _bind_received(self)
            self._plugboard_beam_stepping = True
            try:
                if ready:
                    raw(self)
            except Exception:
                self._status = Status.FAILED
                raise
            finally:
                self._plugboard_beam_stepping = False
            _after_step(self, ready)
            self._status = Status.WAITING
            return None
    setattr(step, RAW, raw)
    return step


def raw_method(comp: Component, name: str) -> _t.Callable[[], _t.Any]:
    """``comp``'s own ``init``/``step`` without the hand-driven wrapper (what engines call)."""
    fn: _t.Any = getattr(type(comp), name)
    bound = getattr(comp, name)
    if getattr(bound, "__func__", None) is fn:  # the class's method (else one set on the instance)
        raw: _t.Any = getattr(fn, RAW, fn)
        return _t.cast("_t.Callable[[], _t.Any]", raw.__get__(comp))
    return _t.cast("_t.Callable[[], _t.Any]", bound)  # (a string: no typing subscript per call)


def has_value(comp: Component, name: str) -> bool:
    """Whether ``comp.<name>`` is set (without ``Component.__getattr__``'s None for unset
    public names, and without touching the instance's ``__dict__``: see ``Component``)."""
    try:
        object.__getattribute__(comp, name)
    except AttributeError:
        return False
    return True


def _exportable(value: _t.Any) -> _t.Any:
    """A constructor argument as ``export()`` records it (as plugboard: exportable objects by
    their ``export()``, pydantic models by ``model_dump()``, containers element-wise)."""
    if not isinstance(value, type) and hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump()
    if isinstance(value, Component):
        return value.export()
    if isinstance(value, dict):
        return {k: _exportable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exportable(v) for v in value]
    return value


def _recording_args(init: _t.Callable[..., None]) -> _t.Callable[..., None]:
    """``init`` that first records the arguments of the outermost constructor call (for
    ``Component.export()``)."""
    try:
        params = list(inspect.signature(init).parameters.values())[1:]
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(init)
    def __init__(self: Component, *args: _t.Any, **kwargs: _t.Any) -> None:
        if self._export_args is None:
            saved = {**dict(zip(positional, args, strict=False)), **kwargs} if args else kwargs
            # (plain values as they are, without a call each: most arguments are)
            self._export_args = {
                k: v if v is None or type(v) in (str, int, float, bool) else _exportable(v)
                for k, v in saved.items()}
        init(self, *args, **kwargs)

    return __init__


class _Resources:
    """``Component.resources``. On a class: what the class declares (a subclass's ``resources =
    Resource(...)`` is kept as its ``_declared_resources`` by ``__init_subclass__``). On an
    instance: what its constructor was given, else its own copy of its class's declaration,
    made on first read: most components' is never read, and the copy was a quarter of a
    component's construction (8.6 of 32 us, measured)."""

    def __get__(self, obj: _t.Optional[Component], owner: _t.Optional[type] = None) -> Resource:
        if obj is None:
            return _t.cast(Resource, _t.cast(_t.Any, owner)._declared_resources)
        res = obj._own_resources
        if res is None:
            res = obj._own_resources = _own_copy(type(obj)._declared_resources)
        return res

    def __set__(self, obj: Component, value: Resource) -> None:
        obj._own_resources = value


def _own_copy(res: Resource) -> Resource:
    """A copy of a class's ``Resource`` for one instance: its only mutable field (the
    ``resources`` dict) copied, as a deep copy would, at a fraction of a deep copy's cost.
    (Through pydantic's public ``model_copy``: setting its internal attributes by hand saved
    ~2 us a component, 0.09 s in 10,000 keys of 4, not worth depending on pydantic's internals.)"""
    if type(res) is not Resource:
        return res.model_copy(deep=True)  # a subclass may add fields of its own
    out = res.model_copy()
    out.__dict__["resources"] = dict(res.resources)
    return out


class Component:
    """Base class of every component in a process model.

    Subclasses declare ``io = IO(inputs=[...], outputs=[...])`` and implement ``step`` (and
    optionally ``init`` and ``destroy``); each may be ``async def`` or plain ``def``. Input
    fields are read and output fields written as plain attributes (``self.in_1``,
    ``self.out_1 = ...``). Reading a public attribute that was never set gives ``None``, as in
    plugboard 0.9.0 (whose ``Component.__getattr__`` does the same).

    ``status`` goes ``created`` -> ``init`` (after ``init()``) -> ``running`` (while the
    engine steps it) -> ``completed``, ``stopped`` (by a ``StopEvent``) or ``failed``.
    ``export()`` gives the class path and constructor arguments, ``dict()`` the state.
    """

    io: IOController = IOController()
    #: names of further attributes ``dict()`` reports under ``exports`` (merged along the MRO)
    exports: _t.Optional[list[str]] = None
    #: what an instance needs (``Resource``); a class may declare its own, the constructor's
    #: ``resources`` (a ``Resource`` or its dict) replaces it (``_Resources``)
    resources: Resource = _t.cast(Resource, _Resources())
    _declared_resources: _t.ClassVar[Resource] = Resource()
    _own_resources: _t.Optional[Resource] = None
    _event_io: _t.ClassVar[EventIO]
    #: ``event_field_coverage()``, worked out once per class (``__init_subclass__``)
    _coverage: _t.ClassVar[dict[str, list[str]]]
    # Defaults of what the engines and wrappers set on an instance, here so that reading them
    # never needs the instance's ``__dict__``: in CPython 3.12, touching an object's ``__dict__``
    # once makes every later attribute read and write on it 3-5x slower (its values move out of
    # the object's inline slots for good), and a user's step does little else
    # (``tests/test_component_dict.py``). Nothing here may read ``comp.__dict__``.
    _status: Status = Status.CREATED
    _export_args: _t.Optional[dict[str, _t.Any]] = None
    _plugboard_beam_stepping: bool = False
    _plugboard_beam_driven: bool = False
    _plugboard_beam_gated: bool = False
    #: the key (model instance) a component was built for (``spec/load.py``), "" by hand
    _plugboard_beam_key: str = ""
    #: its process's state backend has it (``state/process_link.py``)
    _state_is_connected: bool = False

    def __init__(
        self,
        *,
        name: str,
        initial_values: _t.Optional[dict[str, _t.Iterable[_t.Any]]] = None,
        parameters: _t.Optional[dict[str, _t.Any]] = None,
        state: _t.Any = None,
        constraints: _t.Optional[dict[str, _t.Any]] = None,
        resources: _t.Any = None,
    ) -> None:
        self.name = name
        self._status = Status.CREATED
        self._initial_values = {k: list(v) for k, v in (initial_values or {}).items()}
        self._parameters = dict(parameters or {})
        self._constraints = dict(constraints or {})
        self._state = state
        if resources is not None:  # (else a copy of the class's, made if read: ``_Resources``)
            self._own_resources = Resource.model_validate(resources)
        cls = type(self)
        cls_io = cls.io
        if self._initial_values:
            unknown = sorted(set(self._initial_values) - set(cls_io.inputs))
            if unknown:
                raise IOSetupError(
                    f"component '{name}': initial_values for {unknown}, which are not inputs of "
                    f"{cls.__name__} (inputs: {list(cls_io.inputs)})"
                )
        self.io = cls_io.bound(name, self._initial_values, cls._coverage)
        if cls._event_io.may_stop:
            self.io._out_types |= {StopEvent.type}

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        ComponentRegistry.add(cls)
        declared = cls.__dict__.get("resources")
        if isinstance(declared, Resource):  # served by Component's ``_Resources`` from now on
            cls._declared_resources = declared
            delattr(cls, "resources")
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_args(cls.__dict__["__init__"])  # type: ignore[method-assign]
        for meth, wrap in (("init", _wrap_init), ("step", _wrap_step)):
            fn = cls.__dict__.get(meth)
            if inspect.isfunction(fn) and not hasattr(fn, RAW):
                setattr(cls, meth, wrap(fn))
        exports: list[str] = []
        for klass in reversed(cls.__mro__):
            exports += [e for e in (klass.__dict__.get("exports") or ()) if e not in exports]
        cls.exports = sorted(exports)
        # Inherit fields declared by parent components (plugboard aggregates along the MRO).
        inputs: list[str] = []
        outputs: list[str] = []
        in_events: list[_t.Any] = []
        out_events: list[_t.Any] = []
        for klass in reversed(cls.__mro__):
            io = klass.__dict__.get("io")
            if isinstance(io, IOController):
                inputs += [f for f in io.inputs if f not in inputs]
                outputs += [f for f in io.outputs if f not in outputs]
                in_events += [e for e in io.input_events if e not in in_events]
                out_events += [e for e in io.output_events if e not in out_events]
        clash = sorted(set(inputs) & set(outputs))
        if clash:
            raise IOSetupError(f"{cls.__name__}: fields {clash} are declared as input and output")
        cls.io = IOController(inputs=inputs, outputs=outputs, input_events=in_events, output_events=out_events)
        for ev in (*in_events, *out_events):
            try:
                type_name(ev)
            except TypeError as exc:
                raise IOSetupError(f"{cls.__name__}: input_events/output_events: {exc}") from None
        handlers: dict[str, str] = {}
        may_stop = any(e is StopEvent for e in out_events)
        for klass in reversed(cls.__mro__):
            if klass is object:
                continue
            for attr, value in vars(klass).items():
                etype = getattr(getattr(value, "__func__", value), HANDLER_TYPE, None)
                if isinstance(etype, str):
                    handlers[etype] = attr
            if klass is not Component and not may_stop and _names_stop_event(klass):
                may_stop = True
        cls._event_io = EventIO(inputs=tuple(in_events), outputs=tuple(out_events),
                                handlers=handlers, may_stop=may_stop)
        cls._coverage = cls.event_field_coverage()

    @classmethod
    def event_field_coverage(cls) -> dict[str, list[str]]:
        """Event safe type -> the input fields its handler populates (``populates_fields``)."""
        coverage: dict[str, list[str]] = {}
        for etype, attr in cls.event_io().handlers.items():
            fn = getattr(cls, attr, None)
            populates = getattr(getattr(fn, RAW, fn), HANDLER_POPULATES, ())
            if populates:
                coverage[etype.replace(".", "_").replace("-", "_")] = list(populates)
        return coverage

    @classmethod
    def event_io(cls) -> EventIO:
        """What this class does with events (see ``EventIO``)."""
        return cls._event_io

    @property
    def status(self) -> Status:
        """``created``, ``init``, ``running``, ``completed``, ``stopped`` or ``failed``."""
        return self._status

    async def _set_status(self, status: Status, publish: bool = True) -> None:
        """Set the status; with ``publish``, store the component in its process's state
        backend (once the process has connected it)."""
        self._status = status
        state = getattr(self, "_state", None)
        if publish and state is not None and self._state_is_connected:
            await state.upsert_component(self)

    @StopEvent.handler
    async def _stop_handler(self, event: StopEvent) -> None:
        """Built-in: a ``StopEvent`` closes this component's IO (it steps no more)."""
        self.io._stopped = True
        await self.io.close()

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        """The fields of an instance built with ``args`` (for validation before construction).

        Most components declare fixed fields on the class; a component whose fields depend on
        its arguments (e.g. ``PubSubReader(fields=[...])``) overrides this.
        """
        return cls.io

    def __getattr__(self, key: str) -> _t.Any:
        # Only called when normal lookup fails: unset public fields read as None (as in plugboard).
        if not key.startswith("_"):
            return None
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{key}'")

    @property
    def _logger(self) -> structlog.stdlib.BoundLogger:
        """plugboard's structlog logger: ``self._logger.info("message", x=1)``, bound to the
        component's name (``component``) and class (``cls``) and, while an engine runs it, to the
        key, the step and the job id (``plugboard_beam.logs``); its records go through Python
        logging (logger ``plugboard_beam.component``). Made on use, so components stay picklable."""
        return component_logger(self)

    @property
    def id(self) -> str:
        """Unique id of the component within its process: its name."""
        return self.name

    @property
    def parameters(self) -> dict[str, _t.Any]:
        """The component's parameters: its own, merged (before ``init()``) over its process's."""
        return self._parameters

    def merge_process_parameters(self, parameters: _t.Mapping[str, _t.Any]) -> None:
        """Take the process's ``parameters`` under this component's own (the component's value
        wins for a name both give), as plugboard does when a process connects its components.
        Every engine calls it once the component is built and before its ``init()``."""
        self._parameters = {**parameters, **(getattr(self, "_parameters", None) or {})}

    @property
    def initial_values(self) -> dict[str, list[_t.Any]]:
        """Seeds of the input fields."""
        return self._initial_values

    async def init(self) -> None:
        """Called once before the first step."""

    async def step(self) -> None:
        """Called once per step; override it."""

    async def destroy(self) -> None:
        """Called once at the end, also after a failure."""

    async def cancel(self) -> None:
        """Mark the component ``stopped`` (plugboard's ``cancel``, called when its process's
        run is cancelled)."""
        self._status = Status.STOPPED

    @engine_run
    async def run(self) -> None:
        """Step until the IO closes (``IOStreamClosedError``), as plugboard's
        ``Component.run``; the status ends ``completed`` unless it stopped or failed."""
        self._status = Status.RUNNING
        while True:
            try:
                res = self.step()
                if inspect.isawaitable(res):
                    await res
            except IOStreamClosedError:
                break
        if self.status not in (Status.STOPPED, Status.FAILED):
            self._status = Status.COMPLETED

    def export(self) -> dict[str, _t.Any]:
        """``{"type": <class import path>, "args": <constructor arguments>}``: enough to build
        the component again (plugboard's ``export()``)."""
        cls = type(self)
        args = self._export_args
        if args is None:  # built by Component.__init__ directly, or without calling it
            args = {"name": getattr(self, "name", None)}
        return {"type": f"{cls.__module__}.{cls.__name__}", "args": copy.deepcopy(args)}

    def dict(self) -> dict[str, _t.Any]:
        """The component's state as plugboard's ``dict()``: ``__export``, ``id``, ``name``,
        ``status``, the ``input`` and ``output`` field values, ``exports`` and ``io``."""
        return copy.deepcopy({
            "__export": self.export(),
            "id": self.id,
            "name": self.name,
            "status": str(self.status),
            "input": {k: getattr(self, k, None) for k in self.io.inputs},
            "output": {k: getattr(self, k, None) for k in self.io.outputs},
            "exports": {k: getattr(self, k, None) for k in self.exports or []},
            "io": self.io.dict(),
        })

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ComponentRegistry(ClassRegistry[Component]):
    """Component classes, registered as they are defined (plugboard's ``ComponentRegistry``):
    ``ComponentRegistry.get("my_module.MyComponent")``, or ``get("MyComponent")`` while only one
    registered class has that name; a function component (``@component``) also by its function's
    name. Unknown names raise ``RegistryError``."""


def check_component_class(obj: object) -> _t.Optional[str]:
    """Why ``obj`` cannot be used as a component class, or ``None`` if it can."""
    if not isinstance(obj, type) or not issubclass(obj, Component):
        return "is not a Component subclass"
    if obj is Component:
        return "is the abstract Component base class"
    return None


# The base class's own init/step get the hand-driven wrappers too (subclasses get theirs in
# __init_subclass__).
Component.init = _wrap_init(Component.__dict__["init"])  # type: ignore[method-assign]
Component.step = _wrap_step(Component.__dict__["step"])  # type: ignore[method-assign]
Component._event_io = EventIO(inputs=(), outputs=(), handlers={StopEvent.type: "_stop_handler"}, may_stop=False)
Component._coverage = Component.event_field_coverage()
