"""``SQLReader`` / ``SQLWriter``: SQL databases through SQLAlchemy (plugboard 0.9.0's names).

SQLite is the embedded default; ``postgresql://user@host:port/db`` uses the psycopg driver
that installs with this package. Queries are run as given with ``params`` bound (never pasted
in); table and column names come from reflecting the table and are quoted by SQLAlchemy.

``SQLWriter`` inserts into an existing table (as plugboard). When the table has a ``key``
and/or a ``step`` column they get the model instance and the writer's step, and rows that would
repeat a unique ``(key, step)`` are skipped (``ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL), so writing the same steps again (a retry, a redelivery) never duplicates a row.
"""

from __future__ import annotations

from collections import deque
import typing as _t

from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library.data import DataError, DataReader, DataWriter, KeyedRows, NoMoreDataException

KEY_COLUMN = "key"
STEP_COLUMN = "step"


def safe_url(connection_string: str) -> str:
    """The connection string without its password."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(connection_string).render_as_string(hide_password=True))
    except Exception:
        return "<unparsable connection string>"


def _engine(connection_string: str, connect_args: _t.Optional[dict[str, _t.Any]], what: str) -> _t.Any:
    from sqlalchemy import create_engine

    if not isinstance(connection_string, str) or not connection_string:
        raise ValueError("'connection_string' must be a SQLAlchemy URL such as sqlite:///file.db")
    args = dict(connect_args or {})
    try:
        return create_engine(connection_string, **args)
    except Exception as exc:
        raise DataError(f"{what}: cannot use database {safe_url(connection_string)}: "
                        f"{type(exc).__name__}: {exc}") from None


class RowsRefused(DataError):
    """The database refused the rows themselves (a value of the wrong type, a constraint): other
    rows may still go in, unlike when the database cannot be reached or the table is missing."""


def _db_error(what: str, connection_string: str, exc: BaseException, rows: bool = False) -> DataError:
    """A clear error; ``rows``: raised by inserting rows into a table that exists, so unless the
    database could not be reached it is the rows it refused (``RowsRefused``)."""
    from sqlalchemy.exc import OperationalError

    unreachable = isinstance(exc, OperationalError)
    head = (f"cannot reach database {safe_url(connection_string)}" if unreachable
            else f"database {safe_url(connection_string)} refused it")
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    message = f"{what}: {head}: {type(exc).__name__}: {detail[0] if detail else ''}"
    return RowsRefused(message) if rows and not unreachable else DataError(message)


class SQLReader(DataReader):
    """Reads the rows of ``query`` (with ``params`` bound) from a database."""

    io = IOController()

    def __init__(
        self,
        connection_string: str,
        query: str,
        params: _t.Optional[dict[str, _t.Any]] = None,
        connect_args: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("'query' must be a non-empty SQL query")
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"'params' must be a mapping of bound parameters, got {params!r}")
        self._connection_string = connection_string
        self._query = query
        self._params = dict(params or {})
        self._connect_args = dict(connect_args or {})
        self._chunks: _t.Optional[_t.Iterator[dict[str, list[_t.Any]]]] = None

    @property
    def connection_string(self) -> str:
        """The SQLAlchemy URL."""
        return self._connection_string

    @property
    def query(self) -> str:
        """The SQL query."""
        return self._query

    @property
    def params(self) -> dict[str, _t.Any]:
        """The bound parameters."""
        return dict(self._params)

    def describe_source(self) -> str:
        q = " ".join(self._query.split())
        return f"query {q[:200]!r} on {safe_url(self._connection_string)}"

    def _needed(self) -> list[str]:
        """The columns read: the fields, then the key and order columns."""
        fields = list(self.io.outputs)
        return fields + [c for c in (self._key_column, self._order_by) if c is not None and c not in fields]

    def _query_rows(self, stream: bool) -> _t.Iterator[tuple[_t.Any, ...]]:
        """The query's rows as tuples of the ``_needed`` columns, or a clear error."""
        from sqlalchemy import text

        what = self.describe_source()
        need = self._needed()
        engine = _engine(self._connection_string, self._connect_args, what)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=stream).execute(text(self._query), self._params)
                columns = list(result.keys())
                missing = [c for c in need if c not in columns]
                if missing:
                    raise DataError(f"{what}: no column(s) {missing} (it has {columns})")
                pos = [columns.index(c) for c in need]
                for r in result:
                    yield tuple(r[i] for i in pos)
        except DataError:
            raise
        except Exception as exc:
            raise _db_error(what, self._connection_string, exc) from None
        finally:
            engine.dispose()

    def keyed_rows(self) -> KeyedRows:
        """The whole query result, indexed by ``key_column`` (for a runner to share among keys)."""
        assert self._key_column is not None
        need = self._needed()
        values: dict[str, list[_t.Any]] = {c: [] for c in need}
        lists = [values[c] for c in need]
        for r in self._query_rows(stream=True):
            for target, v in zip(lists, r, strict=True):
                target.append(v)
        return KeyedRows(values, self._key_column, self._order_by)

    def _load(self) -> _t.Iterator[dict[str, list[_t.Any]]]:
        shared = self._shared_chunks()
        if shared is not None:
            yield from shared
            return
        fields = list(self.io.outputs)
        need = self._needed()
        key = self.__dict__.get("_plugboard_beam_key", "")
        rows = self._query_rows(stream=bool(self._chunk_size))
        if self._key_column is not None:
            k = need.index(self._key_column)
            rows = (r for r in rows if r[k] is not None and str(r[k]) == key)
        if self._order_by is not None:
            o = need.index(self._order_by)
            rows = iter(sorted(rows, key=lambda r: (r[o] is None, r[o])))
        size = self._chunk_size or 0
        batch: list[tuple[_t.Any, ...]] = []
        for _ in range(self._fetched):  # a restored reader skips the rows it fetched before
            if next(rows, None) is None:
                break
        for r in rows:
            batch.append(r)
            if size and len(batch) >= size:
                yield {f: [b[i] for b in batch] for i, f in enumerate(fields)}
                batch = []
        if batch:
            yield {f: [b[i] for b in batch] for i, f in enumerate(fields)}

    async def _fetch(self) -> dict[str, list[_t.Any]]:
        if self._chunks is None:
            self._chunks = self._load()
        try:
            return next(self._chunks)
        except StopIteration:
            raise NoMoreDataException from None

    async def _adapt(self, data: dict[str, list[_t.Any]]) -> dict[str, deque[_t.Any]]:
        return {f: deque(v) for f, v in data.items()}



class SQLTable:
    """Inserts rows into an existing table (one transaction per call); shared by ``SQLWriter``
    and the Beam sink of many-key writers."""

    def __init__(self, connection_string: str, table: str, connect_args: _t.Optional[dict[str, _t.Any]],
                 fields: _t.Sequence[str], what: str, need_key: bool = False) -> None:
        self.connection_string = connection_string
        self.need_key = need_key
        self.table_name = table
        self.connect_args = dict(connect_args or {})
        self.fields = list(fields)
        self.what = what
        self._engine: _t.Any = None
        self._table: _t.Any = None

    def _open(self) -> None:
        from sqlalchemy import MetaData, Table

        self._engine = _engine(self.connection_string, {"pool_pre_ping": True, **self.connect_args}, self.what)
        try:
            self._table = Table(self.table_name, MetaData(), autoload_with=self._engine)
        except Exception as exc:
            from sqlalchemy.exc import NoSuchTableError

            self._engine.dispose()
            self._engine = None
            if isinstance(exc, NoSuchTableError):
                raise DataError(f"{self.what}: no table {self.table_name!r} in {safe_url(self.connection_string)} "
                                "(SQLWriter writes to an existing table)") from None
            raise _db_error(self.what, self.connection_string, exc) from None
        cols = set(self._table.columns.keys())
        missing = [f for f in self.fields if f not in cols]
        if missing:
            raise DataError(f"{self.what}: table {self.table_name!r} has no column(s) {missing} "
                            f"(it has {sorted(cols)})")
        self.with_key = KEY_COLUMN in cols and KEY_COLUMN not in self.fields
        self.with_step = STEP_COLUMN in cols and STEP_COLUMN not in self.fields
        if self.need_key and not self.with_key:
            raise DataError(f"{self.what}: has no {KEY_COLUMN!r} column, and this run writes the rows of many "
                            f"keys into it (add a {KEY_COLUMN!r} text column, ideally with {STEP_COLUMN!r} and a "
                            "unique (key, step)), or give each key its own table with {key} in the name")

    def insert(self, rows: _t.Sequence[tuple[str, int, _t.Sequence[_t.Any]]]) -> None:
        """Insert ``(key, step, values)`` rows; repeated unique ``(key, step)`` rows are skipped."""
        if not rows:
            return
        if self._engine is None:
            self._open()
        records = []
        for key, step, values in rows:
            rec = dict(zip(self.fields, values, strict=True))
            if self.with_key:
                rec[KEY_COLUMN] = key
            if self.with_step:
                rec[STEP_COLUMN] = step
            records.append(rec)
        stmt = self._statement()
        try:
            with self._engine.begin() as conn:
                conn.execute(stmt, records)
        except Exception as exc:
            raise _db_error(self.what, self.connection_string, exc, rows=True) from None

    def _statement(self) -> _t.Any:
        from sqlalchemy import insert

        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(self._table).on_conflict_do_nothing()
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(self._table).on_conflict_do_nothing()
        return insert(self._table)

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._table = None

    def __getstate__(self) -> dict[str, _t.Any]:
        state = dict(self.__dict__)
        state["_engine"] = state["_table"] = None
        return state


class SQLWriter(DataWriter):
    """Writes one row per step into an existing table."""

    io = IOController()

    def __init__(
        self,
        connection_string: str,
        table: str,
        connect_args: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(table, str) or not table:
            raise ValueError("'table' must be a table name")
        self._connection_string = connection_string
        self._table_name = table
        self._connect_args = dict(connect_args or {})
        self._sql = SQLTable(connection_string, table, connect_args, self.io.inputs, self.describe_target())
        self._steps_saved = 0

    @property
    def connection_string(self) -> str:
        """The SQLAlchemy URL."""
        return self._connection_string

    @property
    def table(self) -> str:
        """The table written."""
        return self._table_name

    def describe_target(self) -> str:
        return f"table {self._table_name!r} on {safe_url(self._connection_string)}"

    def sink_target(self) -> _t.Optional[str]:
        return None if "{key}" in self._table_name else self._table_name

    async def _adapt(self, data: dict[str, deque[_t.Any]]) -> list[tuple[str, int, tuple[_t.Any, ...]]]:
        key = self.__dict__.get("_plugboard_beam_key", "")
        cols = [list(data[f]) for f in self.io.inputs]
        start = self._steps_saved
        self._steps_saved += len(cols[0])
        return [(key, start + i, row) for i, row in enumerate(zip(*cols, strict=True))]

    async def _save(self, data: list[tuple[str, int, tuple[_t.Any, ...]]]) -> None:
        self._sql.insert(data)

    async def destroy(self) -> None:
        try:
            await super().destroy()
        finally:
            self._sql.close()


__all__ = ["SQLReader", "SQLTable", "SQLWriter", "safe_url"]
