"""A small recirculating separation plant: feed -> mixer -> separator -> tank, with the
separator's recycle stream fed back into the mixer (the loop is seeded with 0.0)."""

import typing as _t

from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict


class Feed(Component):
    """Fresh material per step: ``rate`` for ``steps`` steps, then the stream ends."""

    io = IO(outputs=["flow"])

    def __init__(self, steps: int, rate: float = 10.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._steps = steps
        self._rate = rate
        self._i = 0

    async def step(self) -> None:
        if self._i >= self._steps:
            await self.io.close()
            return
        self.flow = self._rate
        self._i += 1


class Mixer(Component):
    """Fresh feed plus the recycle stream."""

    io = IO(inputs=["fresh", "recycle"], outputs=["flow"])

    async def step(self) -> None:
        self.flow = self.fresh + self.recycle


class Separator(Component):
    """Splits its inflow: ``recovery`` of it is product, the rest goes back to the mixer."""

    io = IO(inputs=["flow"], outputs=["product", "recycle"])

    def __init__(self, recovery: float = 0.8, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._recovery = recovery

    async def step(self) -> None:
        self.product = self._recovery * self.flow
        self.recycle = self.flow - self.product


class Tank(Component):
    """Collects the product (``level``); ``--record`` shows every product flow into it."""

    io = IO(inputs=["product"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self.level = 0.0

    async def step(self) -> None:
        self.level += self.product
