#!/usr/bin/env python
"""Peak RSS of one run, to check memory stays flat as a run grows.

    .venv/bin/python benchmarks/peak_memory.py direct 100000 [fused|component]
Prints: peak_rss_mb=<MB> component_steps=<n>
(the recirculation loop of ``models/loop.yaml`` for that many steps, on ``direct`` or ``local``)

    .venv/bin/python benchmarks/peak_memory.py keyed 200000 [ROWS_PER_WAVE] [--folder F]
Prints: peak_rss_mb=<MB> rows=<n> written=<n> waves=<n>
(the tank twin replayed on the DirectRunner from one Parquet history of 50 assets with that many
rows in all, ``key_column`` reader, levels to a sharded Parquet table; ``ROWS_PER_WAVE`` is
``--rows-per-wave``, default 500,000, 0 for one pipeline)

Figures for the keyed replay are in ``dataio_bench.py``'s docstring (the same replay, run
through the CLI); ``tests/test_dataio_waves.py`` runs ``keyed`` at 20,000 and 200,000 rows in
waves of 20,000 and requires the two peaks within 15 MB.
"""

from __future__ import annotations

from pathlib import Path
import resource
import sys
import tempfile

HERE = Path(__file__).resolve().parent


def loop(runner: str, steps: int, partition: str) -> None:
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model
    from plugboard_beam.spec.scenarios import Scenario

    model = load_model(HERE / "models" / "loop.yaml")
    report = get_runner(runner).run(model, RunOptions(
        scenarios=[Scenario("k", {"source.steps": steps})], partition=partition))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak_rss_mb={peak:.1f} component_steps={sum(report.steps.values())}")


def keyed(rows: int, rows_per_wave: int, folder: Path) -> None:
    import os
    import subprocess

    import pyarrow.parquet as pq

    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.dataio import key_counts, plan_waves
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model

    # the history is made in another process: its Python rows would count in this one's peak
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                    "from dataio_bench import make_keyed; make_keyed(Path(sys.argv[2]), 50, int(sys.argv[3]))",
                    str(HERE), str(folder), str(rows // 50)], check=True)
    os.chdir(folder)  # the model's paths are relative to the working folder
    model = load_model(folder / "keyed.yaml")
    counts = key_counts(model) or {}
    waves = len(plan_waves(counts, rows_per_wave))
    get_runner("direct").run(model, RunOptions(rows_per_wave=rows_per_wave))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    written = sum(pq.read_metadata(f).num_rows for f in (folder / "out-keyed").glob("*.parquet"))
    print(f"peak_rss_mb={peak:.1f} rows={sum(counts.values())} written={written} waves={waves}")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--folder")]
    if args[0] == "keyed":
        given = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--folder=")]
        with tempfile.TemporaryDirectory() as tmp:
            keyed(int(args[1]), int(args[2]) if len(args) > 2 else 500_000,
                  Path(given[0]) if given else Path(tmp) / "keyed")
        return
    loop(args[0], int(args[1]), args[2] if len(args) > 2 else "fused")


if __name__ == "__main__":
    main()
