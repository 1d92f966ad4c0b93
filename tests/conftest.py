"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The conformance suite (reference outputs recorded from plugboard 0.9.0), vendored byte for
#: byte from the shared suite so that a clone tests itself; test_conformance checks the copy.
CONFORMANCE = ROOT / "tests" / "conformance"


def _shared_conformance() -> Path:
    """The shared suite next to the checkout (``../shared``, or next to an ancestor folder, as
    for a git worktree), or ``$PLUGBOARD_BEAM_SHARED``; may not exist (a plain clone)."""
    if "PLUGBOARD_BEAM_SHARED" in os.environ:
        return Path(os.environ["PLUGBOARD_BEAM_SHARED"]) / "conformance"
    for folder in ROOT.parents:
        if (folder / "shared" / "conformance" / "check").exists():
            return folder / "shared" / "conformance"
    return ROOT.parent / "shared" / "conformance"


#: Where the shared suite lives near this checkout, when it does (compared with the copy).
SHARED_CONFORMANCE = _shared_conformance()


def cli_command() -> list[str]:
    """The installed CLI, next to this interpreter."""
    exe = Path(sys.executable).with_name("plugboard-beam")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "plugboard_beam.cli.main"]


def checker() -> Path:
    """The vendored conformance checker."""
    path = CONFORMANCE / "check"
    if not path.exists():
        pytest.fail(f"the vendored conformance suite is missing: {CONFORMANCE}")
    return path


@pytest.fixture
def conformance() -> Path:
    if not (CONFORMANCE / "check").exists():
        pytest.fail(f"the vendored conformance suite is missing: {CONFORMANCE}")
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
