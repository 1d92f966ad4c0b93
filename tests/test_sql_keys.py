"""Issue 15.8: a key never reaches SQL text. ``{key}`` in a reader's query is bound as a
parameter (or refused where it cannot be); hostile keys read exactly their own rows, on SQLite
and on a real PostgreSQL; and connection strings are masked whatever their password holds."""

from __future__ import annotations

from pathlib import Path
import sqlite3
import subprocess

from click.testing import CliRunner
import pytest
import yaml

from conftest import cli_command
from plugboard_beam.library.sql_io import bind_key, safe_url, scrub, substitute_key_in
from test_dataio_postgres import _exec, postgres_url  # noqa: F401  (the session's PostgreSQL server)

HOSTILE = ["a' OR '1'='1", 'x"; DROP TABLE readings;--', "ünï-cødé ☃", "plain", "b' --", "c'||'"]
#: rows per key: key -> [(t, v)]; plus rows of keys no scenario has
ROWS = {k: [(t, float(10 * i + t)) for t in range(i + 1)] for i, k in enumerate(HOSTILE)}
OTHERS = [("a", 0, -1.0), ("x", 0, -2.0), ("1", 0, -3.0)]

MODEL = """
plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.SQLReader
        args:
          name: src
          connection_string: '{url}'
          query: {query}
          field_names: [t, v]
      - type: plugboard_beam.library.JsonLinesWriter
        args: {{name: out, path: 'out/{{key}}.jsonl', fields: [t, v]}}
      connectors:
      - {{source: src.t, target: out.t}}
      - {{source: src.v, target: out.v}}
"""


def _model(folder: Path, url: str, query: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    (folder / "model.yaml").write_text(MODEL.format(url=url, query=yaml.safe_dump(query).strip().removesuffix("...")
                                                    .strip()))
    (folder / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in HOSTILE], allow_unicode=True))
    return folder / "model.yaml"


def _outputs(folder: Path) -> dict[str, list[tuple[int, float]]]:
    import json
    from urllib.parse import unquote

    out = {}
    for p in (folder / "out").glob("*.jsonl"):
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        out[unquote(p.name.removesuffix(".jsonl"))] = [(r["t"], r["v"]) for r in rows]
    return out


def _run(folder: Path, runner: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", "model.yaml", "--scenarios", "keys.yaml", "--runner",
                           runner], cwd=folder, capture_output=True, text=True, timeout=600)


def _sqlite(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE readings (asset TEXT, t INTEGER, v REAL)")
        db.executemany("INSERT INTO readings VALUES (?, ?, ?)",
                       [(k, t, v) for k, rows in ROWS.items() for t, v in rows] + OTHERS)
    return f"sqlite:///{path}"


QUERIES = ["SELECT t, v FROM readings WHERE asset = '{key}' ORDER BY t",
           "SELECT t, v FROM readings WHERE asset = {key} ORDER BY t  -- {key} in a comment stays"]


# ------------------------------------------------------------------ the query text
def test_key_in_a_query_becomes_a_bound_parameter() -> None:
    assert bind_key("SELECT * FROM t WHERE a = '{key}'") == "SELECT * FROM t WHERE a = :pbb_key"
    assert bind_key("SELECT * FROM t WHERE a={key} AND b = 'x'") == "SELECT * FROM t WHERE a=:pbb_key AND b = 'x'"
    assert bind_key("SELECT '{x}', \"{key\" FROM t -- {key}\nWHERE a = ({key})") == (
        "SELECT '{x}', \"{key\" FROM t -- {key}\nWHERE a = (:pbb_key)")
    assert bind_key("SELECT 'it''s', a FROM t WHERE a = '{key}' /* {key} */") == (
        "SELECT 'it''s', a FROM t WHERE a = :pbb_key /* {key} */")


@pytest.mark.parametrize("query, where", [
    ("SELECT * FROM t WHERE a LIKE '{key}%'", "inside a string literal with other text"),
    ("SELECT * FROM t WHERE a = 'pre-''{key}'''", "inside a string literal with other text"),
    ('SELECT * FROM "t_{key}"', "inside a quoted name"),
    ("SELECT * FROM `{key}`", "inside a quoted name"),
    ("SELECT * FROM readings_{key}", "as part of a name or a word"),
    ("SELECT * FROM s.{key}", "as part of a name or a word"),
    ("SELECT $$ {key} $$", "inside a dollar-quoted string"),
])
def test_key_where_it_cannot_be_bound_is_refused(query: str, where: str) -> None:
    with pytest.raises(ValueError, match=rf"\{{key\}} {where} cannot be bound as a parameter"):
        bind_key(query)


def test_refused_query_is_one_clear_message_at_start(tmp_path: Path) -> None:
    from plugboard_beam.cli.main import main

    url = _sqlite(tmp_path / "db.sqlite")
    _model(tmp_path / "m", url, 'SELECT t, v FROM "readings_{key}"')
    result = CliRunner().invoke(main, ["process", "run", str(tmp_path / "m" / "model.yaml"), "--runner", "local",
                                       "--scenarios", str(tmp_path / "m" / "keys.yaml")])
    assert result.exit_code != 0
    assert "src" in result.output and "{key} inside a quoted name cannot be bound" in result.output
    assert "Traceback" not in result.output


def test_key_column_with_key_in_the_query_is_refused() -> None:
    from plugboard_beam.library.sql_io import SQLReader

    with pytest.raises(ValueError, match=r"cannot depend on \{key\}"):
        SQLReader(name="r", connection_string="sqlite://", query="SELECT * FROM t WHERE a = {key}",
                  key_column="a", field_names=["x"])
    with pytest.raises(ValueError, match="'pbb_key' is reserved"):
        SQLReader(name="r", connection_string="sqlite://", query="SELECT 1", params={"pbb_key": 1},
                  field_names=["x"])


def test_key_in_a_connection_string_names_only_the_database() -> None:
    assert substitute_key_in("connection_string", "sqlite:///db-{key}.db", "k1") == "sqlite:///db-k1.db"
    assert substitute_key_in("connection_string", "postgresql://u:p@h/db_{key}", "a") == "postgresql://u:p@h/db_a"
    for template, key in [("postgresql://u:p@h/db_{key}", "x?host=evil.example"),
                          ("postgresql://u:p@h:5432/db_{key}", "d?sslmode=disable"),
                          ("postgresql://u:p@{key}/db", "evil.example"),
                          ("postgresql://{key}:p@h/db", "admin")]:
        with pytest.raises(ValueError, match=r"may only be .*the database name"):
            substitute_key_in("connection_string", template, key)
    # a writer's table name: a path-safe name, quoted by SQLAlchemy
    assert substitute_key_in("table", "out_{key}", "a/b") == "out_a%2Fb"


# ------------------------------------------------------------------ hostile keys read their own rows
@pytest.mark.slow
@pytest.mark.parametrize("query", QUERIES)
def test_hostile_keys_read_exactly_their_rows_sqlite_local(tmp_path: Path, query: str) -> None:
    url = _sqlite(tmp_path / "db.sqlite")
    model = _model(tmp_path / "m", url, query)
    proc = _run(model.parent, "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(model.parent) == {k: [(t, v) for t, v in rows] for k, rows in ROWS.items()}
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        assert db.execute("SELECT count(*) FROM readings").fetchone() == (sum(map(len, ROWS.values())) + 3,)


@pytest.mark.slow
def test_a_scenario_overriding_the_query_gets_its_key_bound_too(tmp_path: Path) -> None:
    """A scenarios file may replace the query per key (SQL text, trusted like the model file);
    the ``{key}`` in it is bound all the same."""
    url = _sqlite(tmp_path / "db.sqlite")
    model = _model(tmp_path / "m", url, "SELECT 0 AS t, 0.0 AS v")
    override = "SELECT t, v FROM readings WHERE asset = '{key}' AND t >= 1 ORDER BY t"
    (model.parent / "keys.yaml").write_text(yaml.safe_dump([{"key": k, "src.query": override} for k in HOSTILE],
                                                           allow_unicode=True))
    proc = _run(model.parent, "local")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(model.parent) == {k: [(t, v) for t, v in rows if t >= 1] for k, rows in ROWS.items()}


@pytest.mark.slow
def test_hostile_keys_read_exactly_their_rows_sqlite_direct(tmp_path: Path) -> None:
    url = _sqlite(tmp_path / "db.sqlite")
    model = _model(tmp_path / "m", url, QUERIES[0])
    proc = _run(model.parent, "direct")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(model.parent) == {k: [(t, v) for t, v in rows] for k, rows in ROWS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
def test_hostile_keys_read_exactly_their_rows_postgres(postgres_url: str, tmp_path: Path,  # noqa: F811
                                                       runner: str) -> None:
    _exec(postgres_url, "DROP TABLE IF EXISTS readings",
          "CREATE TABLE readings (asset text, t integer, v double precision)")
    values = [(k, t, v) for k, rows in ROWS.items() for t, v in rows] + OTHERS
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO readings VALUES (:a, :t, :v)"), [{"a": a, "t": t, "v": v} for a, t, v in values])
    engine.dispose()
    model = _model(tmp_path / "m", postgres_url, QUERIES[0].replace("readings", "public.readings"))
    proc = _run(model.parent, runner)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _outputs(model.parent) == {k: [(t, v) for t, v in rows] for k, rows in ROWS.items()}
    assert _exec(postgres_url, "SELECT count(*) FROM readings") == [(len(values),)]


@pytest.mark.slow
def test_hostile_key_in_a_writer_table_name_is_a_quoted_name(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """``table: out_{key}``: the key is part of a quoted name; a key meaning to drop a table finds
    no such table (its key fails, named), and the table it aimed at is still there."""
    from plugboard_beam.library.data import DataError
    from plugboard_beam.library.sql_io import SQLTable

    _exec(postgres_url, "DROP TABLE IF EXISTS victim", "CREATE TABLE victim (x double precision)",
          "INSERT INTO victim VALUES (1)")
    name = substitute_key_in("table", "out_{key}", 'x"; DROP TABLE victim;--')
    table = SQLTable(postgres_url, name, None, ["x"], "component 'dst'")
    with pytest.raises(DataError, match="no table 'out_x\"; DROP TABLE victim;--'"):
        table.insert([("k", 0, (1.0,))])
    assert _exec(postgres_url, "SELECT x FROM victim") == [(1.0,)]


# ------------------------------------------------------------------ credentials masked
PASSWORDS = ["p@ss", "pa:ss", "a/b@c", "x%40y", "s3cr3t:w@rd/x%2F"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_is_never_shown_whatever_it_holds(password: str) -> None:
    from urllib.parse import unquote

    for url in (f"postgresql://user:{password}@db.example:5432/prod",
                f"postgresql+psycopg://user:{password}@db.example/prod?sslmode=require"):
        shown = safe_url(url)
        assert "db.example" in shown and "/prod" in shown, shown
        assert shown.split("//", 1)[1].rsplit("@", 1)[0] in ("user:***", "***"), shown
        for piece in {password, unquote(password), *password.split("@"), *password.split(":")} - {""}:
            if len(piece) >= 3:
                assert piece not in shown.replace("db.example", "").replace("/prod", ""), (url, shown)
        assert scrub(f"could not connect to {url}: bad password {unquote(password)}", url).count("***") >= 1
        assert unquote(password) not in scrub(f"error for {url}: {unquote(password)}", url)


def test_an_unparsable_url_shows_nothing_before_the_last_at() -> None:
    assert safe_url("postgresql://user:sec:ret@host:xx/db") == "postgresql://***@host:xx/db"
    assert safe_url("postgresql://user:p@ss@host/db") == "postgresql://***@host/db"
    assert safe_url("postgresql://user:pa%40ss@host/db") == "postgresql://user:***@host/db"
    assert safe_url("sqlite:///data/levels.db") == "sqlite:///data/levels.db"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "x%40y%3Az"])
def test_errors_of_an_unreachable_database_mask_the_password(tmp_path: Path, password: str) -> None:
    import socket

    from plugboard_beam.library.data import DataError
    from plugboard_beam.library.sql_io import SQLReader, SQLTable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://user:{password}@127.0.0.1:{port}/db"
    from urllib.parse import unquote

    secret_pieces = [p for p in {password, unquote(password), "ss:w", "w/rd", "40y", "y%3Az"} if p in url or
                     p in unquote(url)]
    for run in (lambda: SQLTable(url, "t", None, ["x"], "component 'w'").insert([("k", 0, (1.0,))]),
                lambda: list(SQLReader(name="r", connection_string=url, query="SELECT 1 AS x",
                                       field_names=["x"])._query_rows(False))):
        with pytest.raises(DataError) as err:
            run()
        message = str(err.value)
        assert "127.0.0.1" in message
        for piece in secret_pieces:
            assert piece not in message, (piece, message)


def test_spec_and_cli_messages_mask_the_password(tmp_path: Path) -> None:
    """A model whose SQL writer cannot reach its database: the CLI's one-line error shows the
    URL masked."""
    import socket

    from plugboard_beam.cli.main import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://user:p@ss:w/rd@127.0.0.1:{port}/db"
    _model(tmp_path / "m", url, "SELECT 1 AS t, 2.0 AS v")
    result = CliRunner().invoke(main, ["process", "run", str(tmp_path / "m" / "model.yaml"), "--runner", "local"])
    assert result.exit_code != 0
    assert "127.0.0.1" in result.output
    for piece in ("p@ss", "ss:w", "w/rd"):
        assert piece not in result.output, result.output

