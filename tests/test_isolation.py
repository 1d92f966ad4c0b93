"""Batch per-key isolation: a key whose components fail (constructor, init, step, a value that
cannot cross a stage boundary) is reported with component, key, step and reason; its components
are destroyed; every other key runs to the end with exact outputs; exit 1; on every runner."""

from __future__ import annotations

from pathlib import Path
import subprocess

import pytest
import yaml

from conftest import cli_command
from failing_parts import MODEL, SOURCE

SCENARIOS = "key,frag.fail_at,frag.fail_in,frag.bad_at\nk0,,,\nk1,3,,\nk2,,construct,\nk3,,init,\nk4,,,\nk5,,,5\n"
FULL = [str(i) for i in range(1, 65)] + ["destroyed"]
LINES = {
    "k1": "component 'frag' (key 'k1') failed in step 2 (counting from 0): RuntimeError: broke at 3",
    "k2": "component 'frag' (key 'k2') failed in its constructor: ValueError: cannot build",
    "k3": "component 'frag' (key 'k3') failed in init: OSError: no device",
    "k5": "component 'frag' (key 'k5') failed in step 4 (counting from 0), sending output 'y': TypeError: a value "
          "of type generator cannot be pickled to cross to the next stage",
}
MP = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
RUNNERS = {
    "local": ["--runner", "local"],
    "direct-fused": [],
    "direct-component": ["--stages", "component"],
    "multi-processing-fused": MP,
    "multi-processing-component": ["--stages", "component", *MP],
}


def model_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fparts.py").write_text(SOURCE)
    (root / "m.yaml").write_text(yaml.safe_dump(MODEL))
    (root / "s.csv").write_text(SCENARIOS)
    (root / "out").mkdir()
    return root


def lines(path: Path) -> list[str]:
    return path.read_text().split()


@pytest.mark.slow
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_failing_keys_are_isolated(tmp_path: Path, runner: str) -> None:
    work = model_dir(tmp_path / runner)
    proc = subprocess.run([*cli_command(), "process", "run", "m.yaml", "--scenarios", "s.csv", *RUNNERS[runner]],
                          cwd=work, capture_output=True, text=True, timeout=600)
    out = work / "out"
    staged = "component" in runner  # only a stage boundary refuses an unpicklable value
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    failed = ["k1", "k2", "k3", "k5"] if staged else ["k1", "k2", "k3"]
    assert f"{len(failed)} of 6 model instance(s) failed" in proc.stderr
    for key in failed:
        assert LINES[key] in proc.stderr, (key, proc.stderr)
    # the other keys ran to the end, exactly, and were destroyed
    for key in ("k0", "k4"):
        assert lines(out / f"{key}-sib.txt") == FULL, key
        assert lines(out / f"{key}-w.txt") == FULL, key
    if not staged:  # in one stage the generator is just a value: w writes its repr at step 4
        written = (out / "k5-w.txt").read_text().splitlines()
        assert written[:4] == ["1", "2", "3", "4"] and written[4].startswith("<generator object")
        assert written[5:] == [str(i) for i in range(6, 65)] + ["destroyed"]
    # failed keys: what the failing component sent before failing reached its consumer; destroyed
    assert lines(out / "k1-w.txt") == ["1", "2", "destroyed"]
    assert lines(out / "k1-sib.txt") == FULL  # queued beside the failure: consumed what it had
    for key in ("k1", "k3", "k5"):
        assert lines(out / f"{key}-frag.destroyed") == ["destroyed"], key
    assert not list(out.glob("k2-*"))  # no component of k2 was initialised
    if staged:
        assert lines(out / "k5-w.txt") == ["1", "2", "3", "4", "destroyed"]
