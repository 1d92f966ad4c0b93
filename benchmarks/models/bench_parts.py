"""Components of the benchmark models: cheap steps, so the engine's overhead shows."""

import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.schemas import ComponentArgsDict


class Source(Component):
    io = IO(outputs=["x"])

    def __init__(self, steps: int, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._n = steps
        self._i = 0

    async def step(self) -> None:
        if self._i >= self._n:
            await self.io.close()
            return
        self.x = self._i
        self._i += 1


class Scale(Component):
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, k: float = 2.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._k = k

    async def step(self) -> None:
        self.y = self._k * self.x


class Offset(Component):
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, c: float = 1.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._c = c

    async def step(self) -> None:
        self.y = self.x + self._c


class Total(Component):
    """Sums what it receives; writes the total in destroy() if given a path."""

    io = IO(inputs=["x"])

    def __init__(self, path: str = "", **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._path = path
        self.total = 0.0
        self.count = 0

    async def step(self) -> None:
        self.total += self.x
        self.count += 1

    async def destroy(self) -> None:
        if self._path:
            with open(self._path, "w") as f:
                f.write(f"{self.count} {self.total}\n")


class Mix(Component):
    """Loop head: feed = x + 0.5 * back."""

    io = IO(inputs=["x", "back"], outputs=["y"])

    async def step(self) -> None:
        self.y = self.x + 0.5 * self.back


class Stamp(Component):
    """Records the wall-clock time of each of its steps; writes them in destroy()."""

    io = IO(inputs=["x"])

    def __init__(self, path: str, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._path = path
        self._times: list[float] = []

    async def step(self) -> None:
        import time

        self._times.append(time.time())

    async def destroy(self) -> None:
        with open(self._path, "w") as f:
            f.write("\n".join(repr(t) for t in self._times) + "\n")


# ----------------------------------------------------------------------------- events model
from plugboard_beam.events import Event  # noqa: E402


class Level(Event):
    type: _t.ClassVar[str] = "level"
    data: dict[str, _t.Any]


class Detect(Component):
    """y = 2x; emits ``Level`` every ``every``-th step."""

    io = IO(inputs=["x"], outputs=["y"], output_events=[Level])

    def __init__(self, every: int = 10, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._every = every

    async def step(self) -> None:
        self.y = 2.0 * self.x
        if self.x % self._every == 0:
            self.io.queue_event(Level(source=self.name, data={"x": self.x}))


class TotalEv(Total):
    """``Total`` that also counts ``Level`` events (downstream of the producer: same tick)."""

    io = IO(inputs=["x"], input_events=[Level])

    def __init__(self, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self.levels = 0

    @Level.handler
    async def on_level(self, event: Level) -> None:
        self.levels += 1


class Tally(Component):
    """Event-only consumer without outputs: handlers only (a sibling: one step later)."""

    io = IO(input_events=[Level])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.count = 0

    @Level.handler
    def on_level(self, event: Level) -> None:
        self.count += 1
