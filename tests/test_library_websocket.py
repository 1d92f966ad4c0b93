"""WebsocketReader / WebsocketWriter (plugboard 0.9.0's) against a real websocket server on
loopback (a free port, started here): messages, JSON, initial message and skipping, reconnects,
and the limits on untrusted messages; a model with a reader runs on --runner local."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import json
from pathlib import Path
import socket
import subprocess
import textwrap
import threading
import typing as _t

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from conftest import cli_command
from plugboard_beam.library import WebsocketReader, WebsocketWriter
from plugboard_beam.library.data import DataError
from plugboard_beam.library.websocket_io import WebsocketBase


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broadcast:
    """A server sending every message it receives to every client; ``drop()`` closes them all."""

    def __init__(self) -> None:
        self.clients: set[ServerConnection] = set()
        self.connections = 0

    async def handler(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        self.connections += 1
        try:
            async for message in ws:
                for client in list(self.clients):
                    with contextlib.suppress(Exception):
                        await client.send(message)
        finally:
            self.clients.discard(ws)

    async def drop(self) -> None:
        for client in list(self.clients):
            await client.close()


@contextlib.asynccontextmanager
async def server() -> AsyncIterator[tuple[str, Broadcast]]:
    b = Broadcast()
    port = _free_port()
    async with serve(b.handler, "127.0.0.1", port, max_size=None):
        yield f"ws://127.0.0.1:{port}", b


def run(coro: _t.Awaitable[_t.Any]) -> _t.Any:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


async def _wait_clients(b: Broadcast, n: int) -> None:
    while len(b.clients) < n:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("parse_json", "initial_message", "skip"),
                         [(True, None, 0), (False, None, 1), (True, {"msg": "hello!"}, 0),
                          (True, {"msg": "hello!"}, 3), (False, "G'day!", 0)])
def test_reader_receives_messages(parse_json: bool, initial_message: _t.Any, skip: int) -> None:
    async def go() -> None:
        async with server() as (uri, _), connect(uri) as client:
            reader = WebsocketReader(name="ws", uri=uri, skip_messages=skip, parse_json=parse_json,
                                     initial_message=initial_message)
            await reader.init()
            sent = [{"test-msg": x} for x in range(5)]
            for m in sent:
                await client.send(json.dumps(m))
            expected = [m if parse_json else json.dumps(m) for m in sent]
            expected = ([initial_message] if initial_message is not None else []) + expected
            for want in expected[skip:]:
                await reader.step()
                assert reader.message == want
            await reader.destroy()

    run(go())


@pytest.mark.parametrize("parse_json", [True, False])
def test_writer_sends_messages(parse_json: bool) -> None:
    async def go() -> None:
        async with server() as (uri, _), connect(uri) as client:
            writer = WebsocketWriter(name="ws", uri=uri, parse_json=parse_json)
            await writer.init()
            for x in range(5):
                m = {"test-msg": x, "v": 1.5}
                writer.message = m if parse_json else json.dumps(m)
                await writer.step()
                got = await client.recv()
                assert json.loads(got) == m
            await writer.destroy()

    run(go())


@pytest.mark.parametrize("component", [WebsocketReader, WebsocketWriter])
def test_nothing_listening_fails_init_with_oserror(component: type[WebsocketBase]) -> None:
    c = component(name="ws", uri=f"ws://127.0.0.1:{_free_port()}", connect_args={"open_timeout": 1})
    with pytest.raises(OSError):
        run(c.init())


def test_reader_reconnects_and_resends_its_initial_message() -> None:
    async def go() -> None:
        async with server() as (uri, b), connect(uri) as client:
            reader = WebsocketReader(name="ws", uri=uri, initial_message="sub", skip_messages=1)
            await reader.init()
            await client.send("one")
            await reader.step()
            assert reader.message == "one"
            for ws in list(b.clients):
                if ws.remote_address != client.local_address:
                    await ws.close()  # the server drops the reader's connection
            task = asyncio.create_task(reader.step())
            while b.connections < 3:  # the reader came back
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            await client.send("two")
            await task
            assert reader.message == "two"  # "sub" (its initial message, sent again) was skipped again
            await reader.destroy()

    run(go())


def test_message_over_the_size_limit_fails_loudly() -> None:
    async def go() -> None:
        async with server() as (uri, _), connect(uri, max_size=None) as client:
            reader = WebsocketReader(name="ws", uri=uri, max_message_bytes=1000)
            await reader.init()
            await client.send("x" * 5000)
            with pytest.raises(DataError, match=r"'?ws'?.*over the limit of 1,000 bytes \(max_message_bytes\)"):
                await reader.step()
            await reader.destroy()

    run(go())


@pytest.mark.parametrize(("payload", "reason"), [("[" * 100 + "]" * 100, "nested deeper than the limit of 64"),
                                                ("1" * 5000, "digits is over the limit"),
                                                ("{not json", "not JSON")])
def test_json_limits_checked_before_parsing(payload: str, reason: str) -> None:
    async def go() -> None:
        async with server() as (uri, _), connect(uri) as client:
            reader = WebsocketReader(name="ws", uri=uri, parse_json=True)
            await reader.init()
            await client.send(payload)
            with pytest.raises(DataError, match=r"ws: a message from ws://127\.0\.0\.1") as info:
                await reader.step()
            assert reason in str(info.value)
            await reader.destroy()

    run(go())


def test_writer_refuses_what_json_cannot_hold() -> None:
    async def go() -> None:
        async with server() as (uri, _):
            writer = WebsocketWriter(name="ws", uri=uri, parse_json=True)
            await writer.init()
            writer.message = {"x": float("nan")}
            with pytest.raises(DataError, match="'message' cannot be sent as JSON"):
                await writer.step()
            await writer.destroy()

    run(go())


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        WebsocketReader(name="ws", uri="http://example.com")
    with pytest.raises(ValueError, match="max_message_bytes"):
        WebsocketReader(name="ws", uri="ws://x", connect_args={"max_size": None})
    with pytest.raises(ValueError, match="skip_messages"):
        WebsocketReader(name="ws", uri="ws://x", skip_messages=-1)


PARTS = '''
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.events import StopEvent


class Until(Component):
    """Passes ``n`` messages on, then stops the run."""

    io = IO(inputs=["message"], outputs=["value"], output_events=[StopEvent])

    def __init__(self, n: int, **kw) -> None:
        super().__init__(**kw)
        self.n, self.seen = n, 0

    async def step(self) -> None:
        self.value = self.message["v"]
        self.seen += 1
        if self.seen == self.n:
            self.io.queue_event(StopEvent(source=self.name, data={}))
'''


def test_model_with_a_reader_runs_on_local_runner(tmp_path: Path) -> None:
    """A websocket feed in a YAML model, stopped by a StopEvent after three messages."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, _t.Any] = {}

    async def feed(ws: ServerConnection) -> None:
        sub = json.loads(await ws.recv())
        state["sub"] = sub
        for v in range(100):
            await ws.send(json.dumps({"v": v}))
            await asyncio.sleep(0.01)

    async def main() -> None:
        port = _free_port()
        async with serve(feed, "127.0.0.1", port):
            state["uri"] = f"ws://127.0.0.1:{port}"
            started.set()
            await asyncio.Event().wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert started.wait(10)
    (tmp_path / "parts.py").write_text(PARTS)
    (tmp_path / "model.yaml").write_text(textwrap.dedent(f"""
        plugboard:
          process:
            args:
              components:
              - type: plugboard_beam.library.WebsocketReader
                args: {{name: feed, uri: '{state["uri"]}', parse_json: true, initial_message: {{subscribe: prices}}}}
              - {{type: parts.Until, args: {{name: until, n: 3}}}}
              - type: plugboard_beam.library.JsonLinesWriter
                args: {{name: out, path: out.jsonl, fields: [value]}}
              connectors:
              - {{source: feed.message, target: until.message}}
              - {{source: until.value, target: out.value}}
    """).lstrip())
    try:
        proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", "local"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    finally:
        loop.call_soon_threadsafe(loop.stop)
    assert proc.returncode == 0, proc.stderr
    assert state["sub"] == {"subscribe": "prices"}
    values = [json.loads(line)["value"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert values == [0, 1, 2]
