"""A tank with a level-controlled outlet valve: a digital twin fed by inflow measurements.

tank.level(t) = tank.level(t-1) + inflow(t) - outflow(t-1); the valve opens in proportion to
the level, and its outflow recirculates into the tank's balance (a seeded loop).
"""

import typing as _t

from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict


class Tank(Component):
    io = IO(inputs=["inflow", "outflow"], outputs=["level"])

    def __init__(self, capacity: float = 100.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._capacity = capacity
        self._level = 0.0

    async def step(self) -> None:
        self._level = min(self._capacity, max(0.0, self._level + self.inflow - self.outflow))
        self.level = round(self._level, 6)


class Valve(Component):
    io = IO(inputs=["level"], outputs=["outflow"])

    def __init__(self, gain: float = 0.2, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._gain = gain

    async def step(self) -> None:
        self.outflow = round(self._gain * self.level, 6)


class Alarm(Component):
    """True while the level is above ``high``."""

    io = IO(inputs=["level"], outputs=["high"])

    def __init__(self, high: float = 50.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._high = high

    async def step(self) -> None:
        self.high = self.level > self._high
