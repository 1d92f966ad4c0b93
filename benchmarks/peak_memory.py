#!/usr/bin/env python
"""Peak RSS of one run, to check memory stays flat in the number of steps.

    .venv/bin/python benchmarks/peak_memory.py direct 100000 [fused|component]
Prints: peak_rss_mb=<MB> component_steps=<n>
"""

from __future__ import annotations

from pathlib import Path
import resource
import sys

HERE = Path(__file__).resolve().parent


def main() -> None:
    runner, steps = sys.argv[1], int(sys.argv[2])
    partition = sys.argv[3] if len(sys.argv) > 3 else "fused"
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model
    from plugboard_beam.spec.scenarios import Scenario

    model = load_model(HERE / "models" / "loop.yaml")
    report = get_runner(runner).run(model, RunOptions(
        scenarios=[Scenario("k", {"source.steps": steps})], partition=partition))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss_mb={peak:.1f} component_steps={sum(report.steps.values())}")


if __name__ == "__main__":
    main()
