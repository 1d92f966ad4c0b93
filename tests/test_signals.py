"""Ctrl-C (SIGINT) and SIGTERM end a run quickly and cleanly on every batch runner: exit 130 /
143, one message and no traceback, ``destroy()`` called on the live components (in worker
processes too). Real signals, sent to a real CLI process."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import time

import pytest

from conftest import cli_command

PARTS = '''
import os, time
from plugboard_beam.component import Component, IOController as IO

class Slow(Component):
    io = IO(outputs=["x"])
    def __init__(self, n, fail_at=-1, **kw):
        super().__init__(**kw); self._n = n; self._i = 0; self._fail_at = fail_at
    async def step(self):
        if self._i >= self._n:
            await self.io.close(); return
        if self._i == self._fail_at:
            raise RuntimeError(f"broke at {self._i}")
        time.sleep(0.01)
        self._i += 1; self.x = self._i

class Marker(Component):
    io = IO(inputs=["x"])
    def __init__(self, path, **kw):
        super().__init__(**kw); self._path = path
    async def init(self):
        with open(self._path + ".started", "w") as f:
            f.write(str(os.getpid()))
    async def step(self):
        pass
    async def destroy(self):
        with open(self._path, "w") as f:
            f.write("destroyed\\n")
'''

MODEL = '''
plugboard:
  process:
    args:
      components:
      - {type: sparts.Slow, args: {name: s, n: 1000000}}
      - {type: sparts.Marker, args: {name: m, path: "out/{key}.destroyed"}}
      connectors:
      - {source: s.x, target: m.x}
'''

MP = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def start(tmp_path: Path, *args: str, scenarios: str = "key\nk0\nk1\n",
          started: str = "*.started") -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "sparts.py").write_text(PARTS)
    (tmp_path / "m.yaml").write_text(MODEL)
    (tmp_path / "s.csv").write_text(scenarios)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([*cli_command(), "process", "run", "m.yaml", "--scenarios", "s.csv", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(started)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    time.sleep(0.5)
    return proc, out


def stop(proc: subprocess.Popen[str], sig: int, group: bool = False, timeout: float = 30) -> tuple[str, str]:
    """Send ``sig`` (to the whole process group with ``group``, as a terminal's Ctrl-C does) and
    wait for the process's output; killed if it outlives ``timeout``."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(("runner", "sig", "group"), [
    (["--runner", "local"], signal.SIGTERM, False),
    (["--runner", "local"], signal.SIGINT, True),
    ([], signal.SIGINT, False),
    ([], signal.SIGTERM, False),
    (["--stages", "component"], signal.SIGTERM, False),
    (MP, signal.SIGTERM, False),
    (MP, signal.SIGINT, True),  # a terminal's Ctrl-C: the whole process group
], ids=["local-term", "local-int-group", "direct-int", "direct-term", "component-term", "mp-term", "mp-int-group"])
def test_signal_ends_run_with_destroy(tmp_path: Path, runner: list[str], sig: int, group: bool) -> None:
    proc, out = start(tmp_path, *runner)
    sent = time.monotonic()
    _, stderr = stop(proc, sig, group)
    took = time.monotonic() - sent
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
    assert took < 30
    assert "Traceback" not in stderr and signal.Signals(sig).name in stderr, stderr
    # every key that started was destroyed (a worker process does it as it exits: allow it a moment)
    started = [p.name.removesuffix(".started") for p in out.glob("*.started")]
    deadline = time.monotonic() + 10
    while not all((out / name).exists() for name in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started and all((out / name).read_text() == "destroyed\n" for name in started), started


@pytest.mark.slow
@pytest.mark.parametrize("runner", [["--runner", "local"], []], ids=["local", "direct"])
def test_a_stopped_run_tells_the_failures_of_the_keys_that_had_failed(tmp_path: Path, runner: list[str]) -> None:
    """k0 fails at its 4th step, then k1 runs until Ctrl-C: the message names k0's failure
    (component, key, step, reason), not only that the run stopped."""
    proc, out = start(tmp_path, *runner, scenarios="key,s.fail_at\nk0,3\nk1,-1\n", started="k1.*.started")
    _, stderr = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "SIGINT" in stderr, stderr
    assert "1 key(s) had failed before it stopped:" in stderr, stderr
    assert "component 's' (key 'k0') failed in step 3 (counting from 0): RuntimeError: broke at 3" in stderr, stderr
    assert "k1" not in stderr.split("had failed before it stopped:")[1], stderr
    assert (out / "k1.destroyed").read_text() == "destroyed\n"


SCRIPT = '''
import asyncio
from sparts import Slow, Marker
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.process import LocalProcess
from plugboard_beam.schemas import ConnectorSpec

async def main():
    p = LocalProcess(components=[Slow(name="s", n=10**6), Marker(name="m", path="out/lp.destroyed")],
                     connectors=[AsyncioConnector(spec=ConnectorSpec(source="s.x", target="m.x"))])
    async with p:
        await p.run()
        print("status:", p.status.value)

asyncio.run(main())
'''


@pytest.mark.slow
def test_ctrl_c_under_asyncio_run_stops_local_process_and_destroys(tmp_path: Path) -> None:
    import sys

    (tmp_path / "sparts.py").write_text(PARTS)
    (tmp_path / "lp.py").write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "lp.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (out / "lp.destroyed.started").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.3)
    stdout, _ = stop(proc, signal.SIGINT, timeout=10)
    # as plugboard 0.9.0: Ctrl-C cancels the run, which returns with the process 'stopped'
    assert proc.returncode == 0
    assert "status: stopped" in stdout
    assert (out / "lp.destroyed").read_text() == "destroyed\n"
