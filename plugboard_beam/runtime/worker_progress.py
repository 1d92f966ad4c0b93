"""Progress from worker processes (DirectRunner ``multi_processing``) back to the runner's tracker.

A stage DoFn in a process without the runner's ``RunContext`` cannot call its ``RunTracker``.
The runner gives the run a folder (``RunContext.folder``, a temp dir it creates and removes
after the run) and the stage DoFns its path; in a worker process every key that ends at a stage
appends one JSON line to that process's own file there (``WorkerFeed``: one file per process,
opened once, flushed per line; a line per key end, never per step)::

    {"key": "k1", "stage": "<stage DoFn id>", "steps": {"tick": 40, "check": 40}, "failed": false}

The runner's tracker reads the new lines of every file when the display takes a snapshot
(``FolderReader``: an offset per file; a partial last line waits for the next read).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import typing as _t
import uuid

#: the files' suffix in the run's folder
SUFFIX = ".jsonl"
#: bytes a line may have (a longer one is reported and skipped, not parsed)
MAX_LINE = 1 << 20

log = logging.getLogger("plugboard_beam")


class KeyEnd(_t.NamedTuple):
    """A key that has ended at a stage in a worker process."""

    key: str
    stage: str
    steps: dict[str, int]
    failed: bool


class WorkerFeed:
    """This process's file of ended keys in the run's ``folder`` (thread-safe)."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, f"worker-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}")
        self._file = open(self.path, "a", encoding="utf-8")  # open for the run (closed at exit)
        self._lock = threading.Lock()

    def ended(self, stage: str, key: str, steps: _t.Mapping[str, int], failed: bool) -> None:
        """``key`` has ended at ``stage``: one line, flushed (the runner reads it while we run)."""
        line = json.dumps({"key": key, "stage": stage, "steps": dict(steps), "failed": failed},
                          separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def parse(line: bytes) -> KeyEnd:
    """One line of a worker's file (``ValueError`` if it is not one)."""
    if len(line) > MAX_LINE:
        raise ValueError(f"line of {len(line)} bytes (at most {MAX_LINE})")
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
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
                    out.append(parse(line))
                except ValueError as err:
                    log.warning("worker progress %s: line skipped (%s)", name, err)
        return out


__all__ = ["FolderReader", "KeyEnd", "WorkerFeed", "parse"]
