"""Components for the plugboard parity tests (importable: YAML runs and Beam pickle them)."""

from __future__ import annotations

import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event


class Tick(Event):
    type: _t.ClassVar[str] = "parity_tick"
    data: dict[str, _t.Any]


class Count(Component):
    """t = 0..n-1."""

    io = IO(outputs=["t"])

    def __init__(self, n: int = 4, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n, self.i = n, 0

    async def step(self) -> None:
        if self.i == self.n:
            await self.io.close()
            return
        self.t = self.i
        self.i += 1


class Announce(Component):
    """Emits one ``Tick`` per step, naming itself."""

    io = IO(inputs=["t"], output_events=[Tick])

    async def step(self) -> None:
        self.io.queue_event(Tick(source=self.name, data={"by": self.name, "t": self.t}))


class TickLog(Component):
    """Writes ``<t> <producer>`` per event handled, in the order handled."""

    io = IO(input_events=[Tick])

    def __init__(self, path: str, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.path = path
        self.seen: list[str] = []

    @Tick.handler
    async def on_tick(self, event: Tick) -> None:
        self.seen.append(f"{event.data['t']} {event.data['by']}")

    async def destroy(self) -> None:
        with open(self.path, "w") as f:
            f.write("".join(f"{line}\n" for line in self.seen))


class Scale(Component):
    """x = a * parameters['scale'] (1 when unset), as plugboard's tutorial 002."""

    io = IO(inputs=["a"], outputs=["x"])

    async def step(self) -> None:
        self.x = self.a * self.parameters.get("scale", 1)


class Write(Component):
    """Writes each value of ``v`` on a line of ``path``."""

    io = IO(inputs=["v"])

    def __init__(self, path: str, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.path = path
        self.lines: list[str] = []

    async def step(self) -> None:
        self.lines.append(f"{self.v}\n")

    async def destroy(self) -> None:
        with open(self.path, "w") as f:
            f.write("".join(self.lines))
