"""``SqliteStateBackend`` and ``PostgresStateBackend``: state in a database, through SQLAlchemy.

Tables (one database holds many jobs; stored ids are ``<job_id>:<entity id>``):

- ``job`` (``id``, ``data``: JSON with ``job_id``, ``created_at``, ``metadata``);
- ``process`` (``id``, ``job_id``, ``status``, ``data``: the process's ``dict()``);
- ``component`` and ``connector`` (``id``, ``process_id``, ``status``, ``data``: their ``dict()``);
- ``process_key`` (``process_id``, ``key``, ``job_id``, ``status``, ``components``: JSON name ->
  status, ``failures``: JSON list of component/step/phase/error_type/reason, ``started_at``,
  ``updated_at``): one row per key of a run.

The engine is synchronous (SQLAlchemy with the ``sqlite3`` and ``psycopg`` drivers): the
coroutine methods run it on a worker thread; the Beam DoFns call ``record_key`` directly.
Every statement is parameterised; values are stored as JSON text.
"""

from __future__ import annotations

import asyncio
import json
import threading
import typing as _t

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from plugboard_beam.exceptions import NotFoundError
from plugboard_beam.schemas import Status
from plugboard_beam.state.backend import StateBackend, StatefulProcess, merge_key_row

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component
    from plugboard_beam.connector import Connector

_META = sa.MetaData()
_JOB = sa.Table("job", _META, sa.Column("id", sa.Text, primary_key=True), sa.Column("data", sa.Text))
_PROCESS = sa.Table(
    "process", _META, sa.Column("id", sa.Text, primary_key=True), sa.Column("job_id", sa.Text, index=True),
    sa.Column("status", sa.Text), sa.Column("data", sa.Text))
_COMPONENT = sa.Table(
    "component", _META, sa.Column("id", sa.Text, primary_key=True), sa.Column("process_id", sa.Text, index=True),
    sa.Column("status", sa.Text), sa.Column("data", sa.Text))
_CONNECTOR = sa.Table(
    "connector", _META, sa.Column("id", sa.Text, primary_key=True), sa.Column("process_id", sa.Text, index=True),
    sa.Column("data", sa.Text))
_KEY = sa.Table(
    "process_key", _META, sa.Column("process_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True), sa.Column("job_id", sa.Text, index=True),
    sa.Column("status", sa.Text, index=True), sa.Column("components", sa.Text), sa.Column("failures", sa.Text),
    sa.Column("expected", sa.Text), sa.Column("started_at", sa.Text), sa.Column("updated_at", sa.Text))


def _sqlite_pragmas(dbapi_conn: _t.Any, _record: _t.Any) -> None:
    """Write-ahead log, synced at checkpoints: a status row costs a write, not a disk sync
    (several processes of one machine still share the file safely)."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _create_tables(engine: sa.Engine) -> None:
    """Create the tables that are missing. Writers starting at once (Beam workers, threads)
    race to create them: a table another one created in between is fine."""
    for table in _META.sorted_tables:
        try:
            table.create(engine, checkfirst=True)
        except sa.exc.DBAPIError:
            if not sa.inspect(engine).has_table(table.name):
                raise


def _dumps(value: _t.Any) -> str:
    return json.dumps(value, default=str)


class SqlStateBackend(StateBackend):
    """A ``StateBackend`` in a SQL database (``url``: a SQLAlchemy URL)."""

    def __init__(self, url: _t.Union[str, URL], *args: _t.Any, **kwargs: _t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._url = make_url(url)
        self._engine: _t.Optional[sa.Engine] = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, _t.Any]:
        state = self.__dict__.copy()
        state["_engine"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, _t.Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _connect_args(self) -> dict[str, _t.Any]:
        return {}

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (made on first use, tables created if missing)."""
        with self._lock:
            if self._engine is None:
                engine = sa.create_engine(self._url, connect_args=self._connect_args(), pool_pre_ping=True)
                if engine.dialect.name == "sqlite":
                    sa.event.listen(engine, "connect", _sqlite_pragmas)
                _create_tables(engine)
                self._engine = engine
            return self._engine

    async def _run(self, fn: _t.Callable[..., _t.Any], *args: _t.Any) -> _t.Any:
        return await asyncio.to_thread(fn, *args)

    async def init(self) -> None:
        """Create the tables if missing, then the job (as ``StateBackend.init``)."""
        await self._run(lambda: self.engine)
        await super().init()

    async def destroy(self) -> None:
        """Close the database connections."""
        await super().destroy()
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # ------------------------------------------------------------------ helpers
    def _upsert(self, conn: sa.Connection, table: sa.Table, values: dict[str, _t.Any]) -> None:
        keys = [c.name for c in table.primary_key.columns]
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            pg = pg_insert(table).values(**values)
            conn.execute(pg.on_conflict_do_update(index_elements=keys,
                                                  set_={k: pg.excluded[k] for k in values if k not in keys}))
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as lite_insert
            lite = lite_insert(table).values(**values)
            conn.execute(lite.on_conflict_do_update(index_elements=keys,
                                                    set_={k: lite.excluded[k] for k in values if k not in keys}))
        else:  # pragma: no cover - only SQLite and PostgreSQL are offered
            where = sa.and_(*(table.c[k] == values[k] for k in keys))
            if conn.execute(sa.select(table.c[keys[0]]).where(where)).first() is None:
                conn.execute(sa.insert(table).values(**values))
            else:
                conn.execute(sa.update(table).where(where).values(**values))

    def _data(self, table: sa.Table, db_id: str) -> _t.Optional[dict[str, _t.Any]]:
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(table.c.data).where(table.c.id == db_id)).scalar_one_or_none()
        return None if text is None else _t.cast(dict[str, _t.Any], json.loads(text))

    # ------------------------------------------------------------------ nested store (unused by SQL)
    async def _get(self, key: str | tuple[str, ...], value: _t.Optional[_t.Any] = None) -> _t.Any:
        raise NotImplementedError("SQL state backends store tables, not a nested dictionary")

    async def _set(self, key: str | tuple[str, ...], value: _t.Any) -> None:
        raise NotImplementedError("SQL state backends store tables, not a nested dictionary")

    # ------------------------------------------------------------------ job
    async def _upsert_job(self, job_data: dict[str, _t.Any]) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                self._upsert(conn, _JOB, {"id": job_data["job_id"], "data": _dumps(job_data)})
        await self._run(write)

    async def _get_job(self, job_id: str) -> dict[str, _t.Any]:
        job: _t.Optional[dict[str, _t.Any]] = await self._run(self._data, _JOB, job_id)
        if job is None:
            raise NotFoundError(f"Job with id {job_id} not found.")
        return job

    # ------------------------------------------------------------------ processes
    async def upsert_process(self, process: StatefulProcess, with_components: bool = False) -> None:
        """Store the process, and its components and connectors (their data with
        ``with_components``, else empty entries)."""
        data = process.dict()
        comps, conns = data.pop("components"), data.pop("connectors")
        data["components"] = {k: {} for k in comps}
        data["connectors"] = {k: {} for k in conns}
        pid = self._get_db_id(process.id)

        def write() -> None:
            with self.engine.begin() as conn:
                self._upsert(conn, _PROCESS, {"id": pid, "job_id": self.job_id, "status": data.get("status"),
                                              "data": _dumps(data)})
                for cid, comp in comps.items():
                    self._upsert(conn, _COMPONENT, {
                        "id": self._get_db_id(cid), "process_id": pid,
                        "status": comp.get("status") if with_components else None,
                        "data": _dumps(comp if with_components else {})})
                for cid, con in conns.items():
                    self._upsert(conn, _CONNECTOR, {"id": self._get_db_id(cid), "process_id": pid,
                                                    "data": _dumps(con if with_components else {})})
        await self._run(write)

    async def get_process(self, process_id: str) -> dict[str, _t.Any]:
        """The process's data, with its components' and connectors'."""
        pid = self._get_db_id(process_id)

        def read() -> dict[str, _t.Any]:
            with self.engine.connect() as conn:
                text = conn.execute(sa.select(_PROCESS.c.data).where(_PROCESS.c.id == pid)).scalar_one_or_none()
                if text is None:
                    raise NotFoundError(f"Process with id {process_id} not found.")
                data: dict[str, _t.Any] = json.loads(text)
                for name, table in (("components", _COMPONENT), ("connectors", _CONNECTOR)):
                    rows = conn.execute(sa.select(table.c.id, table.c.data).where(table.c.process_id == pid))
                    data[name] = {self._strip_job_id(r.id): json.loads(r.data) for r in rows}
            return data
        result: dict[str, _t.Any] = await self._run(read)
        return result

    def _process_of(self, table: sa.Table, entity_id: str, what: str) -> str:
        db_id = self._get_db_id(entity_id)
        with self.engine.connect() as conn:
            pid = conn.execute(sa.select(table.c.process_id).where(table.c.id == db_id)).scalar_one_or_none()
        if pid is None:
            raise NotFoundError(f"No process found for {what} with ID {entity_id}")
        return self._strip_job_id(pid)

    async def _get_process_id_for_component(self, component_id: str) -> str:
        result: str = await self._run(self._process_of, _COMPONENT, component_id, "component")
        return result

    async def _get_process_id_for_connector(self, connector_id: str) -> str:
        result: str = await self._run(self._process_of, _CONNECTOR, connector_id, "connector")
        return result

    async def upsert_component(self, component: Component) -> None:
        """Store a component's ``dict()``; a failed component marks its process failed."""
        data = component.dict()
        db_id = self._get_db_id(component.id)

        def write() -> None:
            with self.engine.begin() as conn:
                pid = conn.execute(sa.select(_COMPONENT.c.process_id).where(_COMPONENT.c.id == db_id)
                                   ).scalar_one_or_none()
                if pid is None:
                    raise NotFoundError(f"No process found for component with ID {component.id}")
                conn.execute(sa.update(_COMPONENT).where(_COMPONENT.c.id == db_id)
                             .values(status=data.get("status"), data=_dumps(data)))
                if component.status == Status.FAILED:
                    self._set_process_status(conn, pid, Status.FAILED)
        await self._run(write)

    async def get_component(self, component_id: str) -> dict[str, _t.Any]:
        """A component's stored data."""
        data: _t.Optional[dict[str, _t.Any]] = await self._run(self._data, _COMPONENT, self._get_db_id(component_id))
        if data is None:
            raise NotFoundError(f"Component with id {component_id} not found.")
        return data

    async def upsert_connector(self, connector: Connector) -> None:
        """Store a connector's ``dict()``."""
        data = connector.dict()
        db_id = self._get_db_id(connector.id)

        def write() -> None:
            with self.engine.begin() as conn:
                done = conn.execute(sa.update(_CONNECTOR).where(_CONNECTOR.c.id == db_id).values(data=_dumps(data)))
                if done.rowcount == 0:
                    raise NotFoundError(f"No process found for connector with ID {connector.id}")
        await self._run(write)

    async def get_connector(self, connector_id: str) -> dict[str, _t.Any]:
        """A connector's stored data."""
        data: _t.Optional[dict[str, _t.Any]] = await self._run(self._data, _CONNECTOR, self._get_db_id(connector_id))
        if data is None:
            raise NotFoundError(f"Connector with id {connector_id} not found.")
        return data

    # ------------------------------------------------------------------ process status
    def _set_process_status(self, conn: sa.Connection, pid: str, status: Status) -> None:
        text = conn.execute(sa.select(_PROCESS.c.data).where(_PROCESS.c.id == pid)).scalar_one_or_none()
        if text is None:
            raise NotFoundError(f"Process with id {pid} not found.")
        data = json.loads(text)
        data["status"] = str(status)
        conn.execute(sa.update(_PROCESS).where(_PROCESS.c.id == pid).values(status=str(status), data=_dumps(data)))

    def set_process_status(self, process_id: str, status: Status) -> None:
        """``update_process_status``, synchronously."""
        with self.engine.begin() as conn:
            self._set_process_status(conn, self._get_db_id(process_id), status)

    async def update_process_status(self, process_id: str, status: Status) -> None:
        """Set a process's status."""
        await self._run(self.set_process_status, process_id, status)

    def _status_of(self, pid: str) -> _t.Optional[str]:
        with self.engine.connect() as conn:
            status: _t.Optional[str] = conn.execute(
                sa.select(_PROCESS.c.status).where(_PROCESS.c.id == pid)).scalar_one_or_none()
        return status

    async def get_process_status(self, process_id: str) -> Status:
        """A process's status (``NotFoundError`` for an unknown process)."""
        status = await self._run(self._status_of, self._get_db_id(process_id))
        if status is None:
            raise NotFoundError(f"Process with id {process_id} not found.")
        return Status(status)

    async def get_process_status_for_component(self, component_id: str) -> Status:
        """The status of the process a component belongs to."""
        db_id = self._get_db_id(component_id)

        def read() -> _t.Optional[str]:
            with self.engine.connect() as conn:
                status: _t.Optional[str] = conn.execute(
                    sa.select(_PROCESS.c.status).join(_COMPONENT, _COMPONENT.c.process_id == _PROCESS.c.id)
                    .where(_COMPONENT.c.id == db_id)).scalar_one_or_none()
            return status
        status = await self._run(read)
        if status is None:
            raise NotFoundError(f"No process found for component with ID {component_id}")
        return Status(status)

    # ------------------------------------------------------------------ rows per key
    def _merge_key(self, process_db_id: str, key: str, components: dict[str, str],
                   failures: list[_t.Mapping[str, _t.Any]], expected: _t.Collection[str]) -> dict[str, _t.Any]:
        where = sa.and_(_KEY.c.process_id == process_db_id, _KEY.c.key == key)
        with self.engine.begin() as conn:
            # a write first: the transaction holds the row (PostgreSQL) or the database (SQLite)
            # from here on, so concurrent reports of one key (Beam stages) merge, not overwrite
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert
                conn.execute(pg_insert(_KEY).values(process_id=process_db_id, key=key, job_id=self.job_id)
                             .on_conflict_do_nothing())
                query = sa.select(_KEY).where(where).with_for_update()
            else:
                from sqlalchemy.dialects.sqlite import insert as lite_insert
                conn.execute(lite_insert(_KEY).values(process_id=process_db_id, key=key, job_id=self.job_id)
                             .on_conflict_do_nothing())
                query = sa.select(_KEY).where(where)
            old = conn.execute(query).mappings().one()
            prev = None if old["status"] is None else _decode_row(old)
            row = merge_key_row(prev, components, failures, expected)
            conn.execute(sa.update(_KEY).where(where).values(
                status=row["status"], components=_dumps(row["components"]), failures=_dumps(row["failures"]),
                expected=_dumps(row["expected"]), started_at=row["started_at"], updated_at=row["updated_at"]))
        return {"key": key, **row}

    def _key_rows(self, process_db_id: str) -> list[dict[str, _t.Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_KEY).where(_KEY.c.process_id == process_db_id,
                                                      _KEY.c.status.is_not(None))).mappings().all()
        return [{"key": r["key"], **_decode_row(r)} for r in rows]


def _decode_row(row: _t.Any) -> dict[str, _t.Any]:
    return {"status": row["status"], "components": json.loads(row["components"] or "{}"),
            "failures": json.loads(row["failures"] or "[]"), "expected": json.loads(row["expected"] or "[]"),
            "started_at": row["started_at"], "updated_at": row["updated_at"]}


class SqliteStateBackend(SqlStateBackend):
    """State in a SQLite file (``db_path``), for runs on one machine (several processes may
    write to it: SQLite serialises their writes)."""

    def __init__(self, db_path: str = "plugboard.db", *args: _t.Any, **kwargs: _t.Any) -> None:
        self._db_path = str(db_path)
        super().__init__(URL.create("sqlite", database=self._db_path), *args, **kwargs)

    def _connect_args(self) -> dict[str, _t.Any]:
        return {"timeout": 60}


class PostgresStateBackend(SqlStateBackend):
    """State in a PostgreSQL database (``db_url``, ``postgresql://user:password@host:port/db``;
    plugboard's ``postgresql+asyncpg://`` URLs are accepted too), for runs on many hosts."""

    def __init__(self, db_url: str = "postgresql://plugboard:plugboard@localhost:5432/plugboard",
                 *args: _t.Any, **kwargs: _t.Any) -> None:
        url = make_url(db_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError(f"PostgresStateBackend: {url.render_as_string(hide_password=True)} is not a "
                             "PostgreSQL URL (postgresql://user:password@host:port/database)")
        self._db_url = db_url
        super().__init__(url.set(drivername="postgresql+psycopg"), *args, **kwargs)
