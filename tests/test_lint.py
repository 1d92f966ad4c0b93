"""ruff and mypy are clean on the package (part of the test command, so CI enforces it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    proc = tool("ruff", "check", "plugboard_beam")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_clean() -> None:
    proc = tool("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
