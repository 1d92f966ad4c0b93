"""``LocalProcess``: run a model built in Python, in this process (plugboard 0.9.0 compatible)."""

from __future__ import annotations

import asyncio
import builtins
from concurrent.futures import ThreadPoolExecutor
import contextvars
from pathlib import Path
import signal
import threading
import typing as _t

from that_depends import ContextScopes, container_context

from plugboard_beam.component.component import Component
from plugboard_beam.connector import Connector, is_event_connector
from plugboard_beam.events.connectors import EventConnector
from plugboard_beam.exceptions import NotInitialisedError, StepError, UserError
from plugboard_beam.graph.model import ModelGraph
from plugboard_beam.process.errors import InvalidComponents, grouped, unconstructed
from plugboard_beam.process.process import process_errors
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import finish
from plugboard_beam.schemas import ConfigSpec, ProcessSpec, Status
from plugboard_beam.spec.errors import ModelError, Problem
from plugboard_beam.spec.events import add_events
from plugboard_beam.spec.load import graph_from_components
from plugboard_beam.state import DictStateBackend, StateBackend, build_state
from plugboard_beam.state.process_link import ProcessStateLink
from plugboard_beam.utils.di import DI


class _Stopped(Exception):
    """The engine thread was asked to stop (the caller was cancelled)."""


class Process:
    """Base class of processes (plugboard's ``Process``): ``LocalProcess`` runs one in this
    process; Beam runners run models from their YAML (``plugboard-beam process run``)."""


class RayProcess(Process):
    """plugboard's Ray process: Beam plays Ray's role here, so constructing one is refused with
    what to use instead (a model file naming it runs on Beam: ``process run``)."""

    def __init__(self, *args: _t.Any, **kwargs: _t.Any) -> None:
        raise UserError(
            "RayProcess runs a model on Ray in plugboard; plugboard_beam runs it on Apache Beam "
            "instead: use LocalProcess in Python, or run the model's YAML with "
            "`plugboard-beam process run` on the DirectRunner (--runner direct) or Dataflow "
            "(--runner dataflow)."
        )


class LocalProcess(Process):
    """Runs components in this process with the shared step engine.

    ``async with process: await process.run()`` calls ``init`` on entry and ``destroy`` on exit,
    as in plugboard. The engine runs on a private thread, so the caller's event loop stays free.
    """

    def __init__(
        self,
        components: _t.Iterable[Component],
        connectors: _t.Iterable[_t.Union[Connector, EventConnector]],
        name: _t.Optional[str] = None,
        parameters: _t.Optional[dict[str, _t.Any]] = None,
        state: _t.Optional[StateBackend] = None,
    ) -> None:
        self.name = name or "process"
        # plugboard's default: a DictStateBackend (see plugboard_beam.state for persistent ones)
        self._state_link = ProcessStateLink(state if state is not None else DictStateBackend())
        self._reported = False
        self.parameters = dict(parameters or {})
        comps = list(components)
        # Event connectors (EventConnectorBuilder, ConnectorBuilder.build_event_connectors) are
        # declarations: the graph derives event edges from the components' events. Those built
        # as connectors are listed in ``connectors`` with the field ones, as plugboard lists them.
        given = [c for c in connectors if not isinstance(c, EventConnector)]
        conns = [c for c in given if not is_event_connector(c)]
        self.components: dict[str, Component] = {c.name: c for c in comps}
        self.connectors: dict[str, Connector] = {c.id: c for c in given}
        self._field_connectors = conns
        # Validated here, reported by ``init()`` as plugboard does (a ``ValidationError``, here
        # the ``ModelError`` listing every problem): a broken model never starts.
        self._invalid: _t.Optional[_t.Union[ModelError, InvalidComponents]] = None
        broken = unconstructed(comps)
        #: inputs without a connector: reported by init() if plugboard's validate_process agrees
        self._unconnected: list[Problem] = []
        try:
            if broken:  # the model cannot even be read: init() says which component
                raise InvalidComponents(broken)
            self.graph = add_events(graph_from_components(comps, [c.spec for c in conns], self.name,
                                                          unconnected=self._unconnected),
                                    {c.name: type(c) for c in comps})
        except (ModelError, InvalidComponents) as exc:
            self._invalid = exc
            self.graph = ModelGraph(nodes=(), edges=(), name=self.name)
        self._engine = Engine(self.graph, self.components if self._invalid is None else {})
        self._pool: _t.Optional[ThreadPoolExecutor] = None
        self._stop = threading.Event()
        self._initialised = False
        self._status = Status.CREATED

    @property
    def id(self) -> str:
        """The process's name."""
        return self.name

    @property
    def status(self) -> Status:
        """``created`` -> ``init`` -> ``running`` (``waiting`` between ``step()`` calls) ->
        ``completed``, ``stopped`` (cancelled, SIGINT) or ``failed``, as plugboard's."""
        return self._status

    @property
    def is_initialised(self) -> bool:
        """Whether ``init()`` has run (and ``destroy()`` not yet)."""
        return self._initialised

    async def _in_thread(self, fn: _t.Callable[[], _t.Any]) -> _t.Any:
        """``fn()`` on the engine's thread, in the caller's context (contextvars) and, once the
        state backend has a job, in plugboard's ``DI`` container context with that job id (so
        ``DI.job_id.resolve_sync()`` in a component gives the run's job id, as in plugboard)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plugboard-beam")
        job_id = self._state_link.state.job_id
        ctx = contextvars.copy_context()

        def call() -> _t.Any:
            if job_id is None:
                return fn()
            with container_context(DI, global_context={"job_id": job_id}, scope=ContextScopes.APP):
                return fn()

        return await asyncio.get_running_loop().run_in_executor(self._pool, ctx.run, call)

    def _guarded(self, fn: _t.Callable[[], _t.Any]) -> _t.Callable[[], None]:
        """``fn`` under the failure protocol: a component that raises stops the run, the
        others consume what they already received, then every component is destroyed; the
        ``StepError`` (with the later ones as ``also``) is raised, as on every other engine."""

        def call() -> None:
            try:
                fn()
            except StepError as err:
                err.also = finish(self._engine, err)[1:]
                raise

        return call

    async def init(self) -> None:
        """Validate the model (raise ``ValidationError``, as plugboard: unconnected inputs,
        unseeded loops, unknown fields, ...), merge the process's ``parameters`` under each
        component's own (the component's value wins, as in plugboard), then call ``init()``
        on every component."""
        if self._invalid is not None:
            raise self._invalid
        if self._unconnected and process_errors(self):
            raise ModelError(self._unconnected, self.name)
        for comp in self.components.values():
            comp.merge_process_parameters(self.parameters)
        await self.connect_state()
        try:
            await self._in_thread(self._guarded(self._engine.init))
        except StepError as err:
            await self._ended([err, *err.also])
            raise grouped(err) from err.__cause__
        self._initialised = True
        self._status = Status.INIT
        await self._state_link.publish(self)

    def _check_initialised(self) -> None:
        if not self._initialised:
            raise NotInitialisedError("Process must be initialised before running")

    async def step(self) -> None:
        """Step every component once, as far as its inputs allow (a source steps once, a
        component whose inputs got a value steps on it), through the step engine; the status is
        ``waiting`` after it, or ``failed`` (and the ``StepError`` raised)."""
        self._check_initialised()
        self._status = Status.RUNNING
        engine = self._engine

        def one_round() -> None:
            burst = engine.burst
            engine.burst = 1
            try:
                engine.run(max_rounds=1)
            finally:
                engine.burst = burst

        try:
            await self._in_thread(self._guarded(one_round))
        except StepError as err:
            self._status = Status.FAILED
            raise grouped(err) from err.__cause__
        except BaseException:
            self._status = Status.FAILED if self._failed() else Status.STOPPED
            raise
        self._status = Status.WAITING

    async def run(self) -> None:
        """Step every component until all have ended; the status ends ``completed``, ``failed``
        (the ``StepError`` raised) or ``stopped``.

        ``cancel()``, SIGINT while it runs (as plugboard installs a handler for it) and
        cancelling the caller stop the engine thread within a fraction of a second; components
        that had not ended are ``stopped``, and ``destroy()`` (on leaving ``async with``) runs
        soon."""
        self._check_initialised()
        self._status = Status.RUNNING
        self._stop.clear()
        loop = asyncio.get_running_loop()
        handled = False
        try:
            loop.add_signal_handler(signal.SIGINT, self.cancel)
            handled = True
        except (NotImplementedError, ValueError, RuntimeError):
            pass  # not the main thread, or no signal support: Ctrl-C cancels the caller instead
        await self._state_link.publish(self)
        try:
            await self._in_thread(self._guarded(self._run_engine))
        except StepError as err:
            await self._ended([err, *err.also])
            raise grouped(err) from err.__cause__
        except BaseException:
            self._stop.set()
            if self._status is Status.RUNNING:
                self._status = Status.FAILED if self._failed() else Status.STOPPED
            raise
        finally:
            if handled:
                loop.remove_signal_handler(signal.SIGINT)
        if self._status is Status.RUNNING:
            self._status = Status.COMPLETED
        await self._ended([])

    async def _ended(self, errors: list[StepError]) -> None:
        """The run ended (``errors``: why it failed): the state backend is told (components,
        process status, the key row)."""
        if errors:
            self._status = Status.FAILED
        self._reported = True
        await self._state_link.ended(self, errors)

    def _failed(self) -> bool:
        return any(c.status is Status.FAILED for c in self.components.values())

    def cancel(self) -> None:
        """Stop the run: the engine stops between steps, components that had not ended are
        ``stopped``, and so is the process (plugboard's ``cancel``, also SIGINT's handler)."""
        self._stop.set()
        self._status = Status.STOPPED

    def _run_engine(self) -> None:
        def check(engine: Engine) -> None:
            if self._stop.is_set():
                raise _Stopped("the run was cancelled")

        try:
            self._engine.run(check, progress_every=0.1)
        except _Stopped:
            for comp in self.components.values():  # as plugboard's cancel: unfinished ones stop
                if not comp.status.is_terminal:
                    comp._status = Status.STOPPED
            return
        if self._stop.is_set():  # cancelled during the last round
            for comp in self.components.values():
                if not comp.status.is_terminal:
                    comp._status = Status.STOPPED

    def export(self) -> dict[str, _t.Any]:
        """``{"type": ..., "args": {components, connectors, name, parameters}}``: the spec of
        this process (plugboard's ``export()``); event connectors are derived from the
        components' events when the spec is read (here and by plugboard's ``ProcessBuilder``),
        so left out."""
        return {
            "type": f"{type(self).__module__}.{type(self).__name__}",
            "args": {
                "name": self.name,
                "components": [c.export() for c in self.components.values()],
                "connectors": [c.spec.model_dump(mode="json") for c in self._field_connectors],
                "parameters": dict(self.parameters),
            },
        }

    def dict(self) -> dict[str, _t.Any]:
        """The process's state: ``id``, ``name``, ``status``, each component's and connector's
        ``dict()``, ``parameters`` (plugboard's ``dict()``)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": str(self.status),
            "components": {k: v.dict() for k, v in self.components.items()},
            "connectors": {k: v.dict() for k, v in self.connectors.items()},
            "parameters": self.parameters,
        }

    def dump(self, path: _t.Union[Path, str]) -> None:
        """Write the process as a model file (``plugboard: process: ...``) for
        ``plugboard-beam process run``; ``ValueError`` unless ``path`` ends ``.yaml``/``.yml``."""
        import yaml

        yaml_path = Path(path)
        if yaml_path.suffix.lower() not in {".yaml", ".yml"}:
            raise ValueError("Path must have a .yaml/.yml extension")
        spec = ConfigSpec.model_validate({"plugboard": {"process": self.export()}})
        yaml_path.parent.mkdir(parents=True, exist_ok=True)
        # only what was set: the defaults (an in-memory DictStateBackend among them) are the reader's own,
        # and a Beam runner refuses a state backend it cannot share between workers
        yaml_path.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True), sort_keys=False))

    async def destroy(self) -> None:
        """Call ``destroy()`` on every component (once; after a failure it already ran)."""
        errors: list[StepError] = await self._in_thread(lambda: finish(self._engine))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._status == Status.STOPPED and not self._reported:
            await self._ended([])  # the run was cancelled
        await self._state_link.close(self)
        self._initialised = False
        if errors:
            errors[0].also = errors[1:]
            raise grouped(errors[0]) from errors[0].__cause__

    async def __aenter__(self) -> LocalProcess:
        await self.init()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    def steps(self) -> builtins.dict[str, int]:
        """Steps done so far, per component."""
        return self._engine.steps()

    # plugboard's state API (plugboard_beam.state)
    @property
    def state(self) -> StateBackend:
        """The state backend the process reports to."""
        return self._state_link.state

    async def connect_state(self, state: _t.Optional[StateBackend] = None) -> None:
        """Start the state backend's job and store the process, its components and connectors
        (``init()`` does it; ``state`` replaces the backend given at construction)."""
        await self._state_link.connect(self, state)


class ProcessBuilder:
    """Builds a ``LocalProcess`` from a ``ProcessSpec`` (plugboard 0.9.0 compatible). Component
    ``type`` paths are imported from the working folder and the Python path; the spec is checked
    like a model file (every problem at once, ``ModelError``)."""

    @staticmethod
    def build(spec: ProcessSpec) -> LocalProcess:
        """The process of ``spec``: its components built, connected in this process."""
        from pathlib import Path

        import yaml

        from plugboard_beam.connector import AsyncioConnector
        from plugboard_beam.spec.keys import DEFAULT_KEY
        from plugboard_beam.spec.load import load_model

        text = yaml.safe_dump({"plugboard": {"process": spec.model_dump(mode="json")}}, sort_keys=False)
        model = load_model(Path.cwd() / f"{spec.args.name or 'process'}.yaml", text=text)
        components = model.build_components(DEFAULT_KEY)
        connectors: list[Connector] = [AsyncioConnector(spec=c) for c in model.config.plugboard.process.args.connectors]
        # as plugboard's builder: the event connectors of the components' events (system_stop too)
        connectors += AsyncioConnector.builder().build_event_connectors(components.values())
        return LocalProcess(components=list(components.values()), connectors=connectors, name=spec.args.name,
                            parameters=dict(spec.args.parameters), state=build_state(spec.args.state))


__all__ = ["LocalProcess", "Process", "ProcessBuilder", "RayProcess"]
