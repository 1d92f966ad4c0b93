"""plugboard's asynchronous SQLAlchemy URLs (``sqlite+aiosqlite://``, ``postgresql+asyncpg://``)
are accepted as written and run on the synchronous driver of the same database, on every engine;
SQLReader's ``_fetch`` gives chunks of rows as plugboard's does."""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
import sqlite3
import subprocess
import textwrap
import typing as _t

import pytest

from conftest import cli_command
from plugboard_beam.exceptions import IOStreamClosedError
from plugboard_beam.library import SQLReader, SQLWriter
from plugboard_beam.library.sql_io import sync_url
from test_dataio_postgres import _exec, postgres_url  # noqa: F401  (the session's PostgreSQL server)


def test_sync_url_keeps_everything_but_the_driver() -> None:
    assert sync_url("sqlite+aiosqlite:///db.sqlite") == "sqlite:///db.sqlite"
    assert sync_url("sqlite+aiosqlite://") == "sqlite://"
    assert (sync_url("postgresql+asyncpg://u:p%40ss@h:5432/d?x=1")
            == "postgresql+psycopg://u:p%40ss@h:5432/d?x=1")
    assert sync_url("postgresql+psycopg_async://h/d") == "postgresql+psycopg://h/d"
    assert sync_url("mysql+aiomysql://h/d") == "mysql+pymysql://h/d"
    for same in ("sqlite:///x.db", "postgresql://h/d", "postgresql+psycopg://h/d", "not a url"):
        assert sync_url(same) == same


def _db(path: Path) -> str:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE read_test (x INT, y INT, z TEXT);
        INSERT INTO read_test VALUES (1, 6, 'a'), (2, 7, 'b'), (3, 8, 'c'), (4, 9, 'd'), (5, 10, 'e');
        CREATE TABLE write_test (x INT, y INT, z TEXT, alpha INT DEFAULT 0 NOT NULL);
    """)
    con.commit()
    con.close()
    return str(path)


class CountingReader(SQLReader):
    def __init__(self, *args: _t.Any, **kwargs: _t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_sizes: list[int] = []

    async def _fetch(self) -> _t.Any:
        rows = await super()._fetch()
        self.chunk_sizes.append(len(rows))
        return rows


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
@pytest.mark.parametrize(("chunk_size", "sizes"), [(None, [5]), (2, [2, 2, 1]), (10, [5])])
def test_reader_reads_async_url_in_chunks_of_rows(tmp_path: Path, scheme: str, chunk_size: _t.Optional[int],
                                                  sizes: list[int]) -> None:
    reader = CountingReader(name="r", connection_string=f"{scheme}:///{_db(tmp_path / 'db.sqlite')}",
                            query="SELECT *, 1 AS other FROM read_test", field_names=["x", "y", "z"],
                            chunk_size=chunk_size)

    async def go() -> list[tuple[_t.Any, ...]]:
        await reader.init()
        got = []
        for _ in range(5):
            await reader.step()
            got.append((reader.x, reader.y, reader.z))
        with pytest.raises(IOStreamClosedError):
            await reader.step()
        return got

    assert asyncio.run(go()) == [(1, 6, "a"), (2, 7, "b"), (3, 8, "c"), (4, 9, "d"), (5, 10, "e")]
    assert reader.chunk_sizes == sizes


def test_writer_writes_async_url(tmp_path: Path) -> None:
    path = _db(tmp_path / "db.sqlite")
    writer = SQLWriter(name="w", connection_string=f"sqlite+aiosqlite:///{path}", table="write_test",
                       field_names=["x", "y", "z"])

    async def go() -> None:
        await writer._save(await writer._adapt({"x": deque([1, 2]), "y": deque([6, 7]), "z": deque(["a", "b"])}))
        await writer.destroy()

    asyncio.run(go())
    con = sqlite3.connect(path)
    assert con.execute("SELECT x, y, z, alpha FROM write_test").fetchall() == [(1, 6, "a", 0), (2, 7, "b", 0)]


KEYED = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.SQLReader
            args: {{name: src, connection_string: '{url}', query: 'SELECT * FROM readings', key_column: asset,
                    order_by: t, field_names: [t, x]}}
          - type: plugboard_beam.library.SQLWriter
            args: {{name: dst, connection_string: '{url}', table: levels, field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
def test_async_sqlite_url_in_a_keyed_model(tmp_path: Path, runner: str) -> None:
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.executescript("""
        CREATE TABLE readings (asset TEXT, t INT, x REAL);
        INSERT INTO readings VALUES ('b', 1, 2.0), ('a', 0, 1.0), ('b', 0, 3.0), ('a', 1, 4.0);
        CREATE TABLE levels (key TEXT, step INT, t INT, x REAL, PRIMARY KEY (key, step));
    """)
    con.commit()
    con.close()
    (tmp_path / "model.yaml").write_text(textwrap.dedent(KEYED.format(url="sqlite+aiosqlite:///db.sqlite")).lstrip())
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", runner], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    con = sqlite3.connect(tmp_path / "db.sqlite")
    assert con.execute("SELECT key, step, t, x FROM levels ORDER BY key, step").fetchall() == [
        ("a", 0, 0, 1.0), ("a", 1, 1, 4.0), ("b", 0, 0, 3.0), ("b", 1, 1, 2.0)]


@pytest.mark.slow
def test_asyncpg_url_reads_and_writes_real_postgres(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    _exec(postgres_url, "DROP TABLE IF EXISTS a_src", "DROP TABLE IF EXISTS a_dst",
          "CREATE TABLE a_src (t integer, x double precision)", "INSERT INTO a_src VALUES (0, 1.5), (1, 2.5)",
          "CREATE TABLE a_dst (t integer, x double precision)")
    url = postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    (tmp_path / "model.yaml").write_text(textwrap.dedent(f"""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.SQLReader
                args: {{name: src, connection_string: '{url}', query: 'SELECT t, x FROM a_src ORDER BY t',
                        field_names: [t, x]}}
              - type: plugboard_beam.library.SQLWriter
                args: {{name: dst, connection_string: '{url}', table: a_dst, field_names: [t, x]}}
              connectors:
              - {{source: src.t, target: dst.t}}
              - {{source: src.x, target: dst.x}}
    """).lstrip())
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _exec(postgres_url, "SELECT t, x FROM a_dst ORDER BY t") == [(0, 1.5), (1, 2.5)]
