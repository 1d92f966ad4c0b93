"""Small components for engine tests (importable as ``components`` from tests/)."""

from __future__ import annotations

import asyncio
import typing as _t

from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict

LOG: list[str] = []


class Counter(Component):
    """Source: sends start, start+1, ... ; closes at step ``n`` (so ``n`` values are sent)."""

    io = IO(outputs=["v"])

    def __init__(self, n: int, start: int = 0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._n, self._i, self._start = n, 0, start

    async def step(self) -> None:
        if self._i >= self._n:
            await self.io.close()
            return
        self.v = self._start + self._i
        self._i += 1


class SyncCounter(Component):
    """Like Counter, with plain ``def`` methods."""

    io = IO(outputs=["v"])

    def __init__(self, n: int, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._n, self._i = n, 0

    def step(self) -> None:  # type: ignore[override]
        if self._i >= self._n:
            self.io.close_sync()
            return
        self.v = self._i
        self._i += 1


class SetThenClose(Component):
    """Sets v=i for i=1..n and closes at i=n (SEMANTICS: n-1 values are sent)."""

    io = IO(outputs=["v"])

    def __init__(self, n: int, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._n, self._i = n, 0

    async def step(self) -> None:
        self._i += 1
        self.v = self._i
        if self._i >= self._n:
            await self.io.close()


class Sometimes(Component):
    """Sets ``w`` only on steps whose input is a multiple of 3; never sets ``never``."""

    io = IO(inputs=["v"], outputs=["w", "never"])

    async def step(self) -> None:
        if self.v % 3 == 0:
            self.w = self.v


class Add(Component):
    io = IO(inputs=["a", "b"], outputs=["s"])

    async def step(self) -> None:
        self.s = (self.a, self.b)


class Double(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self.y = 2 * self.x


class Pass(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self.y = self.x


class Sink(Component):
    """Records every step's inputs in ``self.rows``; logs its lifecycle in LOG."""

    io = IO(inputs=["x"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.rows: list[_t.Any] = []

    async def init(self) -> None:
        LOG.append(f"init {self.name}")

    async def step(self) -> None:
        self.rows.append(self.x)

    async def destroy(self) -> None:
        LOG.append(f"destroy {self.name}")


class Sink2(Component):
    io = IO(inputs=["a", "b"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.rows: list[_t.Any] = []

    async def step(self) -> None:
        self.rows.append((self.a, self.b))


class Sleepy(Component):
    """Really awaits (asyncio.sleep): needs the driver's event-loop fallback."""

    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        await asyncio.sleep(0.001)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, self.x)
        self.y = await fut


class Boom(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        if self.x == 2:
            raise ValueError("two is too many")
        self.y = self.x

    async def destroy(self) -> None:
        LOG.append(f"destroy {self.name}")
