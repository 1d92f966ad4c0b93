"""plugboard 0.9.0 parity (issue 16): behaviour a plugboard user relies on, compared with what
plugboard 0.9.0 does (process parameters, event order among producers at one place in the
schedule), on every engine it applies to."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import subprocess
import textwrap
import typing as _t

import pytest

from conftest import cli_command
from parity_parts import Announce, Count, Scale, TickLog, Write
from plugboard_beam.component import Component, Status
from plugboard_beam.component import IOController as IO
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.events import StopEvent
from plugboard_beam.exceptions import ChannelClosedError, IOStreamClosedError
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec

HERE = Path(__file__).resolve().parent


def cli_run(cwd: Path, model: str, *args: str) -> subprocess.CompletedProcess[str]:
    (cwd / "model.yaml").write_text(textwrap.dedent(model))
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.run([*cli_command(), "process", "run", "model.yaml", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def local_process(components: list[Component], wires: list[tuple[str, str]], **kw: object) -> LocalProcess:
    conns = [AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires]
    return LocalProcess(components=components, connectors=conns, **kw)  # type: ignore[arg-type]


async def run_process(process: LocalProcess) -> None:
    async with process:
        await process.run()


# ------------------------------------------------------------------ process parameters
PARAMETERS_MODEL = """\
    plugboard:
      process:
        args:
          components:
          - {type: parity_parts.Count, args: {name: count, n: 4}}
          - {type: parity_parts.Scale, args: {name: scale_a}}
          - {type: parity_parts.Scale, args: {name: scale_b, parameters: {scale: 2}}}
          - {type: parity_parts.Write, args: {name: out_a, path: a.txt}}
          - {type: parity_parts.Write, args: {name: out_b, path: b.txt}}
          connectors:
          - {source: count.t, target: scale_a.a}
          - {source: count.t, target: scale_b.a}
          - {source: scale_a.x, target: out_a.v}
          - {source: scale_b.x, target: out_b.v}
          parameters: {scale: 0.5}
    """


def test_local_process_parameters_merge_under_the_components_own_before_init(tmp_path: Path) -> None:
    a, b = Scale(name="a"), Scale(name="b", parameters={"scale": 2, "own": 1})
    comps: list[Component] = [Count(name="c", n=3), a, b, Write(name="wa", path=str(tmp_path / "a.txt"))]
    process = local_process(comps, [("c.t", "a.a"), ("c.t", "b.a"), ("a.x", "wa.v")],
                            parameters={"scale": 10, "other": 3})
    # as in plugboard 0.9.0: merged when the process initialises, the component's value wins
    assert a.parameters == {} and b.parameters == {"scale": 2, "own": 1}
    asyncio.run(run_process(process))
    assert a.parameters == {"scale": 10, "other": 3}
    assert b.parameters == {"scale": 2, "other": 3, "own": 1}
    assert (tmp_path / "a.txt").read_text() == "0\n10\n20\n"


def test_yaml_process_parameters_reach_components_on_the_local_runner(tmp_path: Path) -> None:
    proc = cli_run(tmp_path, PARAMETERS_MODEL, "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.txt").read_text() == "0.0\n0.5\n1.0\n1.5\n"
    assert (tmp_path / "b.txt").read_text() == "0\n2\n4\n6\n"


@pytest.mark.slow
def test_yaml_process_parameters_reach_components_on_beam(tmp_path: Path) -> None:
    proc = cli_run(tmp_path, PARAMETERS_MODEL, "--stages", "component")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.txt").read_text() == "0.0\n0.5\n1.0\n1.5\n"
    assert (tmp_path / "b.txt").read_text() == "0\n2\n4\n6\n"


# ------------------------------------------------------------------ event order
#: plugboard 0.9.0 handles, per tick, pa's event before pb's (recorded with its CLI)
BY_NAME = "".join(f"{t} pa\n{t} pb\n" for t in range(4))


def events_model(first: str, second: str) -> str:
    return f"""\
    plugboard:
      process:
        args:
          components:
          - {{type: parity_parts.Count, args: {{name: clock, n: 4}}}}
          - {{type: parity_parts.Announce, args: {{name: {first}}}}}
          - {{type: parity_parts.Announce, args: {{name: {second}}}}}
          - {{type: parity_parts.TickLog, args: {{name: log, path: log.txt}}}}
          connectors:
          - {{source: clock.t, target: {first}.t}}
          - {{source: clock.t, target: {second}.t}}
    """


@pytest.mark.parametrize("order", [("pa", "pb"), ("pb", "pa")])
def test_producers_at_one_place_in_the_schedule_deliver_by_name_local_runner(tmp_path: Path,
                                                                              order: tuple[str, str]) -> None:
    proc = cli_run(tmp_path, events_model(*order), "--runner", "local")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "log.txt").read_text() == BY_NAME


@pytest.mark.parametrize("order", [("pa", "pb"), ("pb", "pa")])
def test_producers_at_one_place_in_the_schedule_deliver_by_name_local_process(tmp_path: Path,
                                                                               order: tuple[str, str]) -> None:
    comps: list[Component] = [Count(name="clock", n=4), *(Announce(name=n) for n in order),
                              TickLog(name="log", path=str(tmp_path / "log.txt"))]
    asyncio.run(run_process(local_process(comps, [("clock.t", f"{n}.t") for n in order])))
    assert (tmp_path / "log.txt").read_text() == BY_NAME


@pytest.mark.slow
@pytest.mark.parametrize("stages", ["fused", "component"])
def test_producers_at_one_place_in_the_schedule_deliver_by_name_on_beam(tmp_path: Path, stages: str) -> None:
    proc = cli_run(tmp_path, events_model("pa", "pb"), "--stages", stages)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "log.txt").read_text() == BY_NAME


# ------------------------------------------------------------------ exceptions
#: plugboard 0.9.0's ``plugboard.exceptions``: name -> the names of its base classes
PLUGBOARD_EXCEPTIONS = {
    "ChannelError": ["Exception"],
    "ChannelClosedError": ["ChannelError"],
    "ChannelNotConnectedError": ["ChannelError"],
    "ChannelSetupError": ["ChannelError"],
    "IOControllerError": ["Exception"],
    "IOStreamClosedError": ["IOControllerError"],
    "IOSetupError": ["IOControllerError"],
    "EventStreamClosedError": ["Exception"],
    "NoMoreDataException": ["Exception"],
    "RegistryError": ["Exception"],
    "StateBackendError": ["Exception"],
    "NotFoundError": ["StateBackendError"],
    "NotInitialisedError": ["Exception"],
    "EventError": ["Exception"],
    "UnrecognisedEventError": ["EventError"],
    "ValidationError": ["Exception"],
    "ConstraintError": ["Exception"],
    "ProcessStatusError": ["Exception"],
}


@pytest.mark.parametrize("name", sorted(PLUGBOARD_EXCEPTIONS))
def test_every_plugboard_exception_with_its_bases(name: str) -> None:
    from plugboard_beam import exceptions

    cls = getattr(exceptions, name)
    assert issubclass(cls, Exception)
    for base in PLUGBOARD_EXCEPTIONS[name]:
        assert issubclass(cls, getattr(exceptions, base) if base != "Exception" else Exception), base


def test_constraint_error_carries_an_objective_value() -> None:
    from plugboard_beam.exceptions import ConstraintError

    err = ConstraintError("too hot", objective_value=-1.5)
    assert err.args == ("too hot",) and err.objective_value == -1.5
    assert ConstraintError("x").objective_value is None


def test_our_errors_are_plugboards_where_they_mean_the_same(tmp_path: Path) -> None:
    from plugboard_beam import exceptions
    from plugboard_beam.library.data_reader import NoMoreDataException
    from plugboard_beam.spec import load_model

    assert NoMoreDataException is exceptions.NoMoreDataException
    assert issubclass(exceptions.IOSetupError, exceptions.PlugboardBeamError)
    (tmp_path / "m.yaml").write_text("plugboard: {process: {args: {components: []}}}\n")
    with pytest.raises(exceptions.ValidationError):
        load_model(tmp_path / "m.yaml")


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_readers_raise_io_stream_closed_after_their_last_row(tmp_path: Path, kind: str) -> None:
    from plugboard_beam.exceptions import IOStreamClosedError
    from plugboard_beam.library import FileReader, SQLReader

    reader: Component
    if kind == "file":
        (tmp_path / "in.csv").write_text("t,u\n1,a\n2,b\n")
        reader = FileReader(name="r", path=str(tmp_path / "in.csv"), field_names=["t", "u"], chunk_size=1)
    else:
        import sqlite3

        con = sqlite3.connect(tmp_path / "db.sqlite")
        con.execute("CREATE TABLE r (t INTEGER, u TEXT)")
        con.executemany("INSERT INTO r VALUES (?, ?)", [(1, "a"), (2, "b")])
        con.commit()
        con.close()
        reader = SQLReader(name="r", connection_string=f"sqlite:///{tmp_path / 'db.sqlite'}",
                           query="SELECT t, u FROM r ORDER BY t", field_names=["t", "u"])

    async def read_all() -> list[tuple[object, object]]:
        await reader.init()
        rows = []
        for _ in range(2):
            await reader.step()
            rows.append((reader.t, reader.u))
        with pytest.raises(IOStreamClosedError):
            await reader.step()
        assert reader.io.is_closed
        return rows

    assert asyncio.run(read_all()) == [(1, "a"), (2, "b")]


def test_a_reader_ending_with_io_stream_closed_ends_the_run_not_fails_it(tmp_path: Path) -> None:
    from plugboard_beam.library import FileReader

    (tmp_path / "in.csv").write_text("a\n1\n2\n3\n")
    comps: list[Component] = [FileReader(name="r", path=str(tmp_path / "in.csv"), field_names=["a"]),
                              Scale(name="s", parameters={"scale": 3}), Write(name="w", path=str(tmp_path / "o.txt"))]
    process = local_process(comps, [("r.a", "s.a"), ("s.x", "w.v")])
    asyncio.run(run_process(process))
    assert (tmp_path / "o.txt").read_text() == "3\n6\n9\n"
    assert [str(c.status) for c in comps] == ["completed"] * 3


# ------------------------------------------------------------------ component API
class Probe(Component):
    """Records its status in init() and step(); exports ``k``."""

    io = IO(inputs=["a"], outputs=["y"])
    exports = ["k"]  # noqa: RUF012 (plugboard's way of declaring them)

    def __init__(self, k: int = 3, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.k = k
        self.seen: list[str] = []

    async def init(self) -> None:
        self.seen.append(str(self.status))

    async def step(self) -> None:
        self.seen.append(str(self.status))
        self.y = self.a


class Halter(Component):
    """Queues a StopEvent at t == 1."""

    io = IO(inputs=["t"], output_events=[StopEvent])

    async def step(self) -> None:
        if self.t == 1:
            self.io.queue_event(StopEvent(source=self.name, data={}))


def test_status_lifecycle_as_plugboard() -> None:
    count, probe = Count(name="c", n=2), Probe(name="p")
    process = local_process([count, probe], [("c.t", "p.a")])

    async def go() -> list[str]:
        seen = [str(probe.status)]
        await process.init()
        seen.append(str(probe.status))
        await process.run()
        seen.append(str(probe.status))
        await process.destroy()
        return seen

    # plugboard 0.9.0: created -> init (after init()) -> running (in step) -> completed
    assert asyncio.run(go()) == ["created", "init", "completed"]
    assert probe.seen == ["created", "running", "running"]
    assert count.status == Status.COMPLETED and Status.COMPLETED.is_terminal and not Status.WAITING.is_terminal


def test_status_stopped_by_a_stop_event_and_failed_by_a_raising_step() -> None:
    from plugboard_beam.exceptions import StepError

    halter, probe = Halter(name="h"), Probe(name="p")
    asyncio.run(run_process(local_process([Count(name="c", n=5), halter, probe], [("c.t", "h.t"), ("c.t", "p.a")])))
    assert probe.status == Status.STOPPED and halter.status == Status.STOPPED

    class Boom(Component):
        io = IO(inputs=["a"])

        async def step(self) -> None:
            raise RuntimeError("boom")

    boom = Boom(name="b")
    with pytest.raises(StepError):
        asyncio.run(run_process(local_process([Count(name="c", n=2), boom], [("c.t", "b.a")])))
    assert boom.status == Status.FAILED


def test_export_and_dict_as_plugboard() -> None:
    probe = Probe(name="p", k=5, initial_values={"a": [1]}, parameters={"g": 2})
    assert probe.export() == {"type": f"{__name__}.Probe",
                              "args": {"name": "p", "k": 5, "initial_values": {"a": [1]}, "parameters": {"g": 2}}}
    rebuilt = Probe(**probe.export()["args"])
    assert rebuilt.export() == probe.export()
    probe.y = 7
    assert probe.dict() == {
        "__export": probe.export(), "id": "p", "name": "p", "status": "created",
        "input": {"a": None}, "output": {"y": 7}, "exports": {"k": 5},
        "io": {"namespace": "p", "inputs": ["a"], "outputs": ["y"], "input_events": ["system_stop"],
               "output_events": ["system_stop"], "initial_values": {"a": [1]}, "event_field_coverage": {}},
    }
    # unset fields and other unset public attributes read as None (plugboard's __getattr__)
    assert probe.a is None and probe.anything_unset is None
    with pytest.raises(AttributeError):
        _ = probe._private_unset


def test_exports_merge_along_the_class_hierarchy() -> None:
    class More(Probe):
        exports = ["extra"]  # noqa: RUF012

        def __init__(self, extra: str = "e", **kw: _t.Any) -> None:
            super().__init__(**kw)
            self.extra = extra

    more = More(name="m", extra="x", k=1)
    assert More.exports == ["extra", "k"]
    assert more.export()["args"] == {"name": "m", "extra": "x", "k": 1}  # the outermost call only
    assert more.dict()["exports"] == {"extra": "x", "k": 1}


def test_local_process_reports_an_invalid_model_from_init_as_a_validation_error() -> None:
    from plugboard_beam.exceptions import ValidationError

    # plugboard 0.9.0 builds the process and raises ValidationError from init()
    process = local_process([Count(name="c"), Scale(name="s"), Write(name="w", path="never.txt")], [("c.t", "s.a")])
    with pytest.raises(ValidationError, match=r"w\.v is not connected"):
        asyncio.run(process.init())
    with pytest.raises(ValidationError, match="initial_values"):
        asyncio.run(run_process(local_process([Scale(name="s1"), Scale(name="s2")], [("s1.x", "s2.a"),
                                                                                        ("s2.x", "s1.a")])))


# ------------------------------------------------------------------ components driven by hand
class Pair(Component):
    io = IO(inputs=["a", "b"], outputs=["c"])

    async def step(self) -> None:
        self.c = (self.a, self.b)


class Ticker(Component):
    """Counts in ``component_status`` the status it sees; closes after ``n`` steps."""

    io = IO(outputs=["seen"])

    def __init__(self, n: int = 2, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n, self.fail = n, False

    async def step(self) -> None:
        if self.fail:
            raise ValueError("fail")
        self.seen = str(self.status)
        self.n -= 1
        if self.n <= 0:
            await self.io.close()


def test_status_of_a_component_driven_by_hand_as_plugboard() -> None:
    async def go() -> None:
        t = Ticker(name="t", n=3)
        assert t.status == Status.CREATED
        await t.init()
        assert t.status == Status.INIT
        await t.step()
        assert t.status == Status.WAITING and t.seen == "running"
        t.fail = True
        with pytest.raises(ValueError, match="fail"):
            await t.step()
        assert t.status == Status.FAILED
        r = Ticker(name="r", n=3)
        await r.init()
        await r.run()  # steps until its IO closes
        assert r.status == Status.COMPLETED and r.n == 0
        with pytest.raises(IOStreamClosedError):
            await r.step()

    asyncio.run(go())


def test_io_connect_read_write_move_values_between_components_driven_by_hand() -> None:
    async def go() -> list[object]:
        pair = Pair(name="p", initial_values={"a": [-1]})
        into_a = AsyncioConnector(spec=ConnectorSpec(source="x.out", target="p.a"))
        into_b = AsyncioConnector(spec=ConnectorSpec(source="x.out", target="p.b"))
        out_c = AsyncioConnector(spec=ConnectorSpec(source="p.c", target="y.inp"))
        await pair.io.connect([into_a, into_b, out_c])
        await pair.init()
        send_a, send_b, recv_c = await into_a.connect_send(), await into_b.connect_send(), await out_c.connect_recv()
        got = []
        for i in range(3):
            await send_a.send(i)
            await send_b.send(10 + i)
            await pair.step()
            got.append(await recv_c.recv())
        # the seed came first on 'a', so its value 2 is still waiting
        await send_b.send(13)
        await pair.step()
        got.append(await recv_c.recv())
        await send_a.close()
        with pytest.raises(IOStreamClosedError):
            await pair.step()  # 'a' is used up and closed: the IO closes
        assert pair.io.is_closed
        with pytest.raises(ChannelClosedError):
            await recv_c.recv()  # closing the IO closed its output channels
        return got

    assert asyncio.run(go()) == [(-1, 10), (0, 11), (1, 12), (2, 13)]


def test_io_connect_refuses_a_field_the_component_lacks_and_closed_io_refuses_read_write() -> None:
    async def go() -> None:
        pair = Pair(name="p")
        with pytest.raises(ValueError, match="Unrecognised input field zz"):
            await pair.io.connect([AsyncioConnector(spec=ConnectorSpec(source="x.o", target="p.zz"))])
        await pair.io.close()
        with pytest.raises(IOStreamClosedError):
            await pair.io.read()
        with pytest.raises(IOStreamClosedError):
            await pair.io.write()

    asyncio.run(go())


def test_engine_ignores_the_hand_driven_wrappers(tmp_path: Path) -> None:
    # a closing step ends the component under the engine (no IOStreamClosedError), and
    # super().step() inside a step runs the parent's step once, as plain Python
    class Twice(Scale):
        async def step(self) -> None:
            await super().step()
            self.x = self.x * 2

    comps: list[Component] = [Count(name="c", n=3), Twice(name="s", parameters={"scale": 5}),
                              Write(name="w", path=str(tmp_path / "o.txt"))]
    asyncio.run(run_process(local_process(comps, [("c.t", "s.a"), ("s.x", "w.v")])))
    assert (tmp_path / "o.txt").read_text() == "0\n10\n20\n"
    assert all(c.status == Status.COMPLETED for c in comps)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_a_writer_driven_by_hand_saves_every_row_after_run(tmp_path: Path, chunk_size: int | None) -> None:
    from plugboard_beam.library import FileWriter

    async def go() -> None:
        writer = FileWriter(name="w", path=str(tmp_path / "out.csv"), field_names=["a", "b"], chunk_size=chunk_size)
        conns = {f: AsyncioConnector(spec=ConnectorSpec(source="x.o", target=f"w.{f}")) for f in ("a", "b")}
        await writer.io.connect(list(conns.values()))
        await writer.init()
        for i in range(5):
            for f, conn in conns.items():
                await (await conn.connect_send()).send(f"{f}{i}")
            await writer.step()
        await writer.io.close()
        await writer.run()  # as plugboard's DataWriter.run: ends at once and saves the rest
        assert writer.status == Status.COMPLETED
        assert (tmp_path / "out.csv").read_text().split() == ["a,b", *(f"a{i},b{i}" for i in range(5))]
        await writer.destroy()

    asyncio.run(go())


def test_a_step_raising_io_stream_closed_ends_the_component_on_the_engine(tmp_path: Path) -> None:
    class Upto(Component):
        io = IO(outputs=["t"])

        def __init__(self, **kw: _t.Any) -> None:
            super().__init__(**kw)
            self.i = 0

        async def step(self) -> None:
            if self.i == 3:
                raise IOStreamClosedError("no more")  # plugboard's Component.run ends here
            self.t, self.i = self.i, self.i + 1

    comps: list[Component] = [Upto(name="u"), Write(name="w", path=str(tmp_path / "o.txt"))]
    asyncio.run(run_process(local_process(comps, [("u.t", "w.v")])))
    assert (tmp_path / "o.txt").read_text() == "0\n1\n2\n"
    assert comps[0].status == Status.COMPLETED


def test_a_cancelled_run_leaves_unfinished_components_stopped(tmp_path: Path) -> None:
    class Forever(Component):
        io = IO(outputs=["t"])

        async def step(self) -> None:
            await asyncio.sleep(0.001)
            self.t = 1

    forever, write = Forever(name="f"), Write(name="w", path=str(tmp_path / "o.txt"))
    process = local_process([forever, write], [("f.t", "w.v")])

    async def go() -> None:
        async with process:
            task = asyncio.create_task(process.run())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    assert forever.status == Status.STOPPED and write.status == Status.STOPPED
    done = Ticker(name="t")
    asyncio.run(done.cancel())
    assert done.status == Status.STOPPED
