"""The conformance suite (reference outputs from plugboard 0.9.0), through our CLI, on every engine.

The suite is vendored in tests/conformance (a clone tests itself); when the shared suite is
next to the checkout, the copy must equal it byte for byte.
"""

from __future__ import annotations

from pathlib import Path
import shlex
import subprocess
import sys

import pytest

from conftest import CONFORMANCE, SHARED_CONFORMANCE, cli_command

ENGINES = {
    "local": "--runner local",
    "direct": "",  # the default: DirectRunner, fused stages
    "direct-unfused": "--stages component",
    "direct-multiprocess": "--stages component --direct_num_workers 2 --direct_running_mode multi_processing",
}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_vendored_suite_is_complete() -> None:
    names = _files(CONFORMANCE)
    assert "check" in names and "invalid/expect.tsv" in names
    cases = {n.split("/")[1] for n in names if n.startswith("cases/") and n.endswith("/model.yaml")}
    assert len(cases) >= 7, cases


@pytest.mark.skipif(not (SHARED_CONFORMANCE / "check").exists(),
                    reason=f"no shared conformance suite at {SHARED_CONFORMANCE} (a plain clone has none)")
def test_vendored_suite_equals_the_shared_one() -> None:
    shared, ours = _files(SHARED_CONFORMANCE), _files(CONFORMANCE)
    assert sorted(shared) == sorted(ours), "the vendored suite lacks or adds files: copy it again with cp -r"
    differ = [name for name in shared if shared[name] != ours[name]]
    assert not differ, f"the vendored suite differs from {SHARED_CONFORMANCE} in {differ}"


@pytest.mark.skipif(not (SHARED_CONFORMANCE.parent / "SEMANTICS.md").exists(),
                    reason=f"no shared contract at {SHARED_CONFORMANCE.parent} (a plain clone has none)")
def test_documented_contract_equals_the_shared_one() -> None:
    ours = Path(__file__).resolve().parent.parent / "docs" / "SEMANTICS.md"
    assert ours.read_bytes() == (SHARED_CONFORMANCE.parent / "SEMANTICS.md").read_bytes(), \
        "docs/SEMANTICS.md differs from the shared contract: copy it again"


@pytest.mark.slow
@pytest.mark.parametrize("engine", list(ENGINES))
def test_conformance(engine: str, conformance: Path) -> None:
    """cases/ and invalid/ (events/ and dataio/ have their own tests)."""
    cmd = [sys.executable, str(conformance / "check"), "--cli", shlex.join(cli_command()),
           f"--run-args={ENGINES[engine]}", "--cases", str(conformance / "cases"), "--timeout", "240"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
    assert proc.stdout.count("PASS invalid/") >= 9, proc.stdout
