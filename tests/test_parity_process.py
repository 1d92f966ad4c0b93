"""plugboard 0.9.0 parity, processes and connectors (issue 16 items 1-2): ``LocalProcess``
``status``/``step()``/``run()``/``cancel()``/SIGINT/``dump()``, ``ConnectorBuilder`` and
``build_event_connectors``, ``ComponentRegistry``, ``EventHandlers``, the refused transports,
``plugboard_beam.utils`` (``DI``, ``Settings``, ``gen_rand_str``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import subprocess
import sys
import textwrap
import typing as _t

import pytest
import yaml

from conftest import ROOT, cli_command
from parity_parts import Announce, Count, Scale, TickLog, Write
from plugboard_beam.component import Component, ComponentRegistry, Status, component
from plugboard_beam.component import IOController as IO
from plugboard_beam.connector import (
    AsyncioConnector,
    Connector,
    ConnectorBuilder,
    RabbitMQConnector,
    RayConnector,
    RedisConnector,
    ZMQConnector,
)
from plugboard_beam.events import Event, EventHandlers
from plugboard_beam.exceptions import NotInitialisedError, RegistryError, StepError, UserError
from plugboard_beam.process import LocalProcess, Process, RayProcess
from plugboard_beam.schemas import ConnectorSpec

HERE = Path(__file__).resolve().parent


def wired(components: list[Component], wires: list[tuple[str, str]]) -> LocalProcess:
    conns = [AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires]
    return LocalProcess(components=components, connectors=conns)


class Steps(Component):
    """Counts its steps; passes ``a`` on as ``x``."""

    io = IO(inputs=["a"], outputs=["x"])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.steps = 0

    async def step(self) -> None:
        self.steps += 1
        self.x = self.a


class Boom(Component):
    io = IO(inputs=["a"])

    async def step(self) -> None:
        if self.a == 2:
            raise RuntimeError("two")


class Forever(Component):
    io = IO(outputs=["t"])

    async def step(self) -> None:
        await asyncio.sleep(0.001)
        self.t = 1


# ------------------------------------------------------------------ status, step(), run()
def test_status_step_and_run_as_plugboard(tmp_path: Path) -> None:
    count, b = Count(name="count", n=3), Steps(name="b")
    out = Write(name="out", path=str(tmp_path / "o.txt"))
    process = wired([count, b, out], [("count.t", "b.a"), ("b.x", "out.v")])

    async def go() -> list[object]:
        seen: list[object] = [process.status]
        with pytest.raises(NotInitialisedError):
            await process.step()
        with pytest.raises(NotInitialisedError):
            await process.run()
        await process.init()
        seen.append(process.status)
        await process.step()
        seen += [process.status, b.steps, list(out.lines)]
        await process.run()
        seen += [process.status, b.steps]
        await process.destroy()
        seen.append(process.is_initialised)
        return seen

    seen = asyncio.run(go())
    assert seen == [Status.CREATED, Status.INIT, Status.WAITING, 1, ["0\n"], Status.COMPLETED, 3, False]
    assert (tmp_path / "o.txt").read_text() == "0\n1\n2\n"


def test_a_failing_step_makes_the_process_failed() -> None:
    process = wired([Count(name="count", n=5), Boom(name="boom")], [("count.t", "boom.a")])

    async def go() -> None:
        async with process:
            await process.step()
            assert process.status == Status.WAITING
            with pytest.raises(StepError, match="two"):
                await process.run()

    asyncio.run(go())
    assert process.status == Status.FAILED
    assert process.components["boom"].status == Status.FAILED


def test_cancel_stops_the_run_and_the_components(tmp_path: Path) -> None:
    forever, out = Forever(name="f"), Write(name="w", path=str(tmp_path / "o.txt"))
    process = wired([forever, out], [("f.t", "w.v")])

    async def go() -> None:
        async with process:
            task = asyncio.create_task(process.run())
            await asyncio.sleep(0.3)
            process.cancel()
            await asyncio.wait_for(task, 10)

    asyncio.run(go())
    assert process.status == Status.STOPPED
    assert forever.status == Status.STOPPED and out.status == Status.STOPPED
    assert len(out.lines) > 0


SIGINT_SCRIPT = """\
import asyncio, os, signal
from parity_parts import Write
from test_parity_process import Forever, wired

async def main():
    forever, out = Forever(name="f"), Write(name="w", path="o.txt")
    process = wired([forever, out], [("f.t", "w.v")])
    async with process:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, os.kill, os.getpid(), signal.SIGINT)
        await process.run()
    print(process.status, forever.status, out.status)

asyncio.run(main())
"""


def test_sigint_during_run_stops_the_process_gracefully(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    proc = subprocess.run([sys.executable, "-c", SIGINT_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["stopped", "stopped", "stopped"]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "o.txt").read_text().startswith("1\n")  # destroy() ran


# ------------------------------------------------------------------ export, dict, dump
def dumped_model(tmp_path: Path) -> LocalProcess:
    process = LocalProcess(
        components=[Count(name="count", n=4), Scale(name="scale"), Write(name="out", path="out.txt")],
        connectors=[AsyncioConnector(spec=ConnectorSpec(source="count.t", target="scale.a")),
                    AsyncioConnector(spec=ConnectorSpec(source="scale.x", target="out.v"))],
        name="dumped", parameters={"scale": 3},
    )
    process.dump(tmp_path / "model.yaml")
    return process


def test_dump_writes_a_model_file_that_runs_on_the_local_runner(tmp_path: Path) -> None:
    process = dumped_model(tmp_path)
    spec = yaml.safe_load((tmp_path / "model.yaml").read_text())["plugboard"]["process"]
    assert spec["type"] == "plugboard_beam.process.LocalProcess"
    assert [c["type"] for c in spec["args"]["components"]] == [
        "parity_parts.Count", "parity_parts.Scale", "parity_parts.Write"]
    assert spec["args"]["parameters"] == {"scale": 3}
    assert process.dict()["components"]["count"]["status"] == "created"
    assert process.export()["args"]["name"] == "dumped"
    env = dict(os.environ, PYTHONPATH=str(HERE))
    run = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.txt").read_text() == "0\n3\n6\n9\n"
    with pytest.raises(ValueError, match="yaml"):
        process.dump(tmp_path / "model.txt")


@pytest.mark.slow
def test_dump_writes_a_model_file_that_runs_on_beam(tmp_path: Path) -> None:
    dumped_model(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    run = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "direct"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.txt").read_text() == "0\n3\n6\n9\n"


# ------------------------------------------------------------------ connector builders
def test_connector_builder_presets_class_and_arguments() -> None:
    class Tagged(Connector):
        def __init__(self, spec: ConnectorSpec, *args: _t.Any, tag: str = "", **kw: _t.Any) -> None:
            super().__init__(spec)
            self.args, self.tag = args, tag

    spec = ConnectorSpec(source="a.x", target="b.y")
    built = ConnectorBuilder(Tagged, 1, 2, tag="t").build(spec)
    assert isinstance(built, Tagged) and built.spec == spec and built.args == (1, 2) and built.tag == "t"
    via = Tagged.builder(tag="u").build(spec)
    assert isinstance(via, Tagged) and via.tag == "u"
    assert isinstance(AsyncioConnector.builder().build(spec), AsyncioConnector)


def test_build_event_connectors_as_plugboard_and_a_process_runs_with_them(tmp_path: Path) -> None:
    comps: list[Component] = [Count(name="count", n=3), Announce(name="ann"),
                              TickLog(name="log", path=str(tmp_path / "log.txt"))]
    events = AsyncioConnector.builder().build_event_connectors(comps)
    assert [(c.spec.source.id, c.spec.target.id, c.spec.mode) for c in events] == [
        ("system_stop.publishers", "system_stop.subscribers", "pubsub"),
        ("parity_tick.publishers", "parity_tick.subscribers", "pubsub")]
    assert all(isinstance(c, AsyncioConnector) for c in events)
    process = LocalProcess(components=comps, connectors=[
        *events, AsyncioConnector(spec=ConnectorSpec(source="count.t", target="ann.t"))])

    async def go() -> None:
        async with process:
            await process.run()

    asyncio.run(go())
    assert process.status == Status.COMPLETED
    assert (tmp_path / "log.txt").read_text() == "0 ann\n1 ann\n2 ann\n"
    # listed with the field connectors, as plugboard lists them; the diagram and export() show
    # only what the components' events and the field connectors say
    assert list(process.connectors) == ["system_stop.publishers..system_stop.subscribers",
                                        "parity_tick.publishers..parity_tick.subscribers", "count.t..ann.t"]
    assert [c["source"]["entity"] for c in process.export()["args"]["connectors"]] == ["count"]
    assert set(process.dict()["connectors"]) == set(process.connectors)
    from plugboard_beam.diagram import MermaidDiagram

    rows = MermaidDiagram.from_process(process).diagram.splitlines()[1:]
    assert len(rows) == 3 and sum("-->" in r for r in rows) == 1  # count -> ann, tick out, tick in


@pytest.mark.parametrize("cls", [ZMQConnector, RayConnector, RabbitMQConnector, RedisConnector])
def test_transport_connectors_are_refused_with_what_to_use(cls: type[Connector]) -> None:
    with pytest.raises(UserError, match=rf"{cls.__name__}.*AsyncioConnector.*--runner direct"):
        cls(spec=ConnectorSpec(source="a.x", target="b.y"))
    with pytest.raises(UserError, match=cls.__name__):
        ConnectorBuilder(connector_cls=cls).build(ConnectorSpec(source="a.x", target="b.y"))


def test_ray_process_is_refused_with_what_to_use() -> None:
    with pytest.raises(UserError, match=r"RayProcess.*LocalProcess.*--runner direct"):
        RayProcess(components=[], connectors=[])
    assert issubclass(LocalProcess, Process)


# ------------------------------------------------------------------ registries
class RegisteredOnce(Component):
    io = IO(outputs=["x"])


def test_component_registry_by_path_and_by_unambiguous_name() -> None:
    assert ComponentRegistry.get(f"{__name__}.RegisteredOnce") is RegisteredOnce
    assert ComponentRegistry.get("RegisteredOnce") is RegisteredOnce
    from plugboard_beam.library import FileWriter

    assert ComponentRegistry.get("FileWriter") is FileWriter
    built = ComponentRegistry.build("RegisteredOnce", name="r")
    assert isinstance(built, RegisteredOnce) and built.name == "r"
    with pytest.raises(RegistryError, match="NotAComponent"):
        ComponentRegistry.get("NotAComponent")

    def make() -> type[Component]:
        class Twice(Component):
            io = IO(outputs=["x"])

        return Twice

    first, second = make(), make()
    # two classes named alike: only their full paths find them
    with pytest.raises(RegistryError):
        ComponentRegistry.get("make.<locals>.Twice")
    assert first is not second


@component(inputs=["a"], outputs=["b"])
def registered_function(a: int) -> dict[str, int]:
    return {"b": a}


def test_function_components_are_registered_by_function_name() -> None:
    cls = ComponentRegistry.get("registered_function")
    assert cls is ComponentRegistry.get(f"{__name__}.registered_function")
    assert issubclass(cls, Component)


class Ping(Event):
    type: _t.ClassVar[str] = "p16a_ping"
    data: dict[str, _t.Any]


class Pong(Event):
    type: _t.ClassVar[str] = "p16a_pong"
    data: dict[str, _t.Any]


class Handles(Component):
    io = IO(input_events=[Ping])

    @Ping.handler
    async def on_ping(self, event: Ping) -> None:
        pass


class HandlesToo(Handles):
    pass


def test_event_handlers_registry() -> None:
    assert EventHandlers.get(Handles, Ping) is Handles.on_ping
    assert EventHandlers.get(HandlesToo, Ping) is Handles.on_ping  # along the MRO
    with pytest.raises(KeyError, match=r"Handles.*p16a_pong"):
        EventHandlers.get(Handles, Pong)

    class Later(Component):
        async def on_pong(self, event: Pong) -> None:
            pass

    EventHandlers.add(Pong, populates_fields=["x"])(Later.on_pong)
    assert EventHandlers.get(Later, Pong) is Later.on_pong
    assert Later.on_pong._event_field_coverage == {"p16a_pong": ["x"]}  # type: ignore[attr-defined]


# ------------------------------------------------------------------ utils: DI, Settings, ids
def test_settings_and_di_as_plugboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from that_depends import ContextScopes, container_context

    from plugboard_beam.utils import DI, Settings

    monkeypatch.setenv("PLUGBOARD_IO_READ_TIMEOUT", "5.0")
    monkeypatch.setenv("PLUGBOARD_FLAGS_ZMQ_PUBSUB_PROXY", "true")
    settings = Settings()
    assert settings.io_read_timeout == 5.0 and settings.flags.zmq_pubsub_proxy is True
    original = DI.settings.resolve_sync()
    DI.settings.override_sync(Settings.model_validate({"flags": {"zmq_pubsub_proxy": False}}))
    try:
        assert DI.settings.resolve_sync().flags.zmq_pubsub_proxy is False
    finally:
        DI.settings.reset_override_sync()
    assert DI.settings.resolve_sync() is original

    monkeypatch.delenv("PLUGBOARD_JOB_ID", raising=False)
    with container_context(DI, global_context={"job_id": "Job_abcdefgh12"}, scope=ContextScopes.APP):
        assert DI.job_id.resolve_sync() == "Job_abcdefgh12"
    with container_context(DI, global_context={"job_id": None}, scope=ContextScopes.APP):
        assert DI.job_id.resolve_sync().startswith("Job_")
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_fromtheenv1")
    with container_context(DI, global_context={"job_id": None}, scope=ContextScopes.APP):
        assert DI.job_id.resolve_sync() == "Job_fromtheenv1"
    with container_context(DI, global_context={"job_id": "Job_other12345"}, scope=ContextScopes.APP):
        with pytest.raises(RuntimeError, match="does not match"):
            DI.job_id.resolve_sync()
    monkeypatch.delenv("PLUGBOARD_JOB_ID")
    with container_context(DI, global_context={"job_id": "bad id"}, scope=ContextScopes.APP):
        with pytest.raises(ValueError, match=r"Invalid job ID"):
            DI.job_id.resolve_sync()
    asyncio.run(DI.tear_down())


def test_gen_rand_str() -> None:
    from plugboard_beam.utils.random import RANDOM_CHAR_COUNT, RANDOM_CHAR_SET, gen_rand_str

    ids = {gen_rand_str() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == RANDOM_CHAR_COUNT and set(i) <= set(RANDOM_CHAR_SET) for i in ids)
    assert len(gen_rand_str(5)) == 5


def test_plugboard_module_paths_import() -> None:
    code = textwrap.dedent("""\
        from plugboard_beam.connector.channel import Channel
        from plugboard_beam.connector.connector import Connector
        from plugboard_beam.connector.connector_builder import ConnectorBuilder
        from plugboard_beam.connector.asyncio_channel import AsyncioChannel
        from plugboard_beam.connector.rabbitmq_channel import RabbitMQConnector
        from plugboard_beam.connector.redis_channel import RedisConnector
        from plugboard_beam.connector.zmq_channel import ZMQConnector
        from plugboard_beam.connector.ray_channel import RayConnector
        assert issubclass(AsyncioChannel, Channel)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


# ------------------------------------------------------------------ components driven by hand, with events
class Listener(Component):
    io = IO(inputs=["a"], outputs=["y"], input_events=[Ping], output_events=[Pong])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.pings: list[int] = []
        self.steps = 0

    @Ping.handler
    async def on_ping(self, event: Ping) -> Pong:
        self.pings.append(event.data["n"])
        return Pong(source=self.name, data={"n": event.data["n"]})

    async def step(self) -> None:
        self.steps += 1
        self.y = self.a


def test_a_component_driven_by_hand_takes_events_and_fields_whichever_comes_first() -> None:
    async def go() -> tuple[list[int], int, list[object], list[object]]:
        comp = Listener(name="l")
        field_in = AsyncioConnector(spec=ConnectorSpec(source="src.x", target="l.a"))
        field_out = AsyncioConnector(spec=ConnectorSpec(source="l.y", target="dst.v"))
        events = AsyncioConnector.builder().build_event_connectors([comp])
        by_type = {c.spec.source.entity: c for c in events}
        await comp.io.connect([field_in, field_out, *events])
        ping_chan = await by_type["p16a_ping"].connect_send()
        pong_chan = await by_type["p16a_pong"].connect_recv()
        a_chan, y_chan = await field_in.connect_send(), await field_out.connect_recv()

        await ping_chan.send(Ping(source="driver", data={"n": 1}))
        await comp.step()  # an event alone: handled, no step
        pong = await asyncio.wait_for(pong_chan.recv(), 5)
        steps_after_event = comp.steps
        await a_chan.send(10)
        await comp.step()  # the field: a step
        y = await asyncio.wait_for(y_chan.recv(), 5)
        await comp.io.close()
        return comp.pings, steps_after_event, [pong.data["n"], comp.steps], [y, comp.status]

    pings, steps_after_event, pong_and_steps, y_and_status = asyncio.run(go())
    assert pings == [1] and steps_after_event == 0
    assert pong_and_steps == [1, 1]
    assert y_and_status == [10, Status.WAITING]


def test_io_dict_lists_stop_first_and_the_fields_handlers_populate() -> None:
    class Fills(Component):
        io = IO(inputs=["a"], input_events=[Ping, Pong])

        @Ping.handler(populates_fields=["a"])
        async def on_ping(self, event: Ping) -> None:
            self.a = event.data["n"]

        @Pong.handler
        async def on_pong(self, event: Pong) -> None:
            pass

    comp = Fills(name="f")
    assert comp.io.event_field_coverage == {"p16a_ping": ["a"]}
    d = comp.io.dict()
    assert d["input_events"] == ["system_stop", "p16a_ping", "p16a_pong"]
    assert d["output_events"] == ["system_stop"]
    assert d["event_field_coverage"] == {"p16a_ping": ["a"]}


def test_process_builder_lists_the_event_connectors_as_plugboard(tmp_path: Path) -> None:
    from plugboard_beam.process import ProcessBuilder
    from plugboard_beam.schemas import ProcessSpec

    spec = ProcessSpec.model_validate({"args": {"name": "built", "components": [
        {"type": "parity_parts.Count", "args": {"name": "count", "n": 2}},
        {"type": "parity_parts.Announce", "args": {"name": "ann"}},
        {"type": "parity_parts.TickLog", "args": {"name": "log", "path": str(tmp_path / "log.txt")}},
    ], "connectors": [{"source": "count.t", "target": "ann.t"}]}})
    process = ProcessBuilder.build(spec)
    # the field connector, the user event's and system_stop's (every component handles StopEvent)
    assert sorted(process.connectors) == ["count.t..ann.t", "parity_tick.publishers..parity_tick.subscribers",
                                          "system_stop.publishers..system_stop.subscribers"]
    assert all(isinstance(c, AsyncioConnector) for c in process.connectors.values())

    async def go() -> None:
        async with process:
            await process.run()

    asyncio.run(go())
    assert (tmp_path / "log.txt").read_text() == "0 ann\n1 ann\n"
