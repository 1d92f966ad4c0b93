"""Differential: for every conformance model and 50 keys with different overrides, the
DirectRunner (fused, unfused, multi-process) writes exactly what LocalProcess writes, key by key."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess

import pytest
import yaml

from conftest import CONFORMANCE, ROOT, cli_command
from plugboard_beam.spec import load_model

#: every test runs Beam pipelines through the CLI
pytestmark = pytest.mark.slow

CASES = sorted(p.name for p in (CONFORMANCE / "cases").iterdir() if (p / "model.yaml").exists()) \
    if (CONFORMANCE / "cases").exists() else []
KEYS = 50


def scenarios_for(model_path: Path) -> list[dict[str, object]]:
    """50 rows: per-key output files, and sizes / seeds that differ per key."""
    model = load_model(model_path)
    rows = []
    for i in range(KEYS):
        row: dict[str, object] = {"key": f"k{i:02d}"}
        for comp in model.config.plugboard.process.args.components:
            name, extra = comp.args.name, comp.args.extra_args()
            if "path" in extra:
                row[f"{name}.path"] = f"out/{{key}}-{name}.txt"
            for arg, value in extra.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    row[f"{name}.{arg}"] = value + (i * 7 + len(name)) % 9 - 2
            for fld, seeds in comp.args.initial_values.items():
                row[f"{name}.initial_values.{fld}"] = [s + i for s in seeds]
        rows.append(row)
    return rows


def run_case(case: str, tmp: Path, run_args: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    work = tmp / "_".join(["w", *[a.strip("-") for a in run_args]])
    shutil.copytree(CONFORMANCE / "cases" / case, work, ignore=shutil.ignore_patterns("expected"))
    for p in work.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    (work / "out").mkdir()
    (work / "scenarios.yaml").write_text(yaml.safe_dump(scenarios_for(work / "model.yaml")))
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--scenarios", "scenarios.yaml",
                           *run_args], cwd=work, capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = {p.name: p.read_text() for p in sorted((work / "out").iterdir())}
    assert len(files) >= KEYS
    return files


@pytest.mark.parametrize("case", CASES)
def test_direct_equals_local_key_by_key(case: str, tmp_path: Path) -> None:
    local = run_case(case, tmp_path, ["--runner", "local"])
    # The overrides really differ per key (otherwise this test would prove little).
    assert len(set(local.values())) >= 5
    for args in (["--runner", "direct"], ["--runner", "direct", "--stages", "component"]):
        assert run_case(case, tmp_path, args) == local, args


@pytest.mark.parametrize("case", ["circular", "fanin"])
def test_multi_process_direct_equals_local(case: str, tmp_path: Path) -> None:
    local = run_case(case, tmp_path, ["--runner", "local"])
    multi = run_case(case, tmp_path, ["--stages", "component", "--direct_num_workers", "2",
                                      "--direct_running_mode", "multi_processing"])
    assert multi == local


@pytest.mark.parametrize("model", ["chain.yaml", "loop.yaml"])
def test_state_only_in_beam_state(model: str, tmp_path: Path) -> None:
    """Every element restores its key's run from Beam state (no worker memory), as when each
    element lands on another worker: outputs are unchanged. 3,000 steps make several chunks
    per key, so runs are saved and restored between elements."""
    src = ROOT / "benchmarks" / "models"
    outputs = []
    for i, (args, env) in enumerate([(["--runner", "local"], None),
                                     (["--stages", "component"], {"PLUGBOARD_BEAM_STATE_ONLY": "1"})]):
        out = tmp_path / f"total{i}.txt"
        proc = subprocess.run([*cli_command(), "process", "run", str(src / model), *args, "-p", "source.steps=3000",
                               "-p", f"total.path={out}"], capture_output=True, text=True, timeout=600,
                              env=None if env is None else {**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert outputs[0].split()[0] == "3000"
