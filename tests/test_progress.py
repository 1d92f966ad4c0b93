"""Progress while a run runs and the summary at its end, on every runner; the run context that
keeps two pipelines in one process apart (issue 17 item 3, issue 19 item 4)."""

from __future__ import annotations

import io
import os
from pathlib import Path
import re
import select
import subprocess
import sys
import threading
import time
import typing as _t

import pytest

from conftest import cli_command
from plugboard_beam.cli.progress import Progress, time_left
from plugboard_beam.cli.summary import destinations, summary
from plugboard_beam.runtime.context import RunContext, RunTracker, Snapshot, work

PARTS = '''
import time
from plugboard_beam.component import Component, IOController as IO


class Tick(Component):
    """Sends 1..n, sleeping ``delay`` seconds per step."""
    io = IO(outputs=["x"])

    def __init__(self, n, delay=0.0, **kw):
        super().__init__(**kw)
        self._n, self._i, self._delay = n, 0, delay

    async def step(self):
        if self._i >= self._n:
            await self.io.close()
            return
        time.sleep(self._delay)
        self._i += 1
        self.x = self._i


class Check(Component):
    """Passes x on as y; fails at ``fail_at``."""
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, fail_at=-1, **kw):
        super().__init__(**kw)
        self._fail_at = fail_at

    async def step(self):
        if self.x == self._fail_at:
            raise ValueError(f"tripped at {self.x}")
        self.y = self.x
'''

MODEL = '''
plugboard:
  process:
    args:
      components:
      - {type: parts.Tick, args: {name: tick, n: 40, delay: 0.01}}
      - {type: parts.Check, args: {name: check}}
      - type: plugboard_beam.library.FileWriter
        args: {name: save, path: "out/levels-{key}.csv", field_names: [y]}
      connectors:
      - {source: tick.x, target: check.x}
      - {source: check.y, target: save.y}
'''

SCENARIOS = "key,check.fail_at\nk1,-1\nk2,7\nk3,-1\nk4,-1\n"

LINE = re.compile(r"^progress: keys (\d+)/(\d+|\?), (\d+) failed, (\d+) component-steps, (\d+) steps/s, "
                  r"elapsed [^,]+(, left .+)?$")


def write_model(folder: Path) -> Path:
    (folder / "parts.py").write_text(PARTS)
    (folder / "model.yaml").write_text(MODEL)
    (folder / "scenarios.csv").write_text(SCENARIOS)
    return folder / "model.yaml"


# ---------------------------------------------------------------------------------- units
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_measured_over_the_recent_window_not_since_the_start() -> None:
    clock = Clock()
    tracker = RunTracker(window=5.0, clock=clock)
    tracker.expect(4)
    for i in range(20):  # 20 s at 1000 steps/s
        clock.now += 1
        tracker.ended("s", f"a{i}", {"a": 1000}, failed=False)
        tracker.snapshot()
    for i in range(10):  # then 10 s at 10 steps/s: the rate follows within the window
        clock.now += 1
        tracker.ended("s", f"b{i}", {"a": 10}, failed=False)
        snap = tracker.snapshot()
    assert snap.rate == pytest.approx(10.0)
    assert snap.steps == 20 * 1000 + 10 * 10 and snap.elapsed == pytest.approx(30.0)


def test_the_first_snapshot_has_the_rate_since_the_start() -> None:
    """A display that draws its first line late (a log file's line every few seconds) showed
    "0 steps/s" there: it had no earlier sample."""
    clock = Clock()
    tracker = RunTracker(window=5.0, clock=clock)
    clock.now += 11
    tracker.ended("s", "a", {"a": 1100}, failed=False)
    assert tracker.snapshot().rate == pytest.approx(100.0)
    tracker.restart()
    clock.now += 2
    tracker.ended("s", "b", {"a": 60}, failed=False)
    assert tracker.snapshot().rate == pytest.approx(30.0)  # since the restart


def test_keys_are_done_when_every_stage_has_ended_them() -> None:
    tracker = RunTracker()
    tracker.expect(2)
    tracker.stages = 2
    tracker.ended("s1", "a", {"x": 3}, failed=True)
    tracker.ended("s1", "b", {"x": 3}, failed=False)
    assert tracker.snapshot().keys_done == 0
    tracker.ended("s2", "a", {"y": 0}, failed=False)
    tracker.ended("s2", "b", {"y": 3}, failed=False)
    snap = tracker.snapshot()
    assert (snap.keys_done, snap.keys_failed, snap.steps) == (2, 1, 9)


def test_tracker_reads_worker_key_ends_from_the_run_folder(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Key ends written by worker processes' feeds are counted at each snapshot; a partial last
    line waits for its end; a bad line is reported, not counted; ``close`` reads the last ones."""
    from plugboard_beam.runtime.worker_progress import WorkerFeed

    tracker = RunTracker()
    tracker.expect(3)
    ctx = RunContext.open(tracker, folder=str(tmp_path))
    try:
        a, b = WorkerFeed(str(tmp_path)), WorkerFeed(str(tmp_path))
        assert a.path != b.path
        a.ended("s", "k1", {"x": 5}, False)
        b.ended("s", "k2", {"x": 2}, True)
        snap = tracker.snapshot()
        assert (snap.keys_done, snap.keys_failed, snap.steps) == (2, 1, 7)
        assert tracker.snapshot().keys_done == 2  # read once, not again
        with open(a.path, "a") as f:  # a line being written
            f.write('{"key":"k3","stage":"s","steps":{"x":')
        assert tracker.snapshot().keys_done == 2
        with open(a.path, "a") as f:
            f.write('4},"failed":false}\n["not", "a key end"]\n')
        with caplog.at_level("WARNING", logger="plugboard_beam"):
            snap = tracker.snapshot()
        assert (snap.keys_done, snap.steps) == (3, 11)
        assert "line skipped" in caplog.text
        b.ended("s", "k4", {"x": 1}, False)  # written just before the run ends
        a.close()
        b.close()
    finally:
        ctx.close()
    assert tracker.snapshot().keys_done == 4 and tracker.done_steps == {"x": 12}
    assert not tracker._folders  # the runner may remove the folder now


def test_a_worker_process_has_one_feed_file_per_run(tmp_path: Path) -> None:
    """The runner's process finds its context with the tracker (no file); a process without it
    (a worker) gets a context without tracker, whose feed is made once and shared."""
    from plugboard_beam.runtime.worker_progress import WorkerFeed

    tracker = RunTracker()
    ctx = RunContext.open(tracker, folder=str(tmp_path))
    try:
        assert RunContext.lookup(ctx.run_id).tracker is tracker
    finally:
        ctx.close()
    worker = RunContext.lookup(ctx.run_id)  # what a worker process finds: no tracker
    try:
        assert worker.tracker is None
        feed = worker.shared("progress-feed", lambda: WorkerFeed(str(tmp_path)))
        assert worker.shared("progress-feed", lambda: WorkerFeed(str(tmp_path))) is feed  # once per process
        feed.close()
    finally:
        worker.close()
    assert len(list(tmp_path.glob("worker-*.jsonl"))) == 1


def test_worker_steps_of_running_keys_count_before_the_keys_end(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A worker's feed writes its steps so far (ended keys' + running engines'): the tracker
    counts the running ones before any key ends, never twice once a key ends; a bad live line
    is reported, not counted."""
    from plugboard_beam.runtime.worker_progress import WorkerFeed

    running = {"n": 0}
    tracker = RunTracker()
    ctx = RunContext.open(tracker, folder=str(tmp_path))
    try:
        feed = WorkerFeed(str(tmp_path), live=lambda: running["n"], every=3600)  # sampled by hand here
        running["n"] = 120  # two keys running, no key ended yet
        feed.sample()
        snap = tracker.snapshot()
        assert (snap.keys_done, snap.steps) == (0, 120)
        feed.ended("s", "k1", {"x": 50, "y": 50}, False)  # k1 ends with 100 steps, ...
        running["n"] = 40  # ... k2 has 40 so far
        assert tracker.snapshot().steps <= 140  # the key end read before the next sample: not twice
        feed.sample()
        snap = tracker.snapshot()
        assert (snap.keys_done, snap.steps) == (1, 140)
        feed.sample()  # unchanged: no line
        assert sum(1 for line in open(feed.path) if '"live"' in line) == 2
        with open(feed.path, "a") as f:
            f.write('{"live": -5}\n{"live": "9"}\n')
        with caplog.at_level("WARNING", logger="plugboard_beam"):
            assert tracker.snapshot().steps == 140
        assert caplog.text.count("line skipped") == 2
        feed.ended("s", "k2", {"x": 45, "y": 45}, False)
        running["n"] = 0
        feed.sample()
        feed.close()
    finally:
        ctx.close()
    snap = tracker.snapshot()
    assert (snap.keys_done, snap.steps) == (2, 190) and tracker.done_steps == {"x": 95, "y": 95}


def test_a_worker_feed_samples_on_its_own_thread(tmp_path: Path) -> None:
    from plugboard_beam.runtime.worker_progress import WorkerFeed

    tracker = RunTracker()
    ctx = RunContext.open(tracker, folder=str(tmp_path))
    try:
        feed = WorkerFeed(str(tmp_path), live=lambda: 7, every=0.05)
        deadline = time.monotonic() + 10
        while tracker.snapshot().steps != 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tracker.snapshot().steps == 7
        feed.close()
    finally:
        ctx.close()


def test_a_slow_worker_sample_backs_off(tmp_path: Path) -> None:
    """Sampling many live runs takes time from the worker: the next sample waits at least
    ``SAMPLE_SHARE`` times as long as the last took."""
    from plugboard_beam.runtime.worker_progress import SAMPLE_SHARE, WorkerFeed

    calls: list[float] = []

    def slow() -> int:
        calls.append(time.monotonic())
        time.sleep(0.02)
        return len(calls)

    feed = WorkerFeed(str(tmp_path), live=slow, every=0.01)
    time.sleep(0.6)
    feed.close()
    assert 1 <= len(calls) <= 2 and SAMPLE_SHARE * 0.02 >= 0.6, calls


def test_time_left_comes_from_the_keys_done() -> None:
    snap = Snapshot(keys_done=2, keys_failed=0, keys_total=10, steps=0, rate=0.0, elapsed=4.0, unavailable="")
    assert time_left(snap) == pytest.approx(16.0)
    assert time_left(snap._replace(keys_total=None)) is None


def test_live_engines_are_read_when_the_display_draws(tmp_path: Path) -> None:
    from plugboard_beam.runtime.engine import Engine
    from plugboard_beam.runtime.failure import construct
    from plugboard_beam.spec import load_model

    # a module name of its own: other tests of this session import other modules named hello_world
    (tmp_path / "progress_live_parts.py").write_text(PARTS)
    (tmp_path / "model.yaml").write_text(
        "plugboard:\n  process:\n    args:\n      components:\n"
        "        - {type: progress_live_parts.Tick, args: {name: tick, n: 5}}\n"
        "        - {type: progress_live_parts.Check, args: {name: check}}\n"
        "      connectors:\n        - {source: tick.x, target: check.x}\n")
    model = load_model(tmp_path / "model.yaml")
    engine = Engine(model.graph, construct(model, "k"), key="k")
    tracker = RunTracker()
    tracker.live("local", "k", engine)
    engine.init()
    engine.run(max_rounds=3)
    assert tracker.snapshot().steps == sum(work(engine).values()) > 0


EVENT_PARTS = '''
import typing as _t
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.events import Event


class Alarm(Event):
    type: _t.ClassVar[str] = "alarm"
    data: dict[str, int]


class Level(Component):
    io = IO(outputs=["level"], output_events=[Alarm])

    def __init__(self, n=6, **kw):
        super().__init__(**kw)
        self.n, self.i = n, 0

    def step(self):
        if self.i == self.n:
            self.io.close_sync()
            return
        self.level = self.i
        if self.i % 2 == 1:
            self.io.queue_event(Alarm(source=self.name, data={"level": self.i}))
        self.i += 1


class Pager(Component):
    io = IO(input_events=[Alarm])

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pages = []

    @Alarm.handler
    def page(self, event):
        self.pages.append(event.data["level"])
'''


def test_event_only_components_count_their_ticks(tmp_path: Path) -> None:
    """A component that only handles events never has step() called: counted by its ticks."""
    from plugboard_beam.runtime.engine import Engine
    from plugboard_beam.runtime.failure import construct
    from plugboard_beam.runtime.session import run_to_end
    from plugboard_beam.spec import load_model

    (tmp_path / "evparts.py").write_text(EVENT_PARTS)
    (tmp_path / "model.yaml").write_text('''
plugboard:
  process:
    args:
      components:
      - {type: evparts.Level, args: {name: level, n: 6}}
      - {type: evparts.Pager, args: {name: pager}}
''')
    sys.path.insert(0, str(tmp_path))
    try:
        model = load_model(tmp_path / "model.yaml")
        engine = Engine(model.graph, construct(model, "k"), key="k")
        run_to_end(engine)
    finally:
        sys.path.remove(str(tmp_path))
    pager = engine.runners["pager"]
    assert pager.comp.pages == [1, 3, 5]
    assert engine.steps()["pager"] == 0  # what progress showed before
    assert work(engine) == {"level": engine.steps()["level"], "pager": pager.ticks} and pager.ticks > 0


def test_summary_lists_keys_failures_steps_and_where_outputs_went(tmp_path: Path) -> None:
    from plugboard_beam.runners.base import RunReport
    from plugboard_beam.runtime.failure import Failure
    from plugboard_beam.spec import load_model

    (tmp_path / "model.yaml").write_text('''
plugboard:
  process:
    args:
      components:
      - {type: plugboard_beam.library.records.ListSource, args: {name: src, fields: [y], rows: [[1]]}}
      - type: plugboard_beam.library.FileWriter
        args: {name: save, path: "out/levels-{key}.csv", field_names: [y]}
      - type: plugboard_beam.library.SQLWriter
        args: {name: db, connection_string: "postgresql://me:s3cret@db.example/runs", table: results,
               field_names: [y]}
      - type: plugboard_beam.library.PubSubWriter
        args: {name: pub, topic: levels-out, fields: [y]}
      connectors:
      - {source: src.y, target: save.y}
      - {source: src.y, target: db.y}
      - {source: src.y, target: pub.y}
''')
    model = load_model(tmp_path / "model.yaml")
    outputs = destinations(model, record="runs/rec")
    assert "file: out/levels-*.csv (FileWriter 'save')" in outputs
    assert any(o.startswith("table: results at postgresql://me:***@db.example/runs") for o in outputs)
    assert "s3cret" not in " ".join(outputs)
    assert "recording: runs/rec (Parquet)" in outputs
    assert "topic: levels-out (PubSubWriter 'pub')" in outputs
    assert destinations(model, streaming=True)[0] == "file: out/levels-*-*.csv (one file set per window) " \
                                                     "(FileWriter 'save')"
    fails = [Failure(key=f"k{i}", component="save", step=i, phase="step", error_type="ValueError",
                     reason="no") for i in range(5)]
    text = summary(RunReport(keys=10, steps={"src": 3, "save": 3}, failures=list(fails)), 2.5, outputs)
    lines = text.splitlines()
    assert lines[0] == "summary: 10 keys: 5 ok, 5 failed; elapsed 2.5 s"
    assert "  steps: src=3 save=3 (6 component-steps)" in lines
    assert "  failures: 5" in lines and "    ... and 2 more" in lines
    assert sum("component 'save' (key 'k" in line for line in lines) == 3


def test_plain_lines_off_a_terminal_and_suspend() -> None:
    tracker = RunTracker()
    tracker.expect(3)
    out = io.StringIO()
    display = Progress.of_run(tracker, None, every=0.1, stream=out)
    assert not display.terminal
    with display:
        tracker.ended("local", "a", {"x": 5}, failed=False)
        time.sleep(0.35)
        with display.suspend():
            out.write("a log line\n")
    lines = out.getvalue().splitlines()
    assert "a log line" in lines
    progress = [m for m in map(LINE.match, lines) if m]
    assert len(progress) >= 2 and progress[-1].group(1, 2, 4) == ("1", "3", "5")
    quiet = io.StringIO()
    with Progress.of_run(tracker, False, every=0.1, stream=quiet):
        time.sleep(0.25)
    assert quiet.getvalue() == ""


# ------------------------------------------------------------------ the command line, piped
def run_cli(folder: Path, *args: str, env: _t.Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(folder), **(env or {})}
    return subprocess.run([*cli_command(), "process", "run", "model.yaml", "--scenarios", "scenarios.csv",
                           "--progress-every", "0.2", *args], cwd=folder, capture_output=True, text=True,
                          timeout=300, env=env)


def check_piped(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 1, proc.stderr  # k2 fails
    lines = proc.stderr.splitlines()
    progress = [m for m in map(LINE.match, lines) if m]
    assert progress, proc.stderr
    done = [int(m.group(1)) for m in progress]
    assert done == sorted(done) and all(m.group(2) in ("4", "?") for m in progress)
    start = lines.index(next(line for line in lines if line.startswith("summary:")))
    assert lines[start].startswith("summary: 4 keys: 3 ok, 1 failed; elapsed ")
    steps = lines[start + 1]
    assert re.fullmatch(r"  steps: tick=\d+ check=\d+ save=\d+ \(\d+ component-steps\)", steps), steps
    assert "check=126" in steps  # 40 + 40 + 40 + 6 (k2 fails in its 7th step)
    assert lines[start + 2] == "  failures: 1 (each one below)"
    at = lines.index("  outputs:", start)
    assert lines[at + 1] == "    file: out/levels-*.csv (FileWriter 'save')"
    # the failure is printed once, in the error that ends the output, with where in the user's code
    error = lines.index(next(line for line in lines if line.startswith("error: ")))
    assert error > at and "1 of 4" in lines[error]
    told = "\n".join(lines[error:])
    assert "'k2'" in told and "tripped at 7" in told and "parts.py" in told, told
    assert sum("tripped at 7" in line for line in lines if not line.startswith("{")) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_progress_and_summary_piped_local(tmp_path: Path) -> None:
    write_model(tmp_path)
    check_piped(run_cli(tmp_path, "--runner", "local"))
    assert len(list((tmp_path / "out").glob("levels-*.csv"))) == 4


@pytest.mark.slow
def test_progress_and_summary_piped_direct(tmp_path: Path) -> None:
    write_model(tmp_path)
    check_piped(run_cli(tmp_path, "--runner", "direct"))


@pytest.mark.slow
def test_progress_and_summary_piped_component_stages(tmp_path: Path) -> None:
    write_model(tmp_path)
    check_piped(run_cli(tmp_path, "--runner", "direct", "--stages", "component"))


@pytest.mark.slow
def test_multi_processing_workers_count_progress_and_summary(tmp_path: Path) -> None:
    """Workers in other processes count the keys that end through the run's folder: the
    progress lines count keys (never "not counted"), the summary is complete, the folder is gone."""
    write_model(tmp_path)
    (tmp_path / "tmp").mkdir()
    proc = run_cli(tmp_path, "--direct_num_workers", "2", "--direct_running_mode", "multi_processing",
                   env={"TMPDIR": str(tmp_path / "tmp")})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert not any("not counted" in line for line in lines), proc.stderr
    done = [int(m.group(1)) for m in map(LINE.match, lines) if m]
    assert done and done == sorted(done), proc.stderr
    start = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    assert lines[start].startswith("summary: 4 keys: 3 ok, 1 failed; elapsed ")
    assert "check=126" in lines[start + 1]
    assert not list((tmp_path / "tmp").glob("plugboard-beam-progress-*"))


@pytest.mark.slow
def test_multi_processing_progress_is_live(tmp_path: Path) -> None:
    """Keys done show while a multi_processing run runs (not only at its end), and so do the
    steps of the keys still running (before any key has ended: the workers write their steps so
    far); the run's folder of worker files exists while it runs and is removed after."""
    write_model(tmp_path)
    keys = 4
    (tmp_path / "scenarios.csv").write_text("key,check.fail_at\n" + "".join(f"k{i},-1\n" for i in range(keys)))
    (tmp_path / "model.yaml").write_text(MODEL.replace("n: 40, delay: 0.01", "n: 60, delay: 0.03"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([*cli_command(), "process", "run", "model.yaml", "--scenarios", "scenarios.csv",
                             "--progress-every", "0.5", "--direct_num_workers", "2",
                             "--direct_running_mode", "multi_processing"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    live: list[tuple[int, int, int]] = []  # keys done, total, steps of lines before the end
    running: list[int] = []  # steps of lines before any key has ended
    folders_seen = False
    try:
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            m = LINE.match(lines[-1])
            if m and m.group(1) == "0" and int(m.group(4)) > 0:
                running.append(int(m.group(4)))
            if m and m.group(2) != "?" and 0 < int(m.group(1)) < int(m.group(2)):
                live.append((int(m.group(1)), int(m.group(2)), int(m.group(4))))
                folders_seen = folders_seen or bool(list(tmp.glob("plugboard-beam-progress-*/worker-*.jsonl")))
        assert proc.wait(timeout=300) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "\n".join(lines)
    assert live, text
    assert all(total == keys and steps > 0 for _, total, steps in live), text
    assert running and running == sorted(running) and max(running) < keys * 3 * 62, text
    assert folders_seen, text
    start = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    assert lines[start].startswith(f"summary: {keys} keys: {keys} ok, 0 failed; elapsed "), text
    assert f"check={keys * 60}" in lines[start + 1], text
    assert not list(tmp.glob("plugboard-beam-progress-*"))


@pytest.mark.slow
def test_a_stopped_run_summarises_the_keys_that_had_ended(tmp_path: Path) -> None:
    import signal

    write_model(tmp_path)
    (tmp_path / "model.yaml").write_text(MODEL.replace("delay: 0.01", "delay: 0.05"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.Popen([*cli_command(), "process", "run", "model.yaml", "--scenarios", "scenarios.csv",
                             "--runner", "local", "--progress-every", "0.2", "--log-format", "text"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        m = LINE.match(lines[-1])
        if m and int(m.group(1)) >= 2:  # k2 has failed
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=60)[1]
    lines += rest.splitlines()
    assert proc.returncode == 130, "\n".join(lines)
    stopped = next(line for line in lines if line.startswith("summary (stopped):"))
    done = int(stopped.split(": ")[1].split()[0])
    assert 2 <= done < 4 and stopped.endswith(" s") and "had ended" in stopped
    # no error lists k2's failure: its record, held back on the text console, is shown (once)
    assert sum("key failed" in line and "key=k2" in line for line in lines) == 1, "\n".join(lines)
    assert any(line.startswith("  steps of the ended keys: tick=") for line in lines)
    assert "    file: out/levels-*.csv (FileWriter 'save')" in lines


@pytest.mark.slow
def test_no_progress_still_prints_the_summary(tmp_path: Path) -> None:
    write_model(tmp_path)
    proc = run_cli(tmp_path, "--runner", "local", "--no-progress")
    assert not any(line.startswith("progress:") for line in proc.stderr.splitlines())
    assert "summary: 4 keys: 3 ok, 1 failed" in proc.stderr


@pytest.mark.slow
def test_progress_bar_under_a_pty(tmp_path: Path) -> None:
    """On a terminal, a rich bar redrawn in place with keys N/M and a rate."""
    write_model(tmp_path)
    main, child = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([*cli_command(), "process", "run", "model.yaml", "--scenarios", "scenarios.csv",
                             "--runner", "local"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=child, env=env)
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(main)
    text = b"".join(chunks).decode(errors="replace")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert re.search(r"keys [0-4]/4, [01] failed", plain), plain[-2000:]
    assert re.search(r"[\d,]+ steps/s", plain)
    assert "\x1b[" in text  # drawn in place (cursor control), not plain lines
    assert not re.search(r"^progress: keys", plain, flags=re.M)
    assert "summary: 4 keys: 3 ok, 1 failed" in plain


# ------------------------------------------------------------ two pipelines in one process
@pytest.mark.slow
def test_two_pipelines_in_one_process_see_only_their_own_progress(tmp_path: Path) -> None:
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.runners.direct import BeamRunner
    from plugboard_beam.spec import load_model
    from plugboard_beam.spec.scenarios import Scenario

    write_model(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        model = load_model(tmp_path / "model.yaml")
        runs = {"a": (3, 30), "b": (2, 50)}  # prefix: keys, steps of tick
        trackers = {p: RunTracker() for p in runs}
        reports: dict[str, _t.Any] = {}
        seen: list[tuple[str, set[str]]] = []

        def run(prefix: str) -> None:
            keys, n = runs[prefix]
            scenarios = [Scenario(f"{prefix}{i}", {"tick.n": n, "tick.delay": 0.01}) for i in range(keys)]
            options = RunOptions(scenarios=scenarios, tracker=trackers[prefix])
            reports[prefix] = BeamRunner().run(model, options)

        before = set(RunContext._open)  # (contexts other tests of this process may have left)
        threads = [threading.Thread(target=run, args=(p,)) for p in runs]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for ctx in [c for c in list(RunContext._open.values()) if c.run_id not in before]:
                keys = {k for runs_ in list(ctx.live_runs.values()) for k in list(runs_)}
                if keys:
                    seen.append((ctx.run_id, keys))
            time.sleep(0.02)
        for t in threads:
            t.join()
    finally:
        sys.path.remove(str(tmp_path))
    for prefix, (keys, n) in runs.items():
        snap = trackers[prefix].snapshot()
        assert (snap.keys_done, snap.keys_failed, snap.keys_total) == (keys, 0, keys)
        assert snap.steps == keys * (3 * n + 1) == sum(reports[prefix].steps.values())
    # every context held the live runs of one pipeline only
    assert seen and all(len({k[0] for k in keys}) == 1 for _, keys in seen)
    assert len({run_id for run_id, _ in seen}) == 2
    assert not set(RunContext._open) - before  # both closed


# ------------------------------------------------------------------------------ streaming
STREAM_MODEL = '''
plugboard:
  process:
    args:
      components:
      - {type: parts.Tick, args: {name: tick, n: 30, delay: 0.02}}
      - {type: parts.Check, args: {name: check}}
      connectors:
      - {source: tick.x, target: check.x}
'''


@pytest.mark.slow
def test_progress_and_summary_of_a_streaming_run(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator

    write_model(tmp_path)
    (tmp_path / "model.yaml").write_text(STREAM_MODEL)
    (tmp_path / "scenarios.csv").write_text("key,check.fail_at\nk1,-1\nk2,7\nk3,-1\n")
    with Emulator(project="plugboard-beam-progress") as emu:
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "PUBSUB_EMULATOR_HOST": emu.host,
               "PUBSUB_PROJECT_ID": "plugboard-beam-progress"}
        proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--streaming", "--scenarios",
                               "scenarios.csv", "--progress-every", "0.3", "--log-format", "text"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    # the failure: told as it comes (a streaming run may go on for long) and by the error; the
    # runtime's "key failed" record does not repeat it on the text console
    assert "key failed" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("ValueError: tripped at 7") == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    progress = [m for m in map(LINE.match, lines) if m]
    # (the total is "?" until the runner has its keys; the display starts with the command)
    assert progress and all(m.group(2) in ("3", "?") for m in progress), proc.stderr[-3000:]
    assert progress[-1].group(1, 2, 3) == ("3", "3", "1")
    summary_at = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    assert lines[summary_at].startswith("summary: 3 keys: 2 ok, 1 failed; elapsed ")
    assert lines[summary_at + 1] == "  steps: tick=93 check=66 (159 component-steps)"  # 30 + 30 + 6; 31 x 3
    assert any("tripped at 7" in line for line in lines[summary_at:])


def test_suspend_and_console_keep_the_bar_intact_on_a_terminal() -> None:
    """The interface for log lines (l17a): ``console.print`` above the bar, ``suspend()`` around
    any other write; the bar comes back after each."""
    main, child = os.openpty()
    stream = os.fdopen(child, "w")
    tracker = RunTracker()
    tracker.expect(2)
    display = Progress.of_run(tracker, True, stream=stream)
    assert display.terminal
    with display:
        tracker.ended("s", "a", {"x": 10}, failed=False)
        time.sleep(0.4)
        with display.suspend():
            stream.write("a plain log line\n")
            stream.flush()
        display.console.print("a console line")
        time.sleep(0.4)
    stream.flush()
    os.set_blocking(main, False)
    text = os.read(main, 1 << 20).decode(errors="replace")
    stream.close()
    os.close(main)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    after = plain.split("a plain log line", 1)[1]
    assert "keys 1/2, 0 failed" in plain.split("a plain log line", 1)[0]
    assert "a console line" in after and "keys 1/2, 0 failed" in after.split("a console line", 1)[1]
