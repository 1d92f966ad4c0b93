"""Components of the tuning tests: a projectile (peak height for an angle and a speed)."""

from __future__ import annotations

import math
import time
import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.exceptions import ConstraintError


def peak_of(angle: float, speed: float, steps: int) -> float:
    """What ``Peak.peak`` ends at: the highest y over x = 0 .. steps-1 (never below 0)."""
    theta = math.radians(angle)
    best = 0.0
    for x in range(steps):
        best = max(best, x * math.tan(theta) - 9.81 * x**2 / (2 * speed**2 * math.cos(theta) ** 2))
    return best


class Xs(Component):
    io = IO(outputs=["x"])

    def __init__(self, steps: int = 20, delay: float = 0.0, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._steps = steps
        self._delay = delay
        self._x = 0

    def step(self) -> None:
        if self._delay:
            time.sleep(self._delay)
        if self._x >= self._steps:
            self.io.close_sync()
            return
        self.x = self._x
        self._x += 1


class Height(Component):
    """Fails (ValueError) at step 3 when the angle is above ``fail_above``."""

    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, angle: float = 30.0, speed: float = 20.0, fail_above: float = 1000.0,
                 **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._theta = math.radians(angle)
        self._angle = angle
        self._speed = speed
        self._fail_above = fail_above
        self.launch_speed = speed  # an objective to minimise (against the peak)

    def step(self) -> None:
        if self._angle > self._fail_above and self.x == 3:
            raise ValueError(f"angle {self._angle:.1f} is too steep")
        c = math.cos(self._theta)
        self.y = self.x * math.tan(self._theta) - 9.81 * self.x**2 / (2 * self._speed**2 * c**2)


class Peak(Component):
    """``ConstraintError`` when y goes above ``ceiling`` (with ``penalty`` as objective_value)."""

    io = IO(inputs=["y"], outputs=["peak"])

    def __init__(self, ceiling: float | None = None, penalty: float | None = None, **kwargs: _t.Any) -> None:
        super().__init__(**kwargs)
        self._ceiling = ceiling
        self._penalty = penalty
        self.peak = 0.0

    def step(self) -> None:
        if self._ceiling is not None and self.y > self._ceiling:
            raise ConstraintError(f"y {self.y:.1f} above {self._ceiling}", objective_value=self._penalty)
        self.peak = max(self.peak, self.y)
