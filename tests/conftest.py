"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PLUGBOARD_BEAM_SHARED", ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance"


def cli_command() -> list[str]:
    """The installed CLI, next to this interpreter."""
    exe = Path(sys.executable).with_name("plugboard-beam")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "plugboard_beam.cli.main"]


@pytest.fixture
def conformance() -> Path:
    if not (CONFORMANCE / "check").exists():
        pytest.fail(f"conformance suite not found at {CONFORMANCE} (set PLUGBOARD_BEAM_SHARED)")
    return CONFORMANCE


@pytest.fixture
def case_copy(tmp_path: Path, conformance: Path):
    """Copy a conformance case folder into tmp_path and return the copy."""

    def copy(name: str) -> Path:
        src = conformance / "cases" / name
        dst = tmp_path / name
        shutil.copytree(src, dst)
        for p in dst.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        return dst

    return copy
