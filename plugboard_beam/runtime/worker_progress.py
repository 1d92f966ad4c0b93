"""Progress from worker processes (DirectRunner ``multi_processing``) back to the runner's tracker.

A stage DoFn in a process without the runner's ``RunContext`` cannot call its ``RunTracker``.
The runner gives the run a folder (``RunContext.folder``, a temp dir it creates and removes
after the run) and the stage DoFns its path; in a worker process every key that ends at a stage
appends one JSON line to that process's own file there (``WorkerFeed``: one file per process,
opened once, flushed per line; a line per key end, never per step)::

    {"key": "k1", "stage": "<stage DoFn id>", "steps": {"tick": 40, "check": 40}, "failed": false}

and, so that the steps of keys still running count too (a run of a few long keys would show
0 steps until its keys end), a thread of the feed writes the process's component-steps so far
(its ended keys' and its live engines', ``live``) every ``every`` seconds when they changed
(less often when many live runs make a sample slow: ``SAMPLE_SHARE``)::

    {"live": 5230}

The runner's tracker reads the new lines of every file when the display takes a snapshot
(``FolderReader``: an offset per file; a partial last line waits for the next read). A file's
running steps are its last ``live`` total less the steps of the key ends read from it (never
below 0): a key's steps are never counted twice, its running ones at most a second late.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import typing as _t
import uuid

if _t.TYPE_CHECKING:
    from plugboard_beam.runtime.context import RunContext

#: the files' suffix in the run's folder
SUFFIX = ".jsonl"
#: bytes a line may have (a longer one is reported and skipped, not parsed)
MAX_LINE = 1 << 20
#: a feed waits at least this many times as long as its last sample took before the next one
SAMPLE_SHARE = 50

log = logging.getLogger("plugboard_beam")


class KeyEnd(_t.NamedTuple):
    """A key that has ended at a stage in a worker process."""

    key: str
    stage: str
    steps: dict[str, int]
    failed: bool


class Live(_t.NamedTuple):
    """A worker process's component-steps so far: its ended keys' and its running engines'."""

    steps: int


def live_steps(ctx: RunContext) -> int:
    """The component-steps of the engines still running in ``ctx`` (this process's live runs;
    a run that has finished is left out: its steps come with its key's end)."""
    from plugboard_beam.runtime.context import work

    total = 0
    for group in list(ctx.live_runs.values()):
        for _, run in list(group.values()):
            if not run.finished:
                total += sum(work(run.engine).values())
    return total


class WorkerFeed:
    """This process's file of ended keys in the run's ``folder`` (thread-safe); with ``live``
    (the component-steps of this process's running engines, e.g. ``live_steps``), a daemon
    thread also writes the process's steps so far every ``every`` seconds (module docstring)."""

    def __init__(self, folder: str, live: _t.Optional[_t.Callable[[], int]] = None, every: float = 1.0) -> None:
        self.path = os.path.join(folder, f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}")
        self._file = open(self.path, "a", encoding="utf-8")  # open for the run (closed at exit)
        self._lock = threading.Lock()
        self._ended_steps = 0
        self._written = -1
        self._live = live
        self._stop = threading.Event()
        if live is not None:
            threading.Thread(target=self._sample, args=(every,), name="plugboard-beam-progress-feed",
                             daemon=True).start()

    def ended(self, stage: str, key: str, steps: _t.Mapping[str, int], failed: bool) -> None:
        """``key`` has ended at ``stage``: one line, flushed (the runner reads it while we run)."""
        line = json.dumps({"key": key, "stage": stage, "steps": dict(steps), "failed": failed},
                          separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return
            self._ended_steps += sum(steps.values())
            self._write(line)

    def sample(self) -> None:
        """Write this process's steps so far (ended keys' and live engines'), if they changed."""
        if self._live is None:
            return
        try:
            running = self._live()
        except RuntimeError:  # the live runs changed while read: the next sample
            return
        with self._lock:
            total = self._ended_steps + running
            if self._file.closed or total == self._written:
                return
            self._written = total
            self._write(json.dumps({"live": total}))

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def _sample(self, every: float) -> None:
        wait = every
        while not self._stop.wait(wait):
            try:
                took = time.perf_counter()
                self.sample()
                # many live runs (per-component stages hold a run per key): at most ~2% of the time
                wait = max(every, SAMPLE_SHARE * (time.perf_counter() - took))
            except (OSError, ValueError):  # the file went away with the run's folder
                return
            except Exception as exc:  # counting is not worth a worker: say so, count key ends only
                log.warning("worker progress: the steps of running keys are no longer counted (%s: %s)",
                            type(exc).__name__, exc)
                return

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._file.close()


def parse(line: bytes) -> _t.Union[KeyEnd, Live]:
    """One line of a worker's file (``ValueError`` if it is not one)."""
    if len(line) > MAX_LINE:
        raise ValueError(f"line of {len(line)} bytes (at most {MAX_LINE})")
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if set(obj) == {"live"}:
        if type(obj["live"]) is not int or obj["live"] < 0:
            raise ValueError("live: a non-negative integer expected")
        return Live(obj["live"])
    key, stage, steps, failed = obj.get("key"), obj.get("stage"), obj.get("steps"), obj.get("failed")
    if not isinstance(key, str) or not isinstance(stage, str) or not isinstance(failed, bool):
        raise ValueError("key, stage (strings) and failed (boolean) expected")
    if not isinstance(steps, dict) or not all(isinstance(k, str) and type(v) is int for k, v in steps.items()):
        raise ValueError("steps: an object of component -> integer expected")
    return KeyEnd(key, stage, steps, failed)


class FolderReader:
    """The new key ends in the files of a run's ``folder`` since the last ``read`` (one reader at
    a time: the tracker holds a lock around it)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._offsets: dict[str, int] = {}
        #: per file: its last ``live`` total and the steps of the key ends read from it
        self._live: dict[str, int] = {}
        self._ended: dict[str, int] = {}

    def running(self) -> int:
        """The component-steps of the keys still running in the worker processes, as of the last ``read``."""
        return sum(max(0, total - self._ended.get(name, 0)) for name, total in self._live.items())

    def read(self) -> list[KeyEnd]:
        out: list[KeyEnd] = []
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX))
        except FileNotFoundError:
            return out
        for name in names:
            path = os.path.join(self.folder, name)
            start = self._offsets.get(name, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) > MAX_LINE:  # no end of line in sight: skip what is there
                    log.warning("worker progress %s: a line longer than %d bytes skipped", name, MAX_LINE)
                    self._offsets[name] = start + len(data)
                continue  # a partial line: the rest comes with the next read
            self._offsets[name] = start + end + 1
            for line in data[:end].split(b"\n"):
                if not line.strip():
                    continue
                try:
                    item = parse(line)
                except ValueError as err:
                    log.warning("worker progress %s: line skipped (%s)", name, err)
                    continue
                if isinstance(item, Live):
                    self._live[name] = item.steps
                else:
                    self._ended[name] = self._ended.get(name, 0) + sum(item.steps.values())
                    out.append(item)
        return out


__all__ = ["FolderReader", "KeyEnd", "Live", "WorkerFeed", "live_steps", "parse"]
