"""``StateBackend``: where a run's job, process, component and connector status is kept
(plugboard 0.9.0's API), and plugboard_beam's rows per key (what each key of a run did).

Entity ids (a process's or component's) are stored prefixed with the job id
(``<job_id>:<entity id>``), so several jobs share one database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from datetime import UTC, datetime
from types import TracebackType
import typing as _t

from plugboard_beam.exceptions import NotFoundError
from plugboard_beam.schemas import Status
from plugboard_beam.state.ids import choose_job_id

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component
    from plugboard_beam.connector import Connector


class StatefulProcess(_t.Protocol):
    """What a backend reads from a process (``LocalProcess``)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> Status: ...

    @property
    def components(self) -> _t.Mapping[str, Component]: ...

    @property
    def connectors(self) -> _t.Mapping[str, Connector]: ...

    def dict(self) -> dict[str, _t.Any]: ...


def now_iso() -> str:
    """The current time (UTC) in ISO 8601."""
    return datetime.now(UTC).isoformat()


def failure_entry(failure: _t.Any) -> dict[str, _t.Any]:
    """What a key row keeps of a failure (``runtime.failure.Failure`` or ``StepError``):
    component, step, phase, error type and reason."""
    return {
        "component": failure.component,
        "step": failure.step,
        "phase": failure.phase,
        "error_type": getattr(failure, "error_type", ""),
        "reason": getattr(failure, "reason", None) or getattr(failure, "error_message", ""),
    }


def key_status(components: _t.Mapping[str, str], failures: _t.Sequence[_t.Mapping[str, _t.Any]],
               expected: _t.Collection[str]) -> str:
    """A key's status from its components': ``failed`` if anything failed, ``completed`` once
    every expected component has ended, else ``running``."""
    if failures or any(s == Status.FAILED for s in components.values()):
        return str(Status.FAILED)
    if set(expected) <= set(components) and all(Status(s).is_terminal for s in components.values()):
        return str(Status.COMPLETED)
    return str(Status.RUNNING)


def merge_key_row(old: _t.Optional[_t.Mapping[str, _t.Any]], components: _t.Mapping[str, str],
                  failures: _t.Sequence[_t.Mapping[str, _t.Any]], expected: _t.Collection[str]
                  ) -> dict[str, _t.Any]:
    """A key's row after one more report (a stage of a Beam run reports its own components):
    component statuses updated, failures added, status recomputed (``key_status``)."""
    comps = {**(old["components"] if old else {}), **{k: str(v) for k, v in components.items()}}
    fails = list(old["failures"]) if old else []
    fails += [dict(f) for f in failures if dict(f) not in fails]
    expected_all = sorted(set(old["expected"] if old else ()) | set(expected))
    now = now_iso()
    return {
        "status": key_status(comps, fails, expected_all),
        "components": comps,
        "failures": fails,
        "expected": expected_all,
        "started_at": old["started_at"] if old else now,
        "updated_at": now,
    }


class StateBackend(ABC):
    """Keeps the status of jobs, processes, components and connectors (plugboard's
    ``StateBackend``: ``init``/``destroy`` or ``async with``, ``upsert_*``/``get_*``,
    ``update_process_status``, ``get_process_status(_for_component)``).

    ``job_id`` names the run (``Job_`` and 8 or more letters or digits; when not given,
    ``$PLUGBOARD_JOB_ID``, else a fresh one; a ``RuntimeError`` from ``init`` when both are set
    and differ); ``metadata`` is merged into the job's. plugboard_beam adds rows per key
    (``upsert_key``/``get_keys``): each key of a run, its status, its components' statuses
    and its failures (component, step, phase, reason)."""

    _id_separator: str = ":"

    def __init__(self, job_id: _t.Optional[str] = None, metadata: _t.Optional[dict[str, _t.Any]] = None,
                 **kwargs: _t.Any) -> None:
        self._local_state: dict[str, _t.Any] = {"job_id": job_id, "metadata": metadata, **kwargs}
        self._initialised_with_job_id = False

    # ------------------------------------------------------------------ lifecycle
    async def init(self) -> None:
        """Create the job (or join the existing one of ``job_id``, merging ``metadata``)."""
        job_id = self._local_state.pop("job_id", None)
        self._initialised_with_job_id = job_id is not None
        job_id = choose_job_id(job_id)
        metadata = self._local_state.get("metadata")
        await self._initialise_data(job_id, metadata)

    async def _initialise_data(self, job_id: str, metadata: _t.Optional[dict[str, _t.Any]]) -> None:
        try:
            job = await self._get_job(job_id)
            if metadata:
                job.setdefault("metadata", {}).update(metadata)
                await self._upsert_job(job)
        except NotFoundError:
            job = {"job_id": job_id, "created_at": now_iso(), "metadata": metadata or {}}
            await self._upsert_job(job)
        self._local_state.update(job)

    async def destroy(self) -> None:
        """Release what the backend holds (a job id it made is forgotten: ``init`` makes a new one)."""
        if not self._initialised_with_job_id:
            self._local_state["job_id"] = None

    async def __aenter__(self) -> StateBackend:
        await self.init()
        return self

    async def __aexit__(self, exc_type: _t.Optional[type[BaseException]], exc: _t.Optional[BaseException],
                        tb: _t.Optional[TracebackType]) -> None:
        await self.destroy()

    # ------------------------------------------------------------------ job
    @property
    def job_id(self) -> str:
        """The job's id."""
        return _t.cast(str, self._local_state.get("job_id"))

    @property
    def created_at(self) -> str:
        """When the job was created (ISO 8601)."""
        return str(self._local_state["created_at"])

    @property
    def metadata(self) -> dict[str, _t.Any]:
        """The job's metadata."""
        meta: dict[str, _t.Any] = self._local_state["metadata"]
        return meta

    async def _upsert_job(self, job_data: dict[str, _t.Any]) -> None:
        """Store the job's data (the dict backend keeps it in ``_local_state`` only)."""
        self._local_state.update(job_data)

    async def _get_job(self, job_id: str) -> dict[str, _t.Any]:
        """The job's data, or ``NotFoundError``."""
        raise NotFoundError(f"Job with id {job_id} not found.")

    # ------------------------------------------------------------------ ids
    def _get_db_id(self, entity_id: str) -> str:
        """``<job_id>:<entity_id>`` (an id that already carries this job's id is kept)."""
        parts = entity_id.split(self._id_separator)
        if len(parts) == 1:
            return f"{self.job_id}{self._id_separator}{entity_id}"
        if len(parts) != 2:
            raise ValueError(f"Invalid entity id: {entity_id}")
        if parts[0] != self.job_id:
            raise ValueError(f"Entity id {entity_id} does not belong to job {self.job_id}")
        return entity_id

    def _strip_job_id(self, db_id: str) -> str:
        """The entity id of a stored id of this job."""
        parts = db_id.split(self._id_separator)
        if len(parts) != 2:
            raise ValueError(f"Invalid database id: {db_id}")
        if parts[0] != self.job_id:
            raise ValueError(f"Database id {db_id} does not belong to job {self.job_id}")
        return parts[1]

    # ------------------------------------------------------------------ nested key/value store
    @abstractmethod
    async def _get(self, key: str | tuple[str, ...], value: _t.Optional[_t.Any] = None) -> _t.Any:
        """The value at ``key`` (a nested path as a tuple), or ``value``."""

    @abstractmethod
    async def _set(self, key: str | tuple[str, ...], value: _t.Any) -> None:
        """Set the value at ``key`` (a nested path as a tuple)."""

    @classmethod
    def _process_key(cls, process_id: str) -> tuple[str, ...]:
        return ("processes", process_id)

    @classmethod
    def _component_key(cls, process_id: str, component_id: str) -> tuple[str, ...]:
        return (*cls._process_key(process_id), "components", component_id)

    @classmethod
    def _connector_key(cls, process_id: str, connector_id: str) -> tuple[str, ...]:
        return (*cls._process_key(process_id), "connectors", connector_id)

    # ------------------------------------------------------------------ processes, components, connectors
    async def upsert_process(self, process: StatefulProcess, with_components: bool = False) -> None:
        """Store the process (``process.dict()``); its components' and connectors' data too
        with ``with_components``, else empty entries that ``upsert_component`` fills."""
        data = process.dict()
        if not with_components:
            data["components"] = {k: {} for k in data["components"]}
            data["connectors"] = {k: {} for k in data["connectors"]}
        await self._set(self._process_key(process.id), data)
        await self.update_process_status(process.id, process.status)
        comp_map = await self._get("_comp_proc_map", {})
        comp_map.update({c.id: process.id for c in process.components.values()})
        await self._set("_comp_proc_map", comp_map)
        conn_map = await self._get("_conn_proc_map", {})
        conn_map.update({c.id: process.id for c in process.connectors.values()})
        await self._set("_conn_proc_map", conn_map)

    async def get_process(self, process_id: str) -> dict[str, _t.Any]:
        """The stored data of a process, with its components' and connectors'."""
        data: _t.Optional[dict[str, _t.Any]] = await self._get(self._process_key(process_id))
        if data is None:
            raise NotFoundError(f"Process with id {process_id} not found.")
        return data

    async def _get_process_id_for_component(self, component_id: str) -> str:
        process_id: _t.Optional[str] = await self._get(("_comp_proc_map", component_id))
        if process_id is None:
            raise NotFoundError(f"No process found for component with ID {component_id}")
        return process_id

    async def _get_process_id_for_connector(self, connector_id: str) -> str:
        process_id: _t.Optional[str] = await self._get(("_conn_proc_map", connector_id))
        if process_id is None:
            raise NotFoundError(f"No process found for connector with ID {connector_id}")
        return process_id

    async def get_process_for_component(self, component_id: str) -> dict[str, _t.Any]:
        """The process a component belongs to."""
        return await self.get_process(await self._get_process_id_for_component(component_id))

    async def upsert_component(self, component: Component) -> None:
        """Store a component's ``dict()`` (its process must be stored first); a failed
        component marks its process failed."""
        process_id = await self._get_process_id_for_component(component.id)
        await self._set(self._component_key(process_id, component.id), component.dict())
        if component.status == Status.FAILED:
            await self.update_process_status(process_id, Status.FAILED)

    async def get_component(self, component_id: str) -> dict[str, _t.Any]:
        """A component's stored data."""
        process_id = await self._get_process_id_for_component(component_id)
        data: _t.Optional[dict[str, _t.Any]] = await self._get(self._component_key(process_id, component_id))
        if data is None:
            raise NotFoundError(f"Component with id {component_id} not found.")
        return data

    async def upsert_connector(self, connector: Connector) -> None:
        """Store a connector's ``dict()`` (its process must be stored first)."""
        process_id = await self._get_process_id_for_connector(connector.id)
        await self._set(self._connector_key(process_id, connector.id), connector.dict())

    async def get_connector(self, connector_id: str) -> dict[str, _t.Any]:
        """A connector's stored data."""
        process_id = await self._get_process_id_for_connector(connector_id)
        data: _t.Optional[dict[str, _t.Any]] = await self._get(self._connector_key(process_id, connector_id))
        if data is None:
            raise NotFoundError(f"Connector with id {connector_id} not found.")
        return data

    async def update_process_status(self, process_id: str, status: Status) -> None:
        """Set a process's status."""
        await self._set((*self._process_key(process_id), "status"), str(status))

    async def get_process_status(self, process_id: str) -> Status:
        """A process's status (``NotFoundError`` for an unknown process)."""
        status: _t.Optional[str] = await self._get((*self._process_key(process_id), "status"))
        if status is None:
            raise NotFoundError(f"Process with id {process_id} not found.")
        return Status(status)

    async def get_process_status_for_component(self, component_id: str) -> Status:
        """The status of the process a component belongs to."""
        return await self.get_process_status(await self._get_process_id_for_component(component_id))

    # ------------------------------------------------------------------ rows per key
    def record_key(self, process_id: str, key: str, components: _t.Mapping[str, str],
                   failures: _t.Sequence[_t.Mapping[str, _t.Any]] = (),
                   expected: _t.Collection[str] = ()) -> dict[str, _t.Any]:
        """Report (synchronously: Beam DoFns call it) what key ``key`` of process
        ``process_id`` did: statuses of some of its components, failures (``failure_entry``)
        and the components the key runs (``expected``, for its status). Reports merge: one
        row per key. Returns the row."""
        return self._merge_key(self._get_db_id(process_id), key, dict(components), list(failures), expected)

    async def upsert_key(self, process_id: str, key: str, components: _t.Mapping[str, str],
                         failures: _t.Sequence[_t.Mapping[str, _t.Any]] = (),
                         expected: _t.Collection[str] = ()) -> dict[str, _t.Any]:
        """``record_key`` for coroutines."""
        return await asyncio.to_thread(self.record_key, process_id, key, components, failures, expected)

    def keys(self, process_id: str, status: _t.Optional[str] = None) -> list[dict[str, _t.Any]]:
        """The rows of the keys of a process (of ``status`` only, when given), by key:
        ``key``, ``status``, ``components`` (name -> status), ``failures`` (component, step,
        phase, error_type, reason), ``started_at``, ``updated_at``."""
        rows = self._key_rows(self._get_db_id(process_id))
        return [self._public_row(process_id, r) for r in sorted(rows, key=lambda r: r["key"])
                if status is None or r["status"] == status]

    async def get_keys(self, process_id: str, status: _t.Optional[str] = None) -> list[dict[str, _t.Any]]:
        """``keys`` for coroutines."""
        return await asyncio.to_thread(self.keys, process_id, status)

    async def get_key(self, process_id: str, key: str) -> dict[str, _t.Any]:
        """The row of one key (``NotFoundError`` if it never reported)."""
        for row in await self.get_keys(process_id):
            if row["key"] == key:
                return row
        raise NotFoundError(f"No key {key!r} in process {process_id}.")

    def _public_row(self, process_id: str, row: _t.Mapping[str, _t.Any]) -> dict[str, _t.Any]:
        return {"job_id": self.job_id, "process_id": process_id,
                **{k: row[k] for k in ("key", "status", "components", "failures", "started_at", "updated_at")}}

    @abstractmethod
    def _merge_key(self, process_db_id: str, key: str, components: dict[str, str],
                   failures: list[_t.Mapping[str, _t.Any]], expected: _t.Collection[str]) -> dict[str, _t.Any]:
        """Merge one report into the key's row, atomically; return the row (with ``key``)."""

    @abstractmethod
    def _key_rows(self, process_db_id: str) -> list[dict[str, _t.Any]]:
        """The rows of every key of a process."""
