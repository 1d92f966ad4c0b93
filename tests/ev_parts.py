"""Event components for the tick-rule tests (importable, so they pickle across stages)."""

from __future__ import annotations

import typing as _t

from pydantic import BaseModel

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event, StopEvent


class At(BaseModel):
    step: int


class Ping(Event):
    type: _t.ClassVar[str] = "ping"
    data: At


class Pong(Event):
    type: _t.ClassVar[str] = "pong"
    data: dict[str, _t.Any]


class Src(Component):
    """t = 0..n-1 on field ``t``; emits Ping(step) on the steps in ``at`` (``per`` times)."""

    io = IO(outputs=["t"], output_events=[Ping])

    def __init__(self, n: int = 6, at: _t.Sequence[int] = (), per: int = 1, stop_at: int = -1,
                 **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n, self.at, self.per, self.stop_at, self.i = n, list(at), per, stop_at, 0
        self.seen: list[tuple[int, str, int]] = []

    def step(self) -> None:  # plain def works too
        if self.i >= self.n:
            self.io.close_sync()
            return
        self.t = self.i
        if self.i in self.at:
            for j in range(self.per):
                self.io.queue_event(Ping(source=self.name, data=At(step=self.i), metadata={"j": str(j)}))
        if self.i == self.stop_at:
            self.io.queue_event(StopEvent(source=self.name, data={}))
        self.i += 1


class Relay(Component):
    """Reads t; emits Ping on the steps in ``at``; logs the Pings it handles with its step."""

    io = IO(inputs=["t"], outputs=["u"], input_events=[Ping], output_events=[Ping])

    def __init__(self, at: _t.Sequence[int] = (), **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.at = list(at)
        self.steps = 0
        self.seen: list[tuple[int, str, int]] = []
        self.log: list[str] = []

    async def step(self) -> None:
        self.log.append(f"step {self.steps} t={self.t}")
        self.u = self.t
        if self.t in self.at:
            self.io.queue_event(Ping(source=self.name, data=At(step=self.t)))
        self.steps += 1

    @Ping.handler
    async def on_ping(self, event: Ping) -> None:
        self.seen.append((self.steps, event.source, event.data.step))
        self.log.append(f"ping {event.source}:{event.data.step}:{event.metadata.get('j', '')}")

    async def destroy(self) -> None:
        self.log.append(f"destroy {self.status}")


class Watcher(Component):
    """Reads t, handles Pings (logs the step it sees them before)."""

    io = IO(inputs=["t"], input_events=[Ping])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.steps = 0
        self.seen: list[tuple[int, str, int]] = []
        self.log: list[str] = []

    def step(self) -> None:
        self.log.append(f"step {self.steps} t={self.t} closed={int(self.io.is_closed)}")
        self.steps += 1

    @Ping.handler
    def on_ping(self, event: Ping) -> None:
        self.seen.append((self.steps, event.source, event.data.step))

    def destroy(self) -> None:
        self.log.append(f"destroy steps={self.steps} {self.status}")


class Counter(Component):
    """Event-driven: no input fields; counts Pings; output ``count`` if ``out``."""

    io = IO(input_events=[Ping], outputs=["count"], output_events=[Pong])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n = 0
        self.steps = 0
        self.log: list[str] = []

    def step(self) -> None:
        self.count = self.n
        self.log.append(f"step {self.steps} count={self.n}")
        self.steps += 1

    @Ping.handler
    def on_ping(self, event: Ping) -> Pong:
        self.n += 1
        return Pong(source=self.name, data={"n": self.n})  # a returned event is emitted



class PureCounter(Component):
    """Event-driven without outputs: handlers only."""

    io = IO(input_events=[Ping])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n = 0
        self.step_calls = 0

    def step(self) -> None:
        self.step_calls += 1

    @Ping.handler
    def on_ping(self, event: Ping) -> None:
        self.n += 1


class PongSink(Component):
    """Reads ``count``, handles Pong events."""

    io = IO(inputs=["count"], input_events=[Pong])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.rows: list[_t.Any] = []
        self.pongs: list[int] = []

    def step(self) -> None:
        self.rows.append(self.count)

    @Pong.handler
    def on_pong(self, event: Pong) -> None:
        self.pongs.append(event.data["n"])


class Rogue(Component):
    """Queues a Pong it did not declare."""

    io = IO(inputs=["t"])

    def step(self) -> None:
        if self.t == 2:
            self.io.queue_event(Pong(source=self.name, data={}))


class Raiser(Component):
    """Its Ping handler raises on step ``bad``."""

    io = IO(inputs=["t"], input_events=[Ping])

    def __init__(self, bad: int = 1, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.bad = bad
        self.destroyed = False

    def step(self) -> None:
        pass

    @Ping.handler
    def on_ping(self, event: Ping) -> None:
        if event.data.step == self.bad:
            raise RuntimeError("bad ping")

    def destroy(self) -> None:
        self.destroyed = True


class Lambda(BaseModel):
    model_config = {"arbitrary_types_allowed": True}
    fn: _t.Any


class Blob(Event):
    type: _t.ClassVar[str] = "blob"
    data: Lambda


class BlobSrc(Component):
    io = IO(outputs=["t"], output_events=[Blob])

    def __init__(self, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.i = 0

    def step(self) -> None:
        if self.i == 3:
            self.io.close_sync()
            return
        self.t = self.i
        if self.i == 1:
            self.io.queue_event(Blob(source=self.name, data=Lambda(fn=lambda: 0)))
        self.i += 1


class BlobSink(Component):
    io = IO(inputs=["t"], input_events=[Blob])

    def step(self) -> None:
        pass

    @Blob.handler
    def on_blob(self, event: Blob) -> None:
        pass
