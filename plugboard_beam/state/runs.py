"""A command-line run's status in the state backend a model file names (``state:`` in the
process args, as plugboard's ``StateBackendSpec``: ``type`` and ``args``).

At the start the runner creates (or joins) the job and stores the process (status
``running``, its components and connectors); each key writes its own row when it starts and
when it ends (the local runner here, the Beam stages from their DoFns: no state round trip per
step); at the end the process gets ``completed`` or ``failed``. ``StateTarget`` is plain,
picklable data: the Beam DoFns build their backend from it on the workers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import inspect
import logging
from pathlib import Path
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.schemas import Status
from plugboard_beam.state import backend_class
from plugboard_beam.state.backend import StateBackend, failure_entry
from plugboard_beam.state.dict_backend import DictStateBackend
from plugboard_beam.state.ids import choose_job_id, is_job_id

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateTarget:
    """Where a run writes its status: the backend (``type``, ``args``), the job, the process
    and its components."""

    type: str
    args: dict[str, _t.Any]
    job_id: str
    process: str
    components: tuple[str, ...]
    connectors: dict[str, dict[str, _t.Any]] = field(default_factory=dict)
    parameters: dict[str, _t.Any] = field(default_factory=dict)

    @classmethod
    def of(cls, model: LoadedModel, runner: str, job_id: _t.Optional[str] = None) -> _t.Optional[StateTarget]:
        """The model's ``state:`` for a run on ``runner`` (None when it names none); a
        ``UserError`` naming the YAML line for a backend that cannot work there."""
        args_spec = model.config.plugboard.process.args
        if "state" not in args_spec.model_fields_set:  # a StateBackendSpec, defaulted when not given
            return None
        spec = args_spec.state.model_dump(exclude_unset=True)
        line = model.lines.of(("plugboard", "process", "args", "state"))
        where = f"{model.path.name}" + (f", line {line}" if line else "")
        if not isinstance(spec, dict) or not isinstance(spec.get("type", ""), str) \
                or not isinstance(spec.get("args", {}), dict):
            raise UserError(f"{where}: state: give 'type' (a state backend) and 'args' (a mapping)")
        type_path = spec.get("type", "plugboard_beam.state.DictStateBackend")
        try:
            klass = backend_class(type_path)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        args = dict(spec.get("args", {}))
        given = args.pop("job_id", None)
        job = job_id or given
        if job is not None and (not isinstance(job, str) or not is_job_id(job)):
            raise UserError(f"{where}: state: job_id {job!r} is not a job id ('Job_' and at least 8 letters "
                            "or digits)")
        try:
            job = choose_job_id(job)  # else $PLUGBOARD_JOB_ID, else a new one
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{where}: state: {exc}") from None
        if runner != "local" and issubclass(klass, DictStateBackend):
            raise UserError(f"{where}: state: a DictStateBackend lives in one process's memory, which a Beam "
                            f"run (--runner {runner}) does not share: use SqliteStateBackend (a file) or "
                            "PostgresStateBackend")
        from plugboard_beam.state.sql_backend import SqliteStateBackend

        if runner == "dataflow" and issubclass(klass, SqliteStateBackend):
            raise UserError(f"{where}: state: a SqliteStateBackend file would be on each Dataflow worker's "
                            "disk: use a PostgresStateBackend the workers can reach")
        takes = [p for p in inspect.signature(klass.__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)] + ["metadata"]
        names = [p if isinstance(p, str) else p.name for p in takes]
        unknown = sorted(set(args) - set(names))
        if unknown:
            raise UserError(f"{where}: state: {type_path} takes {', '.join(names)} and job_id, not "
                            f"{', '.join(unknown)}")
        if issubclass(klass, SqliteStateBackend) and isinstance(args.get("db_path", ""), str):
            # relative to the working folder, as plugboard; absolute for the Beam workers
            args["db_path"] = str(Path(args.get("db_path", "plugboard.db")).resolve())
        try:
            klass(**args)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: state: {type_path} args: {exc}") from None
        connectors = {c.id: {"id": c.id, "spec": c.model_dump()} for c in args_spec.connectors}
        return cls(type=type_path, args=args, job_id=job, process=model.graph.name or args_spec.name or "process",
                   components=tuple(n.name for n in model.graph.nodes), connectors=connectors,
                   parameters=dict(args_spec.parameters))

    def backend(self) -> StateBackend:
        """A backend of this job (not initialised: the job exists once ``start`` ran)."""
        return backend_class(self.type)(**self.args, job_id=self.job_id)


class _ModelProcess:
    """A model file's process as a state backend stores it (its components are not built here)."""

    def __init__(self, target: StateTarget, status: Status) -> None:
        self.id = target.process
        self.status = status
        self.target = target
        self.components: dict[str, _t.Any] = {}
        self.connectors: dict[str, _t.Any] = {}

    def dict(self) -> dict[str, _t.Any]:
        return {"id": self.id, "name": self.id, "status": str(self.status),
                "components": {c: {} for c in self.target.components},
                "connectors": dict(self.target.connectors), "parameters": dict(self.target.parameters)}


def start(target: StateTarget) -> StateBackend:
    """Create (or join) the job and store the process as ``running``."""
    backend = target.backend()

    async def go() -> None:
        await backend.init()
        await backend.upsert_process(_ModelProcess(target, Status.RUNNING), with_components=True)
    try:
        asyncio.run(go())
    except Exception as exc:
        raise UserError(f"state: cannot write to {target.type}: {type(exc).__name__}: {exc}") from None
    return backend


def finish(backend: StateBackend, target: StateTarget, failed: bool) -> None:
    """The run ended: the process ``completed`` or ``failed``."""
    async def go() -> None:
        await backend.update_process_status(target.process, Status.FAILED if failed else Status.COMPLETED)
        await backend.destroy()
    try:
        asyncio.run(go())
    except Exception as exc:  # the run's own outcome stands; the state is incomplete and the log says so
        log.error("state: could not write the end of process %r (job %s) to %s: %s: %s", target.process,
                  target.job_id, target.type, type(exc).__name__, exc)


class KeyReporter:
    """What one worker (the local runner, a Beam stage's DoFn) writes per key: a row when a
    key starts and when it ends. A write that fails is logged (key, reason) and the run goes on."""

    def __init__(self, target: StateTarget, members: _t.Sequence[str] = ()) -> None:
        self.target = target
        self.members = tuple(members) or target.components
        self._backend: _t.Optional[StateBackend] = None

    def _write(self, key: str, components: _t.Mapping[str, str], failures: _t.Sequence[_t.Any]) -> None:
        try:
            if self._backend is None:
                self._backend = self.target.backend()
            self._backend.record_key(self.target.process, key, components, [failure_entry(f) for f in failures],
                                     expected=self.target.components)
        except Exception as exc:  # the model's run goes on; the state is incomplete and says so in the log
            log.error("state: could not write the row of key %r of process %r (job %s) to %s: %s: %s", key,
                      self.target.process, self.target.job_id, self.target.type, type(exc).__name__, exc)

    def started(self, key: str) -> None:
        """Key ``key`` starts here: its members are ``running``."""
        self._write(key, {m: str(Status.RUNNING) for m in self.members}, ())

    def ended(self, key: str, statuses: _t.Mapping[str, _t.Any], failures: _t.Sequence[_t.Any] = ()) -> None:
        """Key ``key`` ended here: its members' statuses and its failures (``StepError`` s or
        ``Failure`` s)."""
        self._write(key, {m: str(statuses.get(m, Status.FAILED if failures else Status.COMPLETED))
                          for m in self.members}, failures)
