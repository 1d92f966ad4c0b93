"""Logging (issue 17 item 2): ``self._logger`` as in plugboard 0.9.0 (structlog), bound to
component, key, step and job id; JSON lines when piped, text on a terminal; levels; Beam workers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from pathlib import Path
import pickle
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
import typing as _t

import pytest

from conftest import cli_command
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO

PARTS = '''
import warnings

from plugboard_beam.component import Component, IOController as IO


class Src(Component):
    io = IO(outputs=["out"])

    def __init__(self, iters: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._iters = iters

    async def init(self) -> None:
        self._n = 0
        self._logger.debug("init done", iters=self._iters)
        warnings.warn("a warning from init")

    async def step(self) -> None:
        if self._n >= self._iters:
            await self.io.close()
            return
        self._logger.info("stepped", value=self._n * 10)
        self.out = self._n
        self._n += 1


class Sink(Component):
    io = IO(inputs=["inp"])

    def __init__(self, fail_at: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        self._fail_at = fail_at

    async def step(self) -> None:
        if self.inp == 2:
            self._logger.warning("seen two", got=self.inp)
        if self.inp == self._fail_at:
            raise ValueError("sink tripped")
'''

MODEL = '''
plugboard:
  process:
    args:
      components:
      - type: parts.Src
        args: {name: src, iters: 4}
      - type: parts.Sink
        args: {name: sink}
      connectors:
      - {source: src.out, target: sink.inp}
'''

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    (tmp_path / "parts.py").write_text(PARTS)
    (tmp_path / "model.yaml").write_text(MODEL)
    (tmp_path / "sc.yaml").write_text("- {key: k1}\n- {key: k2, sink.fail_at: 3}\n")
    return tmp_path


def run_piped(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", "model.yaml", *args], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def records(stderr: str) -> list[dict[str, _t.Any]]:
    """Every JSON line of ``stderr`` (the last lines are the CLI's own error message, if any)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def check_component_records(recs: list[dict[str, _t.Any]], keys: tuple[str, ...] = ("k1", "k2")) -> None:
    stepped = [r for r in recs if r["event"] == "stepped"]
    for key in keys:
        mine = [r for r in stepped if r["key"] == key]
        assert [r["step"] for r in mine] == [0, 1, 2, 3], recs
        assert [r["value"] for r in mine] == [0, 10, 20, 30]
        assert all(r["component"] == "src" and r["cls"] == "Src" and r["level"] == "info"
                   and r["logger"] == "plugboard_beam.component" and r["timestamp"] for r in mine)
        seen = [r for r in recs if r["event"] == "seen two" and r["key"] == key]
        assert len(seen) == 1 and seen[0]["step"] == 2 and seen[0]["got"] == 2 and seen[0]["level"] == "warning"


def test_piped_json_lines_local(model: Path) -> None:
    proc = run_piped(model, "--runner", "local", "--scenarios", "sc.yaml", "-v")
    assert proc.returncode == 1, proc.stderr  # key k2 fails at step 3
    recs = records(proc.stderr)
    check_component_records(recs)
    failed = [r for r in recs if r["event"] == "key failed"]
    assert len(failed) == 1 and failed[0]["level"] == "error", recs
    f = failed[0]
    assert (f["component"], f["key"], f["step"], f["phase"]) == ("sink", "k2", 3, "step")
    assert f["reason"] == "ValueError: sink tripped" and "parts.py" in f["at"]
    started = [r for r in recs if r["event"] == "run started"]
    ended = [r for r in recs if r["event"] == "run ended"]
    assert len(started) == 1 and started[0]["runner"] == "local" and started[0]["keys"] == 2
    assert len(ended) == 1 and ended[0]["failed_keys"] == 1 and ended[0]["keys"] == 2
    warned = [r for r in recs if r["logger"] == "py.warnings"]
    assert len(warned) == 1 and all("a warning from init" in r["event"] and r["level"] == "warning" for r in warned)
    # the CLI's own message stays the last lines, after the records; it tells the failure once
    assert proc.stderr.splitlines()[-1].startswith("(destroy() was called")
    human = [ln for ln in proc.stderr.splitlines() if not ln.startswith("{")]
    assert sum("ValueError: sink tripped" in ln for ln in human) == 1, proc.stderr


def test_log_level_filters(model: Path) -> None:
    proc = run_piped(model, "--runner", "local")  # default: warning
    assert proc.returncode == 0, proc.stderr
    events = [r["event"] for r in records(proc.stderr)]
    assert "stepped" not in events and "run started" not in events
    assert events.count("seen two") == 1
    proc = run_piped(model, "--runner", "local", "-q")  # error
    assert proc.returncode == 0 and records(proc.stderr) == [], proc.stderr
    proc = run_piped(model, "--runner", "local", "--log-level", "debug")
    recs = records(proc.stderr)
    init = [r for r in recs if r["event"] == "init done"]
    assert len(init) == 1 and init[0]["phase"] == "init" and init[0]["iters"] == 4 and init[0]["level"] == "debug"
    proc = run_piped(model, "--runner", "local", "--log-level", "error", "-vv")  # error -> info
    events = [r["event"] for r in records(proc.stderr)]
    assert "stepped" in events and "init done" not in events
    proc = run_piped(model, "--runner", "local", "--log-format", "text", "-v")
    assert not records(proc.stderr) and "stepped" in proc.stderr and "\x1b[" not in proc.stderr
    proc = run_piped(model, "--runner", "local", "--log-level", "loud")
    assert proc.returncode == 2 and "'loud' is not one of" in proc.stderr and "Traceback" not in proc.stderr


def run_in_pty(folder: Path, *args: str, timeout: float = 600) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200"}
    proc = subprocess.Popen([*cli_command(), "process", "run", "model.yaml", *args], cwd=folder,
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace")


def check_text_lines(out: str, keys: tuple[str, ...] = ("k1",)) -> None:
    assert "\x1b[" in out  # colours on a terminal
    plain = ANSI.sub("", out)
    assert '{"event"' not in plain, plain
    for key in keys:
        for step in range(4):
            line = next((ln for ln in plain.splitlines() if "stepped" in ln and f"key={key}" in ln
                         and f"step={step} " in ln + " "), None)
            assert line is not None, (key, step, plain)
            assert "component=src" in line and f"value={step * 10}" in line and "[info" in line


def test_terminal_text_local(model: Path) -> None:
    code, out = run_in_pty(model, "--runner", "local", "--scenarios", "sc.yaml", "-v")
    assert code == 1, out
    check_text_lines(out, ("k1", "k2"))
    plain = ANSI.sub("", out)
    # the failure is told once: the summary counts it, the error names it (and its line); the
    # runtime's "key failed" record is not repeated on the human console (it is in JSON lines)
    assert "key failed" not in plain, plain
    assert plain.count("ValueError: sink tripped") == 1, plain
    assert "component 'sink' (key 'k2') failed in step 3" in plain and "parts.py:" in plain
    assert "failures: 1 (each one below)" in plain


def test_a_failure_is_told_once_in_piped_text(model: Path) -> None:
    """Piped with ``--log-format text`` as on a terminal: the error tells the failure, the
    "key failed" record does not repeat it (JSON lines keep it: ``test_piped_json_lines_local``)."""
    proc = run_piped(model, "--runner", "local", "--scenarios", "sc.yaml", "--log-format", "text")
    assert proc.returncode == 1 and proc.stderr.count("ValueError: sink tripped") == 1, proc.stderr
    assert "key failed" not in proc.stderr and "seen two" in proc.stderr  # other records are shown


def test_held_failure_records_are_shown_when_no_error_lists_them() -> None:
    """On the text console of ``process run`` a key's failure record is held back; shown if the
    run ends without its error listing them (Ctrl-C), forgotten if it does; JSON gets it at once."""
    from plugboard_beam.logs import LOGGER, LogConfig, configure, release_held
    from plugboard_beam.runtime.failure import Failure, log_failure

    failure = Failure(key="k9", component="heater", step=4, phase="step", error_type="ValueError",
                      reason="tripped")
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger(LOGGER).level)
    try:
        for fmt in ("text", "json"):
            for show in (True, False):
                out = io.StringIO()
                configure(LogConfig(format=fmt, failures_at_end=True), stream=out)
                log_failure(failure)
                logging.getLogger(LOGGER).warning("a warning is not held")
                held_back = out.getvalue()
                release_held(show=show)
                assert "a warning is not held" in held_back
                if fmt == "json":
                    assert '"event":"key failed"' in held_back
                else:
                    assert "key failed" not in held_back
                    assert ("key failed" in out.getvalue() and "heater" in out.getvalue()) is show
                    release_held()
                    assert out.getvalue().count("key failed") == int(show)  # shown once at most
        out = io.StringIO()
        configure(LogConfig(format="text"), stream=out)  # other commands: shown as it comes
        log_failure(failure)
        assert "key failed" in out.getvalue()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in before[0]:
            root.addHandler(h)
        root.setLevel(before[1])
        logging.getLogger(LOGGER).setLevel(before[2])


@pytest.mark.slow
@pytest.mark.parametrize("beam_args", [[], ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]],
                         ids=["in_process", "multi_processing"])
def test_direct_runner_logs(model: Path, beam_args: list[str]) -> None:
    proc = run_piped(model, "--runner", "direct", "--scenarios", "sc.yaml", "-v", *beam_args)
    assert proc.returncode == 1, proc.stderr
    recs = records(proc.stderr)
    check_component_records(recs)
    failed = [r for r in recs if r["event"] == "key failed"]
    assert len(failed) == 1 and (failed[0]["component"], failed[0]["key"], failed[0]["step"]) == ("sink", "k2", 3)
    # Beam's own worker chatter is not shown (no --debug); every line is a JSON record or the CLI's message
    assert not [r for r in recs if r["logger"] == "worker"], recs
    code, out = run_in_pty(model, "--runner", "direct", "--scenarios", "sc.yaml", "-v", *beam_args)
    assert code == 1, out
    check_text_lines(out, ("k1", "k2"))
    plain = ANSI.sub("", out)  # the failure told once, by the error (workers hold their record back too)
    assert "key failed" not in plain and plain.count("ValueError: sink tripped") == 1, plain


@pytest.mark.slow
def test_direct_runner_component_stages_debug_level_reaches_workers(model: Path) -> None:
    proc = run_piped(model, "--runner", "direct", "--stages", "component", "--log-level", "debug",
                     "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
    recs = records(proc.stderr)
    init = [r for r in recs if r["event"] == "init done"]
    assert len(init) == 1 and init[0]["phase"] == "init" and init[0]["key"] == "default", recs


# ---------------------------------------------------------------------------- in this process
def test_plugboard_style_logger_in_local_process(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "log_parts_lp.py").write_text(textwrap.dedent(PARTS))
    import log_parts_lp as parts

    from plugboard_beam.connector import AsyncioConnector
    from plugboard_beam.logs import EVENT_ATTR
    from plugboard_beam.process import LocalProcess
    from plugboard_beam.schemas import ConnectorSpec

    src = parts.Src(name="a", iters=3)  # type: ignore[attr-defined]
    src._logger.info("x", a=1)  # outside a run: name and class only
    async def main() -> None:
        process = LocalProcess(components=[src, parts.Sink(name="b")],  # type: ignore[attr-defined]
                               connectors=[AsyncioConnector(spec=ConnectorSpec(source="a.out", target="b.inp"))])
        async with process:
            await process.run()

    with caplog.at_level(logging.DEBUG, logger="plugboard_beam"):
        asyncio.run(main())
    events = [getattr(r, EVENT_ATTR) for r in caplog.records if r.name == "plugboard_beam.component"]
    assert [(e["event"], e.get("step"), e.get("value")) for e in events if e["event"] == "stepped"] == [
        ("stepped", 0, 0), ("stepped", 1, 10), ("stepped", 2, 20)]
    # (the "x" logged before the run shows too when an earlier test left our loggers at INFO)
    first = next(r for r in caplog.records if r.name == "plugboard_beam.component"
                 and getattr(r, EVENT_ATTR)["event"] != "x")
    assert json.loads(first.getMessage())["event"] == "init done"  # the message itself is the JSON line
    assert next(e for e in events if e["event"] == "seen two")["component"] == "b"


class Solo(Component):
    io = IO(outputs=["out"])


def test_outside_a_run_and_after_pickling(caplog: pytest.LogCaptureFixture) -> None:
    from plugboard_beam.logs import EVENT_ATTR, SCOPE_ATTR, LogScope

    comp = Solo(name="solo")
    with caplog.at_level(logging.INFO, logger="plugboard_beam"):
        comp._logger.bind(extra="y").info("hello", a=1)
        try:
            raise KeyError("boom")
        except KeyError:
            comp._logger.exception("failed here")
    ev = [getattr(r, EVENT_ATTR) for r in caplog.records]
    assert {k: ev[0][k] for k in ("event", "component", "cls", "extra", "a")} == {
        "event": "hello", "component": "solo", "cls": "Solo", "extra": "y", "a": 1}
    assert "step" not in ev[0] and "key" not in ev[0]
    assert ev[1]["level"] == "error" and "KeyError: 'boom'" in ev[1]["exception"]
    scope = LogScope("k9", "job-1", type("Counter", (), {"steps": 5})())
    comp.__dict__[SCOPE_ATTR] = scope
    assert scope.fields() == {"key": "k9", "step": 5, "job_id": "job-1"}
    back = pickle.loads(pickle.dumps(comp))
    restored = back.__dict__[SCOPE_ATTR]
    assert isinstance(restored, LogScope) and restored.fields() == {"key": "k9", "job_id": "job-1"}


def test_log_record_does_not_break_the_progress_line() -> None:
    from plugboard_beam.cli.progress import Progress
    from plugboard_beam.logs import LogConfig, LogHandler, get_logger
    from plugboard_beam.runtime.context import Snapshot

    stream = io.StringIO()
    snap = Snapshot(3, 0, 10, 700, 100.0, 1.0, "")
    bar = Progress(lambda: snap, enabled=True, stream=stream, terminal=True).start()
    handler = LogHandler(LogConfig(level="info", format="text"), stream=stream, line=bar)
    logger = logging.getLogger("plugboard_beam.test_progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        bar._draw()
        before = len(stream.getvalue())
        get_logger("plugboard_beam.test_progress").warning("careful", n=3)
        after = stream.getvalue()[before:]
    finally:
        logger.removeHandler(handler)
        bar.stop()
    assert "keys 3/10" in stream.getvalue()[:before]  # the bar was drawn before the record
    # the record is written on a line of its own (the bar taken away first) and the bar drawn again
    lines = after.split("\n")
    (record,) = [ln for ln in lines if "careful" in ln]
    assert "n=3" in record and "keys 3/10" not in record
    assert "keys 3/10" in after[after.index("careful"):]


def test_dead_letters_are_warnings_with_reader_reason_and_key(caplog: pytest.LogCaptureFixture) -> None:
    from plugboard_beam.logs import EVENT_ATTR
    from plugboard_beam.streaming.pipeline import dead_letter

    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        msg = dead_letter(b"{}", {"key": "k\x1b[31m", "seq": "4"}, "no inflow field", "sensor")
    assert msg.attributes["reason"] == "no inflow field"
    (rec,) = [getattr(r, EVENT_ATTR) for r in caplog.records]
    assert (rec["event"], rec["level"], rec["reader"], rec["reason"]) == (
        "message dead-lettered", "warning", "sensor", "no inflow field")
    assert rec["key"] == repr("k\x1b[31m") and "\x1b" not in rec["key"] and rec["seq"] == "'4'"


def test_a_flood_of_dead_letters_is_logged_in_bounded_records(caplog: pytest.LogCaptureFixture) -> None:
    """A hostile flood (1,000 bad messages) gives the first 20 warnings one by one and the rest
    as one count per reader when the period is over; each message is still dead-lettered."""
    from plugboard_beam.logs import EVENT_ATTR
    from plugboard_beam.streaming.pipeline import DeadLetterLog, dead_letter

    now = [0.0]
    log = DeadLetterLog(burst=20, period=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        msgs = [dead_letter(b"x", {"key": f"k{i}"}, "not JSON", "sensor" if i % 2 else "meter", log)
                for i in range(1000)]
        log.tick()  # within the period: nothing more told yet
        told = [getattr(r, EVENT_ATTR) for r in caplog.records]
        now[0] = 61.0
        log.tick()
        after = [getattr(r, EVENT_ATTR) for r in caplog.records][len(told):]
    assert len(msgs) == 1000 and all(m.attributes["reason"] == "not JSON" for m in msgs)
    assert [r["event"] for r in told] == ["message dead-lettered"] * 20
    assert [(r["event"], r["reader"], r["count"]) for r in after] == [
        ("messages dead-lettered, not logged one by one", "meter", 490),
        ("messages dead-lettered, not logged one by one", "sensor", 490)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        dead_letter(b"x", {"key": "k"}, "not JSON", "sensor", log)  # a new period: told again
    assert [getattr(r, EVENT_ATTR)["event"] for r in caplog.records] == ["message dead-lettered"]


@pytest.mark.slow
def test_dataflow_build_ships_the_log_config_to_the_stage_dofns(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dataflow lowering's DoFns carry the run's LogConfig (pickled with them); a worker's
    setup puts our loggers at its level and leaves the records to Beam's handler."""
    import apache_beam as beam

    from conftest import ROOT
    from plugboard_beam.dataflow.builders import BuildRequest, build_batch
    from plugboard_beam.logs import LOGGER, LogConfig, LogHandler
    from plugboard_beam.lowering.beam import StageDoFn
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model

    monkeypatch.chdir(tmp_path)  # the model's writer opens ./b.txt in init
    # (other tests of this session import other modules named hello_world in this process)
    monkeypatch.delitem(sys.modules, "hello_world", raising=False)
    model = load_model(str(ROOT / "specs" / "hello" / "my-model.yaml"))
    config = LogConfig(level="debug", format="json", job_id="job-7")
    request = BuildRequest(instances=(("default", {}),), options=RunOptions(log=config), beam_options=None,
                           errors_prefix=str(tmp_path / "errors"), project="p", region="r", job_name="j",
                           temp_location=str(tmp_path))
    pipeline = beam.Pipeline()
    build_batch(pipeline, model, request)
    fns = []

    class Visit(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node: _t.Any) -> None:
            fn = getattr(node.transform, "fn", None)
            if isinstance(fn, StageDoFn):
                fns.append(fn)

    pipeline.visit(Visit())
    assert fns and all(fn.log == config for fn in fns)
    shipped = pickle.loads(pickle.dumps(fns[0]))
    ours = logging.getLogger(LOGGER)
    before = (ours.level, list(ours.handlers), ours.propagate)
    try:
        ours.setLevel(logging.WARNING)
        shipped.setup()
        assert ours.level == logging.DEBUG and ours.propagate
        assert not [h for h in ours.handlers if isinstance(h, LogHandler)]  # Beam's handler shows them
        run = shipped._new_run("k1")
        comp = next(iter(run.engine.runners.values())).comp
        assert comp.__dict__["_plugboard_beam_log"].fields()["job_id"] == "job-7"
        run.close()
    finally:
        ours.level, ours.handlers, ours.propagate = before[0], before[1], before[2]
        if hasattr(shipped, "ctx"):
            shipped.ctx.close()  # (the run context a worker process makes, here made in the test's process)


STREAM_PARTS = '''
from plugboard_beam.component import Component, IOController as IO


class Echo(Component):
    io = IO(inputs=["x"], outputs=["y"])

    async def step(self) -> None:
        self._logger.info("echo", x=self.x)
        self.y = self.x
'''

STREAM_MODEL = '''
plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.PubSubReader
        args: {name: sensor, topic: lg-in, fields: [x]}
      - type: lg_parts.Echo
        args: {name: echo}
      - type: plugboard_beam.library.PubSubWriter
        args: {name: out, topic: lg-out, fields: [y]}
      connectors:
      - {source: sensor.x, target: echo.x}
      - {source: echo.y, target: out.y}
'''


@pytest.mark.slow
def test_streaming_run_logs_component_records_and_dead_letters(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator
    from pubsub_testing import clients

    project = "plugboard-beam-logs"
    (tmp_path / "lg_parts.py").write_text(STREAM_PARTS)
    (tmp_path / "model.yaml").write_text(STREAM_MODEL)
    (tmp_path / "keys.yaml").write_text("- {key: k1}\n")
    with Emulator(project=project) as emu:
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=project)
        os.environ["PUBSUB_EMULATOR_HOST"] = emu.host
        try:
            pub, sub = clients()
            topic = f"projects/{project}/topics/lg-in"
            pub.create_topic(name=topic)
            sub.create_subscription(name=f"projects/{project}/subscriptions/lg-in-sub", topic=topic)
            for seq, data in (("0", b'{"x": 1}'), ("99", b"not json"), ("1", b'{"x": 2}'), ("2", b"")):
                pub.publish(topic, data, key="k1", seq=seq, **({"eos": "true"} if not data else {})).result()
        finally:
            del os.environ["PUBSUB_EMULATOR_HOST"]
        proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--streaming", "--scenarios",
                               "keys.yaml", "-p", "sensor.subscription=lg-in-sub", "-v"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=env)
    recs = records(proc.stderr)
    echo = [r for r in recs if r["event"] == "echo"]
    got = [(r["component"], r["key"], r["step"], r["x"]) for r in echo]
    assert got == [("echo", "k1", 0, 1), ("echo", "k1", 1, 2)], proc.stderr[-3000:]
    dead = [r for r in recs if r["event"] == "message dead-lettered"]
    assert len(dead) == 1 and dead[0]["reader"] == "sensor" and dead[0]["key"] == "'k1'", recs
    assert [r["event"] for r in recs if r["logger"] == "plugboard_beam.run"][:1] == ["run started"]
