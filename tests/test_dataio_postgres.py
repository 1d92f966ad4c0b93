"""SQLReader / SQLWriter against a real PostgreSQL 15 server on loopback.

The session fixture starts the server as the ``postgres`` user (``initdb -A trust`` in a fresh
folder, ``pg_ctl`` on a free port, listening on 127.0.0.1 only) and stops it at the end. The
binaries come from the machine (``.ci/run`` installs Debian's ``postgresql`` if they are
missing); with ``CI=true`` a server that cannot start fails the tests instead of skipping them.
"""

from __future__ import annotations

from collections.abc import Iterator
import glob
import os
from pathlib import Path
import pwd
import shutil
import socket
import subprocess
import tempfile
import textwrap

import pytest

from conftest import cli_command


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL server needed in CI: {reason}")
    pytest.skip(f"PostgreSQL server unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/postgres`` of a server running for this session."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        _unavailable("initdb/pg_ctl not found (install Debian's postgresql package)")
    assert initdb and pg_ctl
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="pbb-pg-"))
    if as_user:
        os.chown(folder, pw.pw_uid, pw.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, text=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60",
                        "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off", "start"],
                       check=True, capture_output=True, text=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if log.exists():
            detail += log.read_text()[-1000:]
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(f"{exc}: {detail.strip()[-1500:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _exec(url: str, *sql: str) -> list[tuple[object, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            rows: list[tuple[object, ...]] = []
            for s in sql:
                res = conn.execute(text(s))
                if res.returns_rows:
                    rows = [tuple(r) for r in res]
            return rows
    finally:
        engine.dispose()


MODEL = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.sql_io.SQLReader
            args:
              name: src
              connection_string: {url}
              query: 'SELECT t, "Level" AS x FROM "Sensor Readings" WHERE asset = :asset ORDER BY t'
              params: {{asset: a}}
              field_names: [t, x]
          - type: plugboard_beam.library.sql_io.SQLWriter
            args: {{name: dst, connection_string: {url}, table: Out Levels, field_names: [t, x]}}
          connectors:
          - {{source: src.t, target: dst.t}}
          - {{source: src.x, target: dst.x}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
def test_postgres_read_and_write_real_tables(postgres_url: str, tmp_path: Path, runner: str) -> None:
    _exec(postgres_url,
          'DROP TABLE IF EXISTS "Sensor Readings"', 'DROP TABLE IF EXISTS "Out Levels"',
          'CREATE TABLE "Sensor Readings" (asset text, t integer, "Level" double precision)',
          """INSERT INTO "Sensor Readings" VALUES ('a', 1, 2.5), ('b', 0, 9), ('a', 0, 1.25), ('a', 2, 4)""",
          'CREATE TABLE "Out Levels" (key text, step integer, t integer, x double precision, PRIMARY KEY (key, step))')
    (tmp_path / "model.yaml").write_text(textwrap.dedent(MODEL.format(url=postgres_url)).lstrip())
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", runner], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _exec(postgres_url, 'SELECT key, step, t, x FROM "Out Levels" ORDER BY step') == [
        ("default", 0, 0, 1.25), ("default", 1, 1, 2.5), ("default", 2, 2, 4.0)]


def test_postgres_writer_is_idempotent_on_key_and_step(postgres_url: str) -> None:
    from plugboard_beam.library.sql_io import SQLTable

    _exec(postgres_url, 'DROP TABLE IF EXISTS "idem"',
          'CREATE TABLE "idem" (key text, step integer, x double precision, PRIMARY KEY (key, step))')
    table = SQLTable(postgres_url, "idem", None, ["x"], "test")
    table.insert([("k1", 0, (1.0,)), ("k1", 1, (2.0,))])
    table.insert([("k1", 1, (2.0,)), ("k1", 0, (1.0,)), ("k2", 0, (5.0,))])  # redelivered steps + a new key
    table.close()
    assert _exec(postgres_url, 'SELECT key, step, x FROM "idem" ORDER BY key, step') == [
        ("k1", 0, 1.0), ("k1", 1, 2.0), ("k2", 0, 5.0)]


def test_postgres_missing_table_is_named(postgres_url: str) -> None:
    from plugboard_beam.library.data import DataError
    from plugboard_beam.library.sql_io import SQLTable

    table = SQLTable(postgres_url, "no such table", None, ["x"], "component 'w'")
    with pytest.raises(DataError, match="no table 'no such table'"):
        table.insert([("k", 0, (1.0,))])


@pytest.mark.slow
def test_postgres_keyed_read_and_many_key_sink(postgres_url: str, tmp_path: Path) -> None:
    """One query feeds every key's instance (keys from the data); all keys' rows go back into one
    table through batched inserts; running twice writes nothing twice."""
    _exec(postgres_url,
          'DROP TABLE IF EXISTS "history"', 'DROP TABLE IF EXISTS "levels"',
          'CREATE TABLE "history" (asset text, t integer, x double precision)',
          """INSERT INTO "history" VALUES ('p2', 1, 4), ('p1', 0, 1), ('p2', 0, 3), ('p1', 1, 2), ('p3', 0, 7)""",
          'CREATE TABLE "levels" (key text, step integer, t integer, x double precision, PRIMARY KEY (key, step))')
    (tmp_path / "model.yaml").write_text(textwrap.dedent(f"""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.SQLReader
                args: {{name: src, connection_string: '{postgres_url}', query: 'SELECT * FROM history',
                        key_column: asset, order_by: t, field_names: [t, x]}}
              - type: plugboard_beam.library.SQLWriter
                args: {{name: dst, connection_string: '{postgres_url}', table: levels, field_names: [t, x]}}
              connectors:
              - {{source: src.t, target: dst.t}}
              - {{source: src.x, target: dst.x}}
    """).lstrip())
    for _ in range(2):
        proc = subprocess.run([*cli_command(), "process", "run", "model.yaml"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert _exec(postgres_url, 'SELECT key, step, t, x FROM "levels" ORDER BY key, step') == [
        ("p1", 0, 0, 1.0), ("p1", 1, 1, 2.0), ("p2", 0, 0, 3.0), ("p2", 1, 1, 4.0), ("p3", 0, 0, 7.0)]


def test_unreachable_postgres_is_named_quickly(tmp_path: Path) -> None:
    import time

    from plugboard_beam.library.data import DataError
    from plugboard_beam.library.sql_io import SQLTable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once this block ends: nothing listens there
    table = SQLTable(f"postgresql://u:secret@127.0.0.1:{port}/db", "t", None, ["x"], "component 'w'")
    start = time.monotonic()
    with pytest.raises(DataError, match=rf"cannot reach database postgresql://u:\*\*\*@127.0.0.1:{port}/db") as err:
        table.insert([("k", 0, (1.0,))])
    assert "secret" not in str(err.value) and time.monotonic() - start < 30


def test_postgres_refusing_one_keys_rows_keeps_the_others(postgres_url: str) -> None:
    """A many-key insert batch with one key's value PostgreSQL refuses (text for a double column):
    that key fails, named with its first step; the other keys' rows of the batch are inserted."""
    import json

    from plugboard_beam.lowering.dataio.sinks import SinkWrite, _InsertRows

    _exec(postgres_url, 'DROP TABLE IF EXISTS "mixed"',
          'CREATE TABLE "mixed" (key text, step integer, x double precision, PRIMARY KEY (key, step))')
    fn = _InsertRows(SinkWrite("dst", "sql", ("x",), "mixed", connection_string=postgres_url))
    fn.setup()
    fn.start_bundle()
    rows = [("a", 0, (1.0,)), ("b", 0, (2.0,)), ("b", 1, ("abc",)), ("c", 0, (3.0,))]
    failures = [json.loads(f) for f in fn.process(rows)] + [json.loads(f.value) for f in fn.finish_bundle()]
    fn.teardown()
    assert [(f["key"], f["component"], f["step"], f["phase"]) for f in failures] == [("b", "dst", 0, "write")]
    assert "refused it" in failures[0]["reason"]
    assert _exec(postgres_url, 'SELECT key, step, x FROM "mixed" ORDER BY key') == [("a", 0, 1.0), ("c", 0, 3.0)]
