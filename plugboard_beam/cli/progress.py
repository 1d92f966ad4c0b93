"""Progress on a terminal: steps done per component, redrawn in place; silent otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
import typing as _t

from plugboard_beam.runtime.engine import Engine


class Progress:
    """Writes ``steps: a=1200 b=1199 ...`` to stderr every half second when it is a TTY."""

    def __init__(self, enabled: _t.Optional[bool] = None, stream: _t.TextIO = sys.stderr) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._drawn = False
        self._last = 0.0
        self._line = ""

    def __call__(self, key: str, engine: Engine) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.25:
            return
        self._last = now
        steps = engine.steps()
        total = sum(steps.values())
        rate = total / max(time.monotonic() - self.start, 1e-9)
        parts = " ".join(f"{n}={s}" for n, s in steps.items())
        head = f"[{key}] " if key else ""
        line = f"{head}{total} steps ({rate:,.0f}/s): {parts}"
        width = 120
        self._line = line[:width].ljust(width)
        self.stream.write("\r" + self._line)
        self.stream.flush()
        self._drawn = True

    @contextlib.contextmanager
    def suspended(self) -> _t.Iterator[None]:
        """The progress line cleared while something else (a log record) is written to the
        terminal, then drawn again below it (``plugboard_beam.logs.LineOwner``)."""
        if not self._drawn:
            yield
            return
        self.stream.write("\r" + " " * len(self._line) + "\r")
        self.stream.flush()
        try:
            yield
        finally:
            self.stream.write("\r" + self._line)
            self.stream.flush()

    def done(self) -> None:
        """End the progress line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
