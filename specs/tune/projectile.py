"""A projectile thrown at an angle and speed: how high does it get over 100 m?"""

import math
import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.exceptions import ConstraintError
from plugboard_beam.schemas import ComponentArgsDict


class Distance(Component):
    """Horizontal distance x = 0, 1, ..., steps - 1 (metres)."""

    io = IO(outputs=["x"])

    def __init__(self, steps: int = 100, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._steps = steps
        self._x = 0

    def step(self) -> None:
        if self._x >= self._steps:
            self.io.close_sync()
            return
        self.x = self._x
        self._x += 1


class Height(Component):
    """Height of the projectile above x, for a launch angle (degrees) and speed (m/s)."""

    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, angle: float = 30.0, speed: float = 20.0, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._theta = math.radians(angle)
        self._speed = speed

    def step(self) -> None:
        c = math.cos(self._theta)
        self.y = self.x * math.tan(self._theta) - 9.81 * self.x**2 / (2 * self._speed**2 * c**2)


class Peak(Component):
    """The highest point so far (``peak``); with ``ceiling``, a height above it is a constraint
    violation (the trial is infeasible)."""

    io = IO(inputs=["y"], outputs=["peak"])

    def __init__(self, ceiling: float | None = None, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._ceiling = ceiling
        self.peak = 0.0

    def step(self) -> None:
        if self._ceiling is not None and self.y > self._ceiling:
            raise ConstraintError(f"height {self.y:.1f} m is above the ceiling of {self._ceiling} m")
        self.peak = max(self.peak, self.y)
