"""Progress of a run while it runs, on every runner, and the one display ``process tune`` shares.

``Progress`` reads a ``Snapshot`` (``runtime/context.py``: keys done / total, component-steps,
the rate over a recent window, elapsed) a few times a second on its own thread:

- on a terminal it draws a ``rich`` progress bar: keys N/M, failed keys, component-steps/s,
  elapsed and time left (estimated from the keys done, like the bar);
- elsewhere (a pipe, CI, a log file) it writes a plain line every ``every`` seconds
  (``--progress-every``), e.g. ``progress: keys 3/10, 0 failed, 120000 component-steps,
  40000 steps/s, elapsed 3.0 s, left 7.0 s``.

The step loop pays nothing for it: the runners register a key's engine when it starts and
count its steps once when it ends (``RunTracker``), and the display reads the counters.

**Writing to the terminal while a bar is shown** (logging, warnings): write through
``Progress.console`` (a ``rich.console.Console`` on the same stream: ``console.print(...)``
appears above the bar, which is redrawn below it), or wrap any other write to the stream in
``with progress.suspend(): ...`` (the bar is taken away, the write goes out, the bar comes
back; in plain-line mode it only keeps a progress line from interleaving with the write).
``Progress.stop()`` ends the display (the bar is erased; the run's summary follows).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import typing as _t

from plugboard_beam.runtime.context import RunTracker, Snapshot

if _t.TYPE_CHECKING:  # rich is imported when a display is made (the CLI starts faster)
    from rich.console import Console
    from rich.progress import Progress as RichProgress

#: seconds between plain progress lines by default (off a terminal)
EVERY_SECONDS = 10.0
#: seconds between redraws of the bar on a terminal
REDRAW_SECONDS = 0.25


def _seconds(s: float) -> str:
    """``42.0 s``, ``3 min 05 s``, ``2 h 03 min``."""
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class Progress:
    """Shows ``source()`` (a ``Snapshot``) while a run runs: a bar on a terminal, plain lines
    every ``every`` seconds otherwise (module docstring). ``enabled`` False: nothing at all."""

    def __init__(self, source: _t.Callable[[], Snapshot], enabled: bool = True, stream: _t.TextIO = sys.stderr,
                 every: float = EVERY_SECONDS, unit: str = "keys", extra: _t.Callable[[], str] = lambda: "",
                 terminal: _t.Optional[bool] = None, rate: bool = True) -> None:
        self.source = source
        self.enabled = enabled
        self.stream = stream
        self.every = every
        self.unit = unit
        self.extra = extra
        self.rate = rate  # component-steps are counted (not by ``process tune``'s trials)
        self.terminal = stream.isatty() if terminal is None else terminal
        from rich.console import Console

        #: the console the bar draws on: write through it to keep the bar intact
        self.console: Console = Console(file=stream, force_terminal=self.terminal or None,
                                        stderr=stream is sys.stderr)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: _t.Optional[threading.Thread] = None
        self._bar: _t.Optional[RichProgress] = None
        self._task: _t.Any = None
        self._said_unavailable = False

    @classmethod
    def of_run(cls, tracker: RunTracker, enabled: _t.Optional[bool], every: float = EVERY_SECONDS,
               stream: _t.TextIO = sys.stderr) -> Progress:
        """The display of a run's tracker (``enabled`` None: shown)."""
        return cls(tracker.snapshot, enabled is not False, stream, every)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Progress:
        """Start showing (on a thread); returns self."""
        if not self.enabled or self._thread is not None:
            return self
        if self.terminal:
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[keys]}"),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=self.console, auto_refresh=False, transient=True)
            self._task = self._bar.add_task("run", total=None, keys="", rate="", extra="")
            self._bar.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop showing (the bar is erased). Safe to call more than once."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(2.0)
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def suspend(self) -> _t.Iterator[None]:
        """Take the bar away while the block writes to the stream (module docstring)."""
        with self._lock:
            bar = self._bar
            if bar is not None:
                bar.stop()
            try:
                yield
            finally:
                if bar is not None and self._bar is bar:
                    bar.start()
                    self._draw()

    def suspended(self) -> _t.ContextManager[None]:
        """``suspend()`` under the name ``plugboard_beam.logs.LineOwner`` asks for (the log
        handler clears the bar around each record)."""
        return self.suspend()

    # ------------------------------------------------------------ drawing
    def _loop(self) -> None:
        wait = REDRAW_SECONDS if self.terminal else self.every
        while not self._stop.wait(wait):
            try:
                with self._lock:
                    self._draw()
            except Exception:  # never let the display break the run
                return

    def _draw(self) -> None:
        snap = self.source()
        if self._bar is not None:
            self._bar.update(self._task, completed=snap.keys_done, total=snap.keys_total,
                             keys=self.keys_text(snap), rate=self.rate_text(snap), extra=self.extra())
            self._bar.refresh()
            return
        self.stream.write(self.line(snap) + "\n")
        self.stream.flush()

    def keys_text(self, snap: Snapshot) -> str:
        """``keys 3/10, 1 failed`` (``?`` when the total is not known yet)."""
        if snap.unavailable:
            return f"{self.unit}: {snap.unavailable}"
        total = "?" if snap.keys_total is None else str(snap.keys_total)
        return f"{self.unit} {snap.keys_done}/{total}, {snap.keys_failed} failed"

    def rate_text(self, snap: Snapshot) -> str:
        """``12345 steps/s`` (component-steps over the recent window)."""
        return "" if snap.unavailable or not self.rate else f"{snap.rate:,.0f} steps/s"

    def line(self, snap: Snapshot) -> str:
        """One plain progress line."""
        if snap.unavailable:
            if self._said_unavailable:
                return f"progress: elapsed {_seconds(snap.elapsed)}"
            self._said_unavailable = True
            return f"progress: {snap.unavailable}; elapsed {_seconds(snap.elapsed)}"
        parts = [f"progress: {self.keys_text(snap)}"]
        if self.rate:
            parts += [f"{snap.steps} component-steps", f"{snap.rate:.0f} steps/s"]
        parts.append(f"elapsed {_seconds(snap.elapsed)}")
        left = time_left(snap)
        if left is not None:
            parts.append(f"left {_seconds(left)}")
        extra = self.extra()
        if extra:
            parts.append(extra)
        return ", ".join(parts)


def time_left(snap: Snapshot) -> _t.Optional[float]:
    """Seconds left, from the keys done so far (None until a key is done or without a total)."""
    if snap.keys_total is None or snap.keys_done == 0 or snap.elapsed <= 0:
        return None
    return max(0.0, (snap.keys_total - snap.keys_done) * snap.elapsed / snap.keys_done)


__all__ = ["EVERY_SECONDS", "Progress", "time_left"]
