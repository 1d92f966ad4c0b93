"""The shared conformance suite (reference outputs from plugboard 0.9.0), through our CLI."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from conftest import cli_command

ENGINES = {
    "local": "--runner local",
    "direct": "",  # the default: DirectRunner, fused stages
    "direct-unfused": "--stages component",
    "direct-multiprocess": "--stages component --direct_num_workers 2 --direct_running_mode multi_processing",
}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_conformance(engine: str, conformance) -> None:  # type: ignore[no-untyped-def]
    cmd = [sys.executable, str(conformance / "check"), "--cli", shlex.join(cli_command()),
           f"--run-args={ENGINES[engine]}", "--timeout", "240"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
