"""``SQLReader`` / ``SQLWriter``: SQL databases through SQLAlchemy (plugboard 0.9.0's names).

SQLite is the embedded default; ``postgresql://user@host:port/db`` uses the psycopg driver
that installs with this package. plugboard's asynchronous URLs are accepted as plugboard users
write them and run on the synchronous driver of the same database (``sync_url``):
``sqlite+aiosqlite://`` is ``sqlite://``, ``postgresql+asyncpg://`` and
``postgresql+psycopg_async://`` are ``postgresql+psycopg://``, ``mysql+aiomysql://`` and
``mysql+asyncmy://`` are ``mysql+pymysql://``. Every read and write here runs in a worker
thread of its own (a Beam bundle, a step), so an async engine would add an event loop per call
and gain nothing; the rows, types and SQL are the same. Queries are run as given with ``params`` bound (never pasted
in); table and column names come from reflecting the table and are quoted by SQLAlchemy.

``SQLWriter`` inserts into an existing table (as plugboard). When the table has a ``key``
and/or a ``step`` column they get the model instance and the writer's step, and rows that would
repeat a unique ``(key, step)`` are skipped (``ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL), so writing the same steps again (a retry, a redelivery) never duplicates a row.
"""

from __future__ import annotations

from collections import deque
import re
import typing as _t

from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library.data import DataError, DataReader, DataWriter, KeyedRows, NoMoreDataException

KEY_COLUMN = "key"
STEP_COLUMN = "step"


def _credentials(connection_string: str) -> tuple[int, int]:
    """Where the credentials are in the raw text: between ``//`` and the last ``@`` (a password
    may hold ``@``, ``:``, ``/`` unescaped), or ``(-1, -1)``."""
    start = connection_string.find("//")
    at = connection_string.rfind("@")
    if start < 0 or at < start:
        return -1, -1
    return start + 2, at


def safe_url(connection_string: str) -> str:
    """The connection string without its password, whatever characters the password holds:
    SQLAlchemy's rendering when its parse leaves no ``@`` outside the credentials; otherwise
    (an unescaped ``@`` in the password, an unparsable URL) nothing between ``//`` and the last
    ``@`` is shown."""
    text = str(connection_string)
    start, at = _credentials(text)
    try:
        from sqlalchemy.engine import make_url

        url = make_url(text)
        if "@" not in (url.host or "") and "@" not in (url.database or "") and text.count("@") <= 1:
            return str(url.render_as_string(hide_password=True))
    except Exception:
        pass
    if start < 0:
        authority = text.partition("//")[2].partition("/")[0]
        return text if "@" not in text and ":" not in authority else "<connection string>"
    return f"{text[:start]}***{text[at:]}"


def scrub(message: str, connection_string: str) -> str:
    """``message`` (a driver's or SQLAlchemy's error text) with every piece of the connection
    string's credentials replaced by ``***``."""
    from urllib.parse import unquote

    text = str(connection_string)
    start, at = _credentials(text)
    pieces: set[str] = set()
    if start >= 0:
        creds = text[start:at]
        pieces |= {creds, unquote(creds)}
        _, sep, password = creds.partition(":")
        if sep:
            pieces |= {password, unquote(password)}
        pieces |= {p for p in creds.split("@")[1:]}  # what a parser took for a host
    try:
        from sqlalchemy.engine import make_url

        pw = make_url(text).password
        if pw:
            pieces.add(str(pw))
    except Exception:
        pass
    out = message.replace(text, safe_url(text))
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        out = out.replace(piece, "***")
    return out


#: plugboard's asynchronous SQLAlchemy drivers -> the synchronous driver used for the same database
ASYNC_DRIVERS: dict[str, str] = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
}


def sync_url(connection_string: str) -> str:
    """``connection_string`` with an asynchronous driver (``ASYNC_DRIVERS``) replaced by the
    synchronous one of the same database; the rest of the URL is kept byte for byte. Any other
    URL is returned as it is."""
    if not isinstance(connection_string, str):
        return connection_string
    scheme, sep, rest = connection_string.partition("://")
    driver = ASYNC_DRIVERS.get(scheme.strip().lower()) if sep else None
    return f"{driver}{sep}{rest}" if driver else connection_string


def _engine(connection_string: str, connect_args: _t.Optional[dict[str, _t.Any]], what: str) -> _t.Any:
    from sqlalchemy import create_engine

    if not isinstance(connection_string, str) or not connection_string:
        raise ValueError("'connection_string' must be a SQLAlchemy URL such as sqlite:///file.db")
    args = dict(connect_args or {})
    try:
        return create_engine(sync_url(connection_string), **args)
    except Exception as exc:
        raise DataError(f"{what}: cannot use database {safe_url(connection_string)}: "
                        f"{type(exc).__name__}: {scrub(str(exc), connection_string)}") from None


#: the bound parameter ``{key}`` in a reader's query becomes (``:pbb_key``)
KEY_PARAM = "pbb_key"
_KEY = "{key}"


def bind_key(query: str) -> str:
    """``query`` with every ``{key}`` turned into the bound parameter ``:pbb_key``: a bare
    ``{key}`` (``WHERE asset = {key}``) and a string literal that is exactly ``'{key}'`` (quotes
    dropped). A key is never pasted into SQL text: ``{key}`` anywhere else (inside a longer
    string literal, a quoted or unquoted name, a dollar-quoted string) raises ``ValueError``
    saying how to write it. ``{key}`` in a comment is left alone."""
    if _KEY not in query:
        return query
    out: list[str] = []
    i, n = 0, len(query)

    def refuse(where: str) -> _t.NoReturn:
        raise ValueError(f"'query': {{key}} {where} cannot be bound as a parameter, and a key is never pasted into "
                         f"SQL: write {{key}} alone where a value goes (asset = {{key}} or asset = '{{key}}'), or "
                         "bind a value built from it with 'params' (params: {pattern: 'asset-{key}%'} and "
                         "asset LIKE :pattern)")

    while i < n:
        c = query[i]
        if query.startswith(_KEY, i):
            before = query[i - 1] if i else " "
            after = query[i + len(_KEY)] if i + len(_KEY) < n else " "
            if before.isalnum() or before in "_.$:`" or after.isalnum() or after in "_.$`":
                refuse("as part of a name or a word")
            out.append(f":{KEY_PARAM}")
            i += len(_KEY)
        elif c in "'\"`[":
            close = {"'": "'", '"': '"', "`": "`", "[": "]"}[c]
            j = i + 1
            while j < n:
                if query[j] == close:
                    if close in "'\"`" and j + 1 < n and query[j + 1] == close:  # a doubled quote
                        j += 2
                        continue
                    break
                j += 1
            body = query[i + 1:j]
            if c == "'" and body == _KEY:
                out.append(f":{KEY_PARAM}")
            elif _KEY in body:
                refuse("inside a string literal with other text" if c == "'" else "inside a quoted name")
            else:
                out.append(query[i:j + 1])
            i = j + 1
        elif query.startswith("--", i) or query.startswith("/*", i):
            end = query.find("\n", i) if c == "-" else query.find("*/", i + 2)
            j = n if end < 0 else end + (0 if c == "-" else 2)
            out.append(query[i:j])
            i = j
        elif c == "$":
            tag = re.match(r"\$[A-Za-z_]*\$", query[i:])
            if tag is None:
                out.append(c)
                i += 1
                continue
            end = query.find(tag.group(0), i + len(tag.group(0)))
            j = n if end < 0 else end + len(tag.group(0))
            if _KEY in query[i:j]:
                refuse("inside a dollar-quoted string")
            out.append(query[i:j])
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def key_params(params: _t.Mapping[str, _t.Any], key: str) -> dict[str, _t.Any]:
    """``params`` with ``{key}`` in string values replaced by the key itself (they are bound,
    never pasted), plus ``pbb_key``: the key."""
    if KEY_PARAM in params:
        raise ValueError(f"'params': {KEY_PARAM!r} is reserved for {{key}} in the query")
    out = {k: v.replace(_KEY, key) if isinstance(v, str) else v for k, v in params.items()}
    out[KEY_PARAM] = key
    return out


def substitute_key_in(name: str, value: str, key: str) -> str:
    """``{key}`` in a SQL component's argument (the hook ``spec.load`` calls): a reader's
    ``query`` keeps it, to be bound as ``:pbb_key`` when it runs (``bind_key``; a place where it
    cannot be bound is refused now); in ``connection_string`` it may only name the database,
    and a key that would change anything else of the URL (``?host=...``, ``@``) is refused;
    elsewhere (a writer's ``table``: a name SQLAlchemy quotes) it is ``key_for_path(key)``."""
    from plugboard_beam.spec.keys import substitute_key

    if name == "query":
        bind_key(value)
        return value
    out = substitute_key(value, key)
    if name == "connection_string":
        from sqlalchemy.engine import make_url

        def parts(url: str) -> tuple[_t.Any, ...]:
            u = make_url(url)
            return u.drivername, u.username, u.password, u.host, u.port, tuple(sorted(u.query.items()))

        try:
            marked = make_url(value.replace(_KEY, "pbbKEYpbb"))
            only_database = ("pbbKEYpbb" in (marked.database or "")
                             and "pbbKEYpbb" not in marked.render_as_string(hide_password=False).replace(
                                 marked.database or "", ""))
            same = only_database and parts(value.replace(_KEY, "k")) == parts(out)
            same = same and make_url(out).database == (marked.database or "").replace("pbbKEYpbb", out_key(key))
        except Exception:
            same = False
        if not same:
            raise ValueError("in a connection string {key} may only be (part of) the database name, and the key must "
                             "not change the rest of the URL")
    return out


def out_key(key: str) -> str:
    """The key as it goes into a name (``key_for_path``)."""
    from plugboard_beam.spec.keys import key_for_path

    return key_for_path(key)


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
    message = f"{what}: {head}: {type(exc).__name__}: {scrub(detail[0], connection_string) if detail else ''}"
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
        self._chunks: _t.Optional[_t.Iterator[list[tuple[_t.Any, ...]]]] = None
        # {key} in the query or in a parameter's value: bound, never pasted into SQL text
        self._bound_query = bind_key(query)
        self._keyed_query = _KEY in query or any(isinstance(v, str) and _KEY in v for v in self._params.values())
        if KEY_PARAM in self._params:
            raise ValueError(f"'params': {KEY_PARAM!r} is reserved for {{key}} in the query")
        if self._keyed_query and self._key_column is not None:
            raise ValueError("'key_column' reads the query's rows once for every key, so the query cannot depend on "
                             "{key}: drop {key} from 'query' and 'params' (each key gets its rows by 'key_column')")

    @classmethod
    def substitute_key_in(cls, name: str, value: str, key: str) -> str:
        """``{key}`` in an argument: bound in the query, never pasted (``substitute_key_in``)."""
        return substitute_key_in(name, value, key)

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
                params = (key_params(self._params, self._plugboard_beam_key)
                          if self._keyed_query else self._params)
                result = conn.execution_options(stream_results=stream).execute(text(self._bound_query), params)
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

    def _load(self) -> _t.Iterator[list[tuple[_t.Any, ...]]]:
        """Chunks of rows (tuples of the fields' values), as plugboard's ``_fetch`` gives them."""
        fields = list(self.io.outputs)
        shared = self._shared_chunks()
        if shared is not None:
            for part in shared:
                yield list(zip(*(part[f] for f in fields), strict=True))
            return
        need = self._needed()
        key = self._plugboard_beam_key
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
        width = len(fields)
        for r in rows:
            batch.append(r[:width])
            if size and len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def _fetch(self) -> list[tuple[_t.Any, ...]]:
        if self._chunks is None:
            self._chunks = self._load()
        try:
            return next(self._chunks)
        except StopIteration:
            raise NoMoreDataException from None

    async def _adapt(self, data: list[tuple[_t.Any, ...]]) -> dict[str, deque[_t.Any]]:
        fields = list(self.io.outputs)
        columns = zip(*data, strict=True) if data else ([] for _ in fields)
        return {f: deque(v) for f, v in zip(fields, columns, strict=True)}


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

    @classmethod
    def substitute_key_in(cls, name: str, value: str, key: str) -> str:
        """``{key}`` in an argument: a safe name (``substitute_key_in``)."""
        return substitute_key_in(name, value, key)

    def describe_target(self) -> str:
        return f"table {self._table_name!r} on {safe_url(self._connection_string)}"

    def sink_target(self) -> _t.Optional[str]:
        return None if "{key}" in self._table_name else self._table_name

    async def _adapt(self, data: dict[str, deque[_t.Any]]) -> list[tuple[str, int, tuple[_t.Any, ...]]]:
        key = self._plugboard_beam_key
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


__all__ = ["ASYNC_DRIVERS", "KEY_PARAM", "SQLReader", "SQLTable", "SQLWriter", "bind_key", "key_params", "safe_url",
           "scrub",
           "substitute_key_in", "sync_url"]
