"""Peak memory is flat in the number of steps (state per key is O(model), not O(steps))."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import ROOT

#: runs the peak-memory benchmark
pytestmark = pytest.mark.slow


def peak_mb(runner: str, steps: int) -> float:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peak_memory.py"), runner, str(steps)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r"peak_rss_mb=([\d.]+) component_steps=(\d+)", proc.stdout)
    assert match, proc.stdout
    assert int(match.group(2)) == 4 * steps + 1
    return float(match.group(1))


@pytest.mark.parametrize("runner", ["local", "direct"])
def test_peak_memory_flat_in_steps(runner: str) -> None:
    small, large = peak_mb(runner, 10_000), peak_mb(runner, 500_000)
    # 50x the steps (2,000,000 component-steps through a loop) may not cost more than a few MB.
    assert large - small < 8, (small, large)
