"""The context of one run: what the DoFns of a pipeline share in a process, and its progress.

A runner opens a ``RunContext`` (``RunContext.open``) for each pipeline it runs and hands its
``run_id`` to the DoFns that need it (``lowering/beam.py``'s ``StageDoFn``); a DoFn looks its
context up by that id in ``setup()`` (``RunContext.lookup``). The DoFn pickles only the id, so
the lookup works wherever the DoFn is unpickled:

- in the runner's own process (the DirectRunner's ``in_memory`` / ``multi_threading`` modes,
  streaming on the DirectRunner) it finds the runner's context, with the ``RunTracker`` that
  the progress display reads;
- in another process (``multi_processing`` workers, Dataflow) it finds nothing and makes a
  context of its own, without tracker. With ``multi_processing`` the runner gives the run a
  folder (``RunContext.folder``) and the DoFns its path: there each key that ends is a line in
  the worker's own file, which the runner's tracker reads at each snapshot
  (``runtime/worker_progress.py``). Dataflow has no progress.

Two pipelines in one process have two run ids, hence two contexts: neither sees the other's
live runs, ended keys or progress. ``close`` (the runner, after its pipeline) destroys the runs
still live in its context; ``close_all`` (an exit hook of worker processes) those of every
context of the process.

``RunTracker`` counts what the progress display shows, cheaply: a key's engine is registered
when its stage starts (``live``) and its steps are added once when it ends (``ended``); the
display reads the live engines' step counters when it redraws (a few times a second), so the
step loop pays nothing for progress.
"""

from __future__ import annotations

from collections import deque
import threading
import time
import typing as _t
import uuid

from plugboard_beam.runtime.worker_progress import FolderReader

if _t.TYPE_CHECKING:
    from plugboard_beam.runtime.engine import Engine
    from plugboard_beam.runtime.stage import StageRun

T = _t.TypeVar("T")


def work(engine: Engine) -> dict[str, int]:
    """Steps per component of ``engine``, an event-only component (no output fields, driven by
    events) counted by the ticks it handled: its ``step()`` is never called."""
    out = {}
    for name, r in engine.runners.items():
        out[name] = r.ticks if r.event_driven and not r.outs else r.steps
    return out


class Snapshot(_t.NamedTuple):
    """What the tracker knows at one moment."""

    keys_done: int
    keys_failed: int
    keys_total: _t.Optional[int]
    steps: int
    #: component-steps per second over the last ``RunTracker.window`` seconds
    rate: float
    elapsed: float
    #: why progress is not counted here (e.g. multi_processing workers), or ""
    unavailable: str


class RunTracker:
    """Keys done and component-steps of a run, fed by the engines (thread-safe)."""

    def __init__(self, window: float = 5.0, clock: _t.Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.start = clock()
        self.keys_total: _t.Optional[int] = None
        #: stages a key goes through (a key is done when it has ended at every one)
        self.stages = 1
        self.keys_done = 0
        self.keys_failed = 0
        self.unavailable = ""
        self.done_steps: dict[str, int] = {}
        self._done_total = 0
        self._live: dict[tuple[str, str], Engine] = {}
        self._stage_ends: dict[str, int] = {}
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        #: (time, component-steps) seen by snapshots, from the start (the first snapshot's rate is
        #: then the one since the start, not 0)
        self._samples: deque[tuple[float, int]] = deque([(self.start, 0)])
        #: the folders of worker processes' key ends (``follow``), read at each snapshot
        self._folders: list[FolderReader] = []
        self._read_lock = threading.Lock()

    def expect(self, keys: _t.Optional[int]) -> None:
        """The number of keys of the run, when known."""
        self.keys_total = keys

    def restart(self) -> None:
        """The run starts now (elapsed and rate from here)."""
        self.start = self.clock()
        self._samples.clear()
        self._samples.append((self.start, self.steps()))

    def live(self, stage: str, key: str, engine: Engine) -> None:
        """``engine`` runs ``key`` at ``stage`` (its steps are read when the display redraws)."""
        self._live[(stage, key)] = engine

    def ended(self, stage: str, key: str, steps: _t.Mapping[str, int], failed: bool) -> None:
        """``key`` has ended at ``stage`` with ``steps`` per component (``work``)."""
        with self._lock:
            self._live.pop((stage, key), None)
            for name, n in steps.items():
                self.done_steps[name] = self.done_steps.get(name, 0) + n
                self._done_total += n
            if self.stages > 1:
                seen = self._stage_ends.get(key, 0) + 1
                if failed:
                    self._failed.add(key)
                if seen < self.stages:
                    self._stage_ends[key] = seen
                    return
                self._stage_ends.pop(key, None)
                failed = key in self._failed
                self._failed.discard(key)
            self.keys_done += 1
            self.keys_failed += failed

    def follow(self, folder: str) -> None:
        """Count the key ends that worker processes write to ``folder`` (``runtime/worker_progress.py``)."""
        with self._read_lock:
            self._folders.append(FolderReader(folder))

    def unfollow(self, folder: str) -> None:
        """Read ``folder``'s last key ends and stop reading it (before it is removed)."""
        self.read_workers()
        with self._read_lock:
            self._folders = [r for r in self._folders if r.folder != folder]

    def read_workers(self) -> None:
        """Count the key ends written by worker processes since the last read."""
        with self._read_lock:
            for reader in self._folders:
                for end in reader.read():
                    self.ended(end.stage, end.key, end.steps, end.failed)

    def steps(self) -> int:
        """Component-steps so far: the ended stages' and the live engines' (those of worker
        processes as of their last ``live`` line)."""
        with self._lock:
            engines = list(self._live.values())
            total = self._done_total
        with self._read_lock:
            total += sum(reader.running() for reader in self._folders)
        for engine in engines:
            try:
                total += sum(work(engine).values())
            except RuntimeError:  # its runners changed while read (a state restore): next time
                pass
        return total

    def snapshot(self) -> Snapshot:
        """The counters now, with the rate over the recent window."""
        self.read_workers()
        now = self.clock()
        steps = self.steps()
        samples = self._samples
        samples.append((now, steps))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()
        t0, s0 = samples[0]
        rate = (steps - s0) / (now - t0) if now > t0 else 0.0
        return Snapshot(self.keys_done, self.keys_failed, self.keys_total, steps, rate, now - self.start,
                        self.unavailable)


#: failure rows a context keeps for an interrupted run's message (bounded memory)
KEEP_FAILED_ROWS = 10_000


class RunContext:
    """What the DoFns of one pipeline share in a process (module docstring)."""

    #: the open contexts of this process by run id (the one registry: DoFns find theirs here)
    _open: _t.ClassVar[dict[str, RunContext]] = {}
    _open_lock: _t.ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, run_id: str, tracker: _t.Optional[RunTracker] = None, folder: str = "") -> None:
        self.run_id = run_id
        self.tracker = tracker
        #: where worker processes write the keys that end (the runner makes and removes it), or ""
        self.folder = folder
        #: live runs by stage DoFn id, then key: (state version, run)
        self.live_runs: dict[str, dict[str, tuple[int, StageRun]]] = {}
        #: failure rows (JSON) of the keys that failed in this process's DoFns, as they fail: what
        #: an interrupted run tells of them (its sink's files are written per finished bundle)
        self.failed_rows: list[str] = []
        self._shared: dict[str, _t.Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, tracker: _t.Optional[RunTracker] = None, run_id: _t.Optional[str] = None,
             folder: str = "") -> RunContext:
        """A new context, registered in this process until ``close``; with ``folder`` (an empty
        directory), ``tracker`` also counts the keys that end in worker processes."""
        ctx = cls(run_id or uuid.uuid4().hex, tracker, folder)
        if folder and tracker is not None:
            tracker.follow(folder)
        with cls._open_lock:
            cls._open[ctx.run_id] = ctx
        return ctx

    @classmethod
    def lookup(cls, run_id: str) -> RunContext:
        """The context of ``run_id`` in this process (made, without tracker, in a process the
        runner is not in)."""
        with cls._open_lock:
            ctx = cls._open.get(run_id)
            if ctx is None:
                ctx = cls._open[run_id] = cls(run_id)
            return ctx

    def runs(self, uid: str) -> dict[str, tuple[int, StageRun]]:
        """The live runs of the stage DoFn ``uid`` (shared by its instances in this process)."""
        with self._lock:
            return self.live_runs.setdefault(uid, {})

    def shared(self, name: str, make: _t.Callable[[], T]) -> T:
        """The object ``name`` of this run in this process, made by ``make`` the first time
        (e.g. a streaming stage's recently ended keys)."""
        with self._lock:
            if name not in self._shared:
                self._shared[name] = make()
            return _t.cast(T, self._shared[name])

    def failed(self, row: str) -> None:
        """A key failed here (``row``: its failure as JSON); at most ``KEEP_FAILED_ROWS`` are kept."""
        with self._lock:
            if len(self.failed_rows) < KEEP_FAILED_ROWS:
                self.failed_rows.append(row)

    def close_live_runs(self) -> int:
        """``destroy()`` every run still live here; how many there were."""
        closed = 0
        with self._lock:
            groups = list(self.live_runs.values())
            self.live_runs.clear()
        for runs in groups:
            for _, run in list(runs.values()):
                if not run.closed:
                    run.close()
                    closed += 1
            runs.clear()
        return closed

    def close(self) -> int:
        """The run is over: destroy its live runs, forget the context (and its folder: the last
        key ends read); how many runs were live."""
        if self.folder and self.tracker is not None:
            self.tracker.unfollow(self.folder)
        with self._open_lock:
            if self._open.get(self.run_id) is self:
                del self._open[self.run_id]
        self._shared.clear()
        return self.close_live_runs()

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def close_all(cls) -> int:
        """``destroy()`` the live runs of every context of this process (an exit hook)."""
        with cls._open_lock:
            contexts = list(cls._open.values())
        return sum(ctx.close_live_runs() for ctx in contexts)


__all__ = ["RunContext", "RunTracker", "Snapshot", "work"]
