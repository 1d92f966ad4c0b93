"""The one failure protocol holds in streaming too: a failing component gives the same outputs,
message and exit code with --streaming (against the Pub/Sub emulator) as on the local runner."""

from __future__ import annotations

from pathlib import Path
import subprocess

import pytest

from conftest import cli_command
from plugboard_beam.testing.emulator import Emulator
from test_failures import model_dir, outputs, via_cli
from test_streaming import emulator, env_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fail_at", [1, 40])
def test_a_failure_is_the_same_in_streaming(emulator: Emulator, tmp_path: Path, fail_at: int) -> None:  # noqa: F811
    local = via_cli(model_dir(tmp_path / "local", fail_at), "--runner", "local")
    root = model_dir(tmp_path / "streaming", fail_at)
    proc = subprocess.run([*cli_command(), "process", "run", "m.yaml", "--streaming"], cwd=root,
                          capture_output=True, text=True, timeout=300, env=env_for(emulator))
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("component '")]
    streaming = (proc.returncode, "\n".join(lines), outputs(root))
    assert local[0] == 1
    assert streaming == local, proc.stderr
