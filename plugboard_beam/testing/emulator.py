"""Start and stop the Pub/Sub emulator (``gcloud beta emulators pubsub start``) on loopback.

The gcloud wrapper starts a JVM that outlives the wrapper, so the emulator runs in its own
process group and is stopped by killing the whole group.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import typing as _t
import urllib.request


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """A running Pub/Sub emulator; ``with Emulator() as emu:`` sets ``PUBSUB_EMULATOR_HOST``."""

    def __init__(self, project: str = "plugboard-beam-local", port: _t.Optional[int] = None) -> None:
        self.project = project
        self.port = port or free_port()
        self.data_dir = tempfile.mkdtemp(prefix="pubsub-emulator-")
        self.proc: _t.Optional[subprocess.Popen[bytes]] = None
        self._saved_env: dict[str, _t.Optional[str]] = {}

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> Emulator:
        """Start and wait until the API answers."""
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise RuntimeError("gcloud is not installed: the Pub/Sub emulator cannot start")
        log = open(os.path.join(self.data_dir, "emulator.log"), "wb")
        self.proc = subprocess.Popen(
            [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={self.host}",
             f"--data-dir={self.data_dir}", f"--project={self.project}", "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited ({self.proc.returncode}): {self.log()[-2000:]}")
            if self._ready():
                _exit_on_sigterm()
                atexit.register(self.stop)
                for name, value in (("PUBSUB_EMULATOR_HOST", self.host), ("PUBSUB_PROJECT_ID", self.project)):
                    self._saved_env[name] = os.environ.get(name)
                    os.environ[name] = value
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the Pub/Sub emulator did not answer within {timeout} s")

    def log(self) -> str:
        """What the emulator printed."""
        try:
            with open(os.path.join(self.data_dir, "emulator.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _ready(self) -> bool:
        try:
            url = f"http://{self.host}/v1/projects/{self.project}/topics"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the emulator's whole process group (the JVM included) and clean up."""
        proc, self.proc = self.proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _group_alive(proc.pid):
                    time.sleep(0.05)
                if not _group_alive(proc.pid):
                    break
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: _t.Optional[types.TracebackType]) -> None:
        self.stop()


def _exit_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from ``timeout``) into SystemExit, so ``with Emulator()`` and atexit
    still stop the JVM; only when no handler is set and we are on the main thread."""
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(parts[2]) == pgid and parts[0] != "Z":
            return True
    return False
