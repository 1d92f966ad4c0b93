"""State backends (``plugboard_beam.state``): plugboard's API on the dict, SQLite and a real
PostgreSQL server; the rows per key; ``LocalProcess``, ``--runner local`` and the DirectRunner
writing what ran and what failed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import subprocess
import typing as _t

import pytest
import yaml

from conftest import cli_command
from failing_parts import SOURCE as FAILING_PARTS
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.exceptions import NotFoundError, StepError
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec, Status
from plugboard_beam.state import (
    DictStateBackend,
    PostgresStateBackend,
    SqliteStateBackend,
    StateBackend,
    is_job_id,
    new_job_id,
)
from plugboard_beam.utils.di import DI
from test_dataio_postgres import postgres_url  # noqa: F401  (the session's PostgreSQL server)


class Count(Component):
    io = IO(outputs=["x"])

    def __init__(self, n: int = 3, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self._n, self._i = n, 0

    async def step(self) -> None:
        if self._i >= self._n:
            await self.io.close()
            return
        self._i += 1
        self.x = self._i


class Take(Component):
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, fail_at: int = -1, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self._fail_at = fail_at

    async def step(self) -> None:
        if self.x == self._fail_at:
            raise RuntimeError(f"broke at {self.x}")
        self.y = self.x


def run(coro: _t.Awaitable[_t.Any]) -> _t.Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture(params=["dict", "sqlite", "postgres"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_t.Callable[..., StateBackend]]:
    """A factory of backends of one kind, all on one database."""
    if request.param == "dict":
        yield lambda **kw: DictStateBackend(**kw)
    elif request.param == "sqlite":
        yield lambda **kw: SqliteStateBackend(str(tmp_path / "state.db"), **kw)
    else:
        url = request.getfixturevalue("postgres_url")
        yield lambda **kw: PostgresStateBackend(url, **kw)


def _process(state: _t.Optional[StateBackend] = None, fail_at: int = -1, name: str = "P1") -> LocalProcess:
    return LocalProcess(
        components=[Count(name="a", n=3), Take(name="b", fail_at=fail_at)],
        connectors=[AsyncioConnector(spec=ConnectorSpec(source="a.x", target="b.x"))],
        name=name, state=state)


# ---------------------------------------------------------------------------- jobs and ids
def test_job_ids_look_like_plugboards() -> None:
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_job_id(i) and i.startswith("Job_") and len(i) == 20 for i in ids)
    assert not is_job_id("Job_short") and not is_job_id("job_abcdefgh12") and not is_job_id("Job_abc:defgh123")


def test_job_id_from_the_environment(make_backend: _t.Callable[..., StateBackend],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # plugboard's PLUGBOARD_JOB_ID: the job of a backend given none; one given must agree with it
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_fromtheenv123")
    backend = make_backend()
    run(backend.init())
    assert backend.job_id == "Job_fromtheenv123"
    run(backend.destroy())
    same = make_backend(job_id="Job_fromtheenv123")
    run(same.init())
    assert same.job_id == "Job_fromtheenv123"
    with pytest.raises(RuntimeError, match="Job ID Job_other12345 does not match environment variable "
                                           "PLUGBOARD_JOB_ID=Job_fromtheenv123"):
        run(make_backend(job_id="Job_other12345").init())
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "nope")
    with pytest.raises(ValueError, match="invalid job id 'nope'"):
        run(make_backend().init())
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_" + "a" * 200)  # a job id has at most 124 letters
    with pytest.raises(ValueError, match=r"invalid job id 'Job_a+\.\.\.'"):
        run(make_backend().init())


class _JobOfDI(Component):
    """Keeps the job id plugboard's DI container gives it in ``init``."""

    io = IO(outputs=["b"])

    async def init(self) -> None:
        await super().init()
        self.seen = DI.job_id.resolve_sync()

    async def step(self) -> None:
        await self.io.close()


def test_local_process_job_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # a LocalProcess whose state backend is given no job id runs as $PLUGBOARD_JOB_ID, and its
    # components see that id in DI (they failed with "does not match" while the backend made its own)
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_fromtheenv123")
    comp = _JobOfDI(name="c")
    process = LocalProcess(components=[comp], connectors=[], state=DictStateBackend())

    async def go() -> None:
        async with process:
            assert process.state.job_id == "Job_fromtheenv123" and comp.seen == "Job_fromtheenv123"

    run(go())


def test_init_makes_or_checks_the_job(make_backend: _t.Callable[..., StateBackend]) -> None:
    made = make_backend(metadata={"who": "me"})
    run(made.init())
    assert is_job_id(made.job_id) and made.metadata == {"who": "me"} and made.created_at.startswith("20")
    run(made.destroy())
    with pytest.raises(ValueError, match="invalid job id 'nope'"):
        run(make_backend(job_id="nope").init())
    mine = make_backend(job_id="Job_abcdefgh1234")
    run(mine.init())
    assert mine.job_id == "Job_abcdefgh1234"
    with pytest.raises(ValueError, match="Invalid entity id"):
        mine._get_db_id("a:b:c")
    with pytest.raises(ValueError, match="does not belong to job"):
        mine._get_db_id("Job_other12345:P1")
    assert mine._get_db_id("P1") == "Job_abcdefgh1234:P1" == mine._get_db_id("Job_abcdefgh1234:P1")
    run(mine.destroy())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_persistent_job_is_joined_and_metadata_merged(kind: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    def make(**kw: _t.Any) -> StateBackend:
        if kind == "sqlite":
            return SqliteStateBackend(str(tmp_path / "s.db"), **kw)
        return PostgresStateBackend(request.getfixturevalue("postgres_url"), **kw)

    job = new_job_id()
    first = make(job_id=job, metadata={"a": 1, "b": 1})
    run(first.init())
    second = make(job_id=job, metadata={"b": 2})
    run(second.init())
    assert second.metadata == {"a": 1, "b": 2} and second.created_at == first.created_at


def test_dict_backend_cannot_rejoin_a_job() -> None:
    job = new_job_id()
    backend = DictStateBackend(job_id=job, metadata={"a": 1})
    run(backend.init())
    again = DictStateBackend(job_id=job, metadata={"b": 2})
    run(again.init())
    assert again.metadata == {"b": 2}


# ---------------------------------------------------------------------------- plugboard's API
def test_process_component_connector_round_trip(make_backend: _t.Callable[..., StateBackend]) -> None:
    async def go() -> None:
        backend = make_backend()
        async with backend:
            p1, p2 = _process(name="P1"), LocalProcess(components=[Count(name="c")], connectors=[], name="P2")
            await backend.upsert_process(p1, with_components=True)
            await backend.upsert_process(p2)
            assert await backend.get_process("P1") == p1.dict()
            assert (await backend.get_process("P2"))["components"] == {"c": {}}
            conn = next(iter(p1.connectors.values()))
            assert await backend.get_connector(conn.id) == {"id": "a.x..b.x", "spec": conn.spec.model_dump()}
            comp = p2.components["c"]
            comp.__dict__["_status"] = Status.RUNNING
            await backend.upsert_component(comp)
            assert (await backend.get_component("c"))["status"] == "running"
            assert (await backend.get_process_for_component("c"))["name"] == "P2"
            assert await backend.get_process_status("P2") == Status.CREATED
            await backend.update_process_status("P2", Status.RUNNING)
            assert await backend.get_process_status_for_component("c") == Status.RUNNING
            comp.__dict__["_status"] = Status.FAILED
            await backend.upsert_component(comp)
            assert await backend.get_process_status("P2") == Status.FAILED  # a failed component fails it
            assert await backend.get_process_status("P1") == Status.CREATED
            with pytest.raises(NotFoundError, match="not found"):
                await backend.get_process_status("nope")
            with pytest.raises(NotFoundError, match="No process found for component"):
                await backend.get_process_status_for_component("nope")
            with pytest.raises(NotFoundError, match="No process found for component"):
                await backend.upsert_component(Count(name="stray"))
    run(go())


def test_jobs_sharing_a_database_stay_apart(tmp_path: Path) -> None:
    async def go() -> None:
        one = SqliteStateBackend(str(tmp_path / "s.db"))
        two = SqliteStateBackend(str(tmp_path / "s.db"))
        await one.init()
        await two.init()
        await one.upsert_process(_process(name="P"))
        with pytest.raises(NotFoundError):
            await two.get_process("P")
        assert (await one.get_process("P"))["name"] == "P"
    run(go())


def test_sql_values_are_parameters_not_sql(tmp_path: Path) -> None:
    """Names and keys with quotes and SQL in them are stored as given."""
    backend = SqliteStateBackend(str(tmp_path / "s.db"), job_id=new_job_id())
    evil = "k'); DROP TABLE job; --"
    backend.record_key("P'1", evil, {"a": "completed"}, expected=["a"])
    assert [r["key"] for r in backend.keys("P'1")] == [evil]
    run(backend.init())  # the job table is still there


# ---------------------------------------------------------------------------- rows per key
def test_key_rows_merge_stage_reports(make_backend: _t.Callable[..., StateBackend]) -> None:
    backend = make_backend(job_id=new_job_id())
    expected = ["a", "b", "c"]
    backend.record_key("P", "k1", {"a": "running"}, expected=expected)
    backend.record_key("P", "k1", {"b": "running", "c": "running"}, expected=expected)
    assert backend.keys("P")[0]["status"] == "running"
    backend.record_key("P", "k1", {"a": "completed"}, expected=expected)
    backend.record_key("P", "k1", {"b": "completed", "c": "stopped"}, expected=expected)
    row = backend.keys("P")[0]
    assert row["status"] == "completed" and row["components"] == {"a": "completed", "b": "completed", "c": "stopped"}
    failure = {"component": "b", "step": 2, "phase": "step", "error_type": "RuntimeError", "reason": "broke at 2"}
    backend.record_key("P", "k2", {"b": "failed", "c": "completed"}, [failure], expected=expected)
    backend.record_key("P", "k2", {"a": "completed"}, expected=expected)
    assert [r["key"] for r in backend.keys("P")] == ["k1", "k2"]
    assert [r["key"] for r in backend.keys("P", status="failed")] == ["k2"]
    k2 = run(backend.get_key("P", "k2"))
    assert k2["status"] == "failed" and k2["failures"] == [failure] and k2["job_id"] == backend.job_id
    with pytest.raises(NotFoundError):
        run(backend.get_key("P", "k3"))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_reports_of_one_key_all_count(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Writers in other threads (Beam stages of one key) merge into the one row, none lost."""
    job = new_job_id()
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else ""
    names = [f"c{i}" for i in range(12)]

    def report(name: str) -> None:
        backend: StateBackend = (SqliteStateBackend(str(tmp_path / "s.db"), job_id=job) if kind == "sqlite"
                                 else PostgresStateBackend(url, job_id=job))
        backend.record_key("P", "k", {name: "completed"}, expected=names)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(report, names))
    reader = SqliteStateBackend(str(tmp_path / "s.db"), job_id=job) if kind == "sqlite" else \
        PostgresStateBackend(url, job_id=job)
    (row,) = reader.keys("P")
    assert row["components"] == {n: "completed" for n in names} and row["status"] == "completed"


# ---------------------------------------------------------------------------- LocalProcess
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_local_process_writes_what_ran(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def make() -> StateBackend:
        if kind == "sqlite":
            return SqliteStateBackend(str(tmp_path / "s.db"))
        return PostgresStateBackend(request.getfixturevalue("postgres_url"))

    async def go() -> None:
        backend = make()
        process = _process(backend)
        await process.init()
        assert await backend.get_process_status("P1") == Status.INIT
        assert (await backend.get_component("b"))["status"] == "init"
        await process.run()
        job = process.state.job_id
        await process.destroy()
        check = SqliteStateBackend(str(tmp_path / "s.db"), job_id=job) if kind == "sqlite" else \
            PostgresStateBackend(request.getfixturevalue("postgres_url"), job_id=job)
        await check.init()
        assert await check.get_process_status("P1") == Status.COMPLETED
        data = await check.get_process("P1")
        assert {k: v["status"] for k, v in data["components"].items()} == {"a": "completed", "b": "completed"}
        (row,) = await check.get_keys("P1")
        assert row["key"] == "default" and row["status"] == "completed" and row["failures"] == []

    run(go())


def test_local_process_writes_what_failed(tmp_path: Path) -> None:
    backend = SqliteStateBackend(str(tmp_path / "s.db"))

    async def go() -> str:
        process = _process(backend, fail_at=2)
        with pytest.raises(StepError):
            async with process:
                await process.run()
        assert process.status == Status.FAILED
        return process.state.job_id

    run(go())
    rows = [r for r in SqliteStateBackend(str(tmp_path / "s.db"), job_id=_only_job(tmp_path / "s.db")).keys("P1")]
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    (failure,) = rows[0]["failures"]
    assert failure == {"component": "b", "step": 1, "phase": "step", "error_type": "RuntimeError",
                       "reason": "broke at 2"}
    assert rows[0]["components"]["b"] == "failed"


def _only_job(db: Path) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        (job,) = [r[0] for r in conn.execute(sa.text("SELECT id FROM job"))]
    engine.dispose()
    return str(job)


def test_local_process_default_state_is_a_dict_backend() -> None:
    process = _process()
    assert isinstance(process.state, DictStateBackend)

    async def go() -> None:
        async with process:
            await process.run()
        assert process.status == Status.COMPLETED
    run(go())


# ---------------------------------------------------------------------------- command line
MODEL = """
plugboard:
  process:
    args:
      name: status-demo
      components:
      - type: parts.Emit
        args: {{name: src, n: 3}}
      - type: parts.Fragile
        args: {{name: mid, fail_at: {fail_at}}}
      - type: parts.Sink
        args: {{name: dst}}
      connectors:
      - {{source: src.x, target: mid.x}}
      - {{source: mid.y, target: dst.y}}
      state:
        type: {type}
        args: {args}
"""
SINK = '''

class Sink(Component):
    io = IO(inputs=["y"])

    async def step(self):
        pass
'''


def _cli_model(tmp_path: Path, state_args: dict[str, _t.Any], type_: str = "plugboard_beam.state.SqliteStateBackend",
               fail_at: int = -1) -> Path:
    (tmp_path / "parts.py").write_text(FAILING_PARTS + SINK)
    args = yaml.safe_dump(state_args, default_flow_style=True).strip()
    (tmp_path / "model.yaml").write_text(MODEL.format(type=type_, args=args, fail_at=fail_at))
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"key": "ok"}, {"key": "bad", "mid.fail_at": 2}]))
    return tmp_path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _check_cli_rows(backend: StateBackend) -> None:
    rows = {r["key"]: r for r in backend.keys("status-demo")}
    assert set(rows) == {"ok", "bad"}
    assert rows["ok"]["status"] == "completed" and rows["ok"]["failures"] == []
    assert rows["ok"]["components"] == {"src": "completed", "mid": "completed", "dst": "completed"}
    assert rows["bad"]["status"] == "failed" and rows["bad"]["components"]["mid"] == "failed"
    (failure,) = rows["bad"]["failures"]
    assert (failure["component"], failure["step"], failure["phase"]) == ("mid", 1, "step")
    assert failure["reason"] == "broke at 2"
    assert run(backend.get_process_status("status-demo")) == Status.FAILED
    assert set(run(backend.get_process("status-demo"))["components"]) == {"src", "mid", "dst"}


def test_runner_local_writes_a_row_per_key(tmp_path: Path) -> None:
    job = new_job_id()
    work = _cli_model(tmp_path, {"db_path": "state.db", "job_id": job})
    proc = _cli("process", "run", "--runner", "local", "model.yaml", "--scenarios", "keys.yaml", cwd=work)
    assert proc.returncode == 1, proc.stderr
    assert f"state: job {job}, process 'status-demo' (SqliteStateBackend)" in proc.stderr
    _check_cli_rows(SqliteStateBackend(str(work / "state.db"), job_id=job))


def test_runner_local_job_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # plugboard's PLUGBOARD_JOB_ID names the run when neither --job-id nor the model gives one
    work = _cli_model(tmp_path, {"db_path": "state.db"})
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_fromtheenv123")
    proc = _cli("process", "run", "--runner", "local", "model.yaml", "--scenarios", "keys.yaml", cwd=work)
    assert proc.returncode == 1, proc.stderr
    assert "state: job Job_fromtheenv123, process 'status-demo'" in proc.stderr
    _check_cli_rows(SqliteStateBackend(str(work / "state.db"), job_id="Job_fromtheenv123"))
    clash = _cli("process", "run", "--runner", "local", "model.yaml", "--job-id", "Job_other12345", cwd=work)
    assert clash.returncode == 2 and "Traceback" not in clash.stderr, clash.stderr
    assert "--job-id: Job ID Job_other12345 does not match environment variable PLUGBOARD_JOB_ID" in clash.stderr
    # the variable is input like any other: bounded and checked before use, one line naming it
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_" + "a" * 100_000)
    long = _cli("process", "run", "--runner", "local", "model.yaml", cwd=work)
    assert long.returncode == 2 and "Traceback" not in long.stderr and "internal error" not in long.stderr
    assert "PLUGBOARD_JOB_ID: invalid job id 'Job_aaaa" in long.stderr and len(long.stderr) < 2_000, long.stderr


@pytest.mark.slow
def test_direct_runner_writes_a_row_per_key_sqlite(tmp_path: Path) -> None:
    job = new_job_id()
    work = _cli_model(tmp_path, {"db_path": str(tmp_path / "state.db"), "job_id": job})
    proc = _cli("process", "run", "model.yaml", "--scenarios", "keys.yaml", "--stages", "component", cwd=work)
    assert proc.returncode == 1, proc.stderr
    _check_cli_rows(SqliteStateBackend(str(work / "state.db"), job_id=job))


@pytest.mark.slow
def test_direct_runner_writes_a_row_per_key_postgres(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    job = new_job_id()
    work = _cli_model(tmp_path, {"db_url": postgres_url, "job_id": job}, "plugboard.state.PostgresStateBackend")
    proc = _cli("process", "run", "model.yaml", "--scenarios", "keys.yaml", cwd=work)
    assert proc.returncode == 1, proc.stderr
    _check_cli_rows(PostgresStateBackend(postgres_url, job_id=job))


@pytest.mark.parametrize("runner, type_, args, message", [
    ("direct", "plugboard.state.DictStateBackend", {}, "a DictStateBackend lives in one process's memory"),
    ("dataflow", "plugboard_beam.state.SqliteStateBackend", {}, "not yet by --runner dataflow"),
    ("direct --streaming", "plugboard_beam.state.SqliteStateBackend", {}, "not yet by streaming runs (--streaming)"),
    ("local", "plugboard.state.RayStateBackend", {}, "Ray's work is done by Beam here"),
    ("local", "mypkg.Nope", {}, "'mypkg.Nope' is not a state backend"),
    ("local", "plugboard_beam.state.SqliteStateBackend", {"job_id": "Job_1"}, "job_id 'Job_1' is not a job id"),
    ("local", "plugboard_beam.state.SqliteStateBackend", {"path": "x"}, "takes db_path, metadata and job_id, not path"),
])
def test_state_that_cannot_work_is_refused(tmp_path: Path, runner: str, type_: str, args: dict[str, _t.Any],
                                           message: str) -> None:
    work = _cli_model(tmp_path, args, type_)
    proc = _cli("process", "run", "--runner", *runner.split(), "model.yaml", cwd=work)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (work / "plugboard.db").exists()


def test_unwritable_state_is_one_clear_error(tmp_path: Path) -> None:
    work = _cli_model(tmp_path, {"db_path": str(tmp_path / "no" / "such" / "dir" / "s.db")})
    proc = _cli("process", "run", "--runner", "local", "model.yaml", cwd=work)
    assert proc.returncode != 0 and "state: cannot write to plugboard_beam.state.SqliteStateBackend" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_readme_state_example_runs(tmp_path: Path) -> None:
    """The README's state section: the model file, the run, then the query."""
    from test_readme import blocks

    (yaml_block,), (shell_block,), (python_block,) = (blocks(lang, "Run status: state backends")
                                                      for lang in ("yaml", "shell", "python"))
    (tmp_path / "parts.py").write_text(FAILING_PARTS + SINK)
    (tmp_path / "status.yaml").write_text(yaml_block)
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"key": "ok"}, {"key": "bad", "mid.fail_at": 2}]))
    for line in shell_block.strip().splitlines():
        args = line.split()
        assert args[:2] == ["plugboard-beam", "process"], line
        proc = _cli(*args[1:], cwd=tmp_path)
        assert proc.returncode == 1 and "1 of 2 model instance(s) failed" in proc.stderr, proc.stderr
    script = tmp_path / "query.py"
    script.write_text(python_block)
    import sys
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["bad failed mid step 1 broke at 2", "ok completed"], out.stdout


class Odd(Component):
    """Emits a value ``dict()`` cannot copy (a generator)."""

    io = IO(outputs=["x"])

    async def step(self) -> None:
        self.x = (i for i in range(2))
        await self.io.close()


def test_a_component_state_that_cannot_be_stored_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    process = LocalProcess(components=[Odd(name="odd")], connectors=[], name="P")

    async def go() -> None:
        async with process:
            await process.run()
    run(go())
    assert process.status == Status.COMPLETED
    assert "component 'odd' of process 'P': its dict() could not be stored (TypeError" in caplog.text


def test_process_builder_builds_the_state_backend(tmp_path: Path) -> None:
    from plugboard_beam.process import ProcessBuilder
    from plugboard_beam.schemas import ProcessSpec

    spec = ProcessSpec.model_validate({"args": {
        "name": "built", "components": [{"type": "test_state_backends.Count", "args": {"name": "a"}}],
        "state": {"type": "plugboard.state.SqliteStateBackend",
                  "args": {"db_path": str(tmp_path / "b.db"), "job_id": "Job_built1234"}}}})
    process = ProcessBuilder.build(spec)
    assert isinstance(process.state, SqliteStateBackend) and process.state.job_id == "Job_built1234"

    async def go() -> None:
        async with process:
            await process.run()
    run(go())
    rows = SqliteStateBackend(str(tmp_path / "b.db"), job_id="Job_built1234").keys("built")
    assert [(r["key"], r["status"]) for r in rows] == [("default", "completed")]
    plain = spec.model_copy(update={"args": spec.args.model_copy(update={"state": None})})
    assert isinstance(ProcessBuilder.build(plain).state, DictStateBackend)
