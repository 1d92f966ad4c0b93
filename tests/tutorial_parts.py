"""Components of the tutorial-parity tests: our own models using what plugboard 0.9.0's
tutorials use (a seeded random source, branching, a loop closed by an
initial value, process parameters, events published by a component and collected by others,
files written by our components and by ``FileWriter``)."""

from __future__ import annotations

import random
import typing as _t

from pydantic import BaseModel

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event
from plugboard_beam.schemas import ComponentArgsDict

#: the draws of ``Draw``: the tutorials draw from the global ``random``, but the libraries under
#: them take numbers from it too (plugboard its ids, Beam its own), so a run is seeded here
RNG = random.Random()


class Draw(Component):
    """``n`` values from ``RNG`` (seeded by the caller), then closes."""

    io = IO(outputs=["x"])

    def __init__(self, n: int, low: float = 0, high: float = 10, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._left = n
        self._low = low
        self._high = high

    async def step(self) -> None:
        if self._left <= 0:
            await self.io.close()
            return
        self._left -= 1
        self.x = RNG.uniform(self._low, self._high)


class Times(Component):
    """``x = a * scale``: the argument, else the ``scale`` parameter (default 1)."""

    io = IO(inputs=["a"], outputs=["x"])

    def __init__(self, scale: _t.Optional[float] = None, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._scale = scale

    async def step(self) -> None:
        scale = self._scale if self._scale is not None else self.parameters.get("scale", 1)
        self.x = self.a * scale


class Add(Component):
    """``x = a + b``."""

    io = IO(inputs=["a", "b"], outputs=["x"])

    async def step(self) -> None:
        self.x = self.a + self.b


class Keep(Component):
    """Writes each value on its own line of ``path``."""

    io = IO(inputs=["v"])

    def __init__(self, path: str, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._path = path

    async def init(self) -> None:
        self._f = open(self._path, "w")

    async def step(self) -> None:
        self._f.write(f"{self.v}\n")

    async def destroy(self) -> None:
        self._f.close()


class Extreme(BaseModel):
    value: float


class Big(Event):
    type: _t.ClassVar[str] = "big"
    data: Extreme


class Small(Event):
    type: _t.ClassVar[str] = "small"
    data: Extreme


class Classify(Component):
    """Publishes ``Big`` for values above ``high`` and ``Small`` below ``low``."""

    io = IO(inputs=["x"], output_events=[Small, Big])

    def __init__(self, low: float = 3, high: float = 7, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._low = low
        self._high = high

    async def step(self) -> None:
        if self.x >= self._high:
            self.io.queue_event(Big(source=self.name, data=Extreme(value=self.x)))
        if self.x <= self._low:
            self.io.queue_event(Small(source=self.name, data=Extreme(value=self.x)))


class LatestBig(Component):
    """Outputs the value of the latest ``Big`` event (None before the first)."""

    io = IO(input_events=[Big], outputs=["value"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.latest: _t.Optional[float] = None

    async def step(self) -> None:
        self.value = self.latest

    @Big.handler
    async def on_big(self, event: Big) -> None:
        self.latest = event.data.value


class LatestSmall(Component):
    """Outputs the value of the latest ``Small`` event (None before the first)."""

    io = IO(input_events=[Small], outputs=["value"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.latest: _t.Optional[float] = None

    async def step(self) -> None:
        self.value = self.latest

    @Small.handler
    async def on_small(self, event: Small) -> None:
        self.latest = event.data.value
