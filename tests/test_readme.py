"""README.md's commands work as written in a clone: the Python quickstart runs as a script, and
the fresh-machine commands use the venv's programs and the vendored test data."""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def blocks(lang: str, section: str | None = None) -> list[str]:
    text = (ROOT / "README.md").read_text()
    if section is not None:
        text = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_quickstart_runs_as_a_script(tmp_path: Path) -> None:
    source = "\n".join(blocks("python", "Quickstart"))
    assert "from plugboard_beam" in source and "asyncio.run(main())" in source
    script = tmp_path / "quickstart.py"
    script.write_text(source)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert (tmp_path / "b.txt").read_text().split() == ["0", "2", "4", "6", "8"]
    # The decorated function still works as a function.
    check = subprocess.run([sys.executable, "-c", f"exec(open({str(script)!r}).read().split('if __name__')[0]); "
                            "print(result)"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert check.stdout.strip() == "{'out_1': 4}", check.stderr


def test_fresh_machine_commands_use_the_venv() -> None:
    setup, tests = blocks("shell", "On a fresh machine")
    assert setup.startswith("python3.12 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
                            ".venv/bin/plugboard-beam process run")
    assert tests.split("\n")[:2] == ['.venv/bin/python -m pytest -q -m "not slow" tests',
                                      ".venv/bin/python -m pytest -q tests"]
    # The full command is what CI runs.
    assert ".venv/bin/python -m pytest -q tests" in (ROOT / ".ci" / "run").read_text()
    for block in blocks("shell", "Quickstart"):
        for line in block.splitlines():
            assert line.startswith(".venv/bin/") or not line.strip(), line


QUICKSTART_COMMANDS = [line.split("   #")[0].strip() for block in blocks("shell", "Quickstart")
                       for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [
    pytest.param(c, marks=[pytest.mark.slow] if "process run" in c and "--runner local" not in c else [])
    for c in QUICKSTART_COMMANDS
])
def test_quickstart_commands_run_as_written(command: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "specs" / "hello", tmp_path / "specs" / "hello")
    bindir = Path(sys.executable).parent
    proc = subprocess.run(command.replace(".venv/bin/", f"{bindir}/"), shell=True, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    if "process run" in command:
        iters = 3 if "iters=3" in command else 10
        assert (tmp_path / "b.txt").read_text().split() == [str(2 * i) for i in range(iters)]


def test_readme_events_example_runs_as_a_script(tmp_path: Path) -> None:
    (source,) = blocks("python", "Semantics in brief")
    assert "asyncio.run(main())" in source
    script = tmp_path / "events.py"
    script.write_text(source)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    log, pages = proc.stdout.splitlines()
    assert log.endswith("'level=9', 'alarm 12', 'level=12', 'alarm 15', 'level=15']") and pages == "[12, 15]"


@pytest.mark.slow
def test_readme_streaming_by_hand_runs_as_written(tmp_path: Path) -> None:
    """The by-hand streaming tour: tail the output topic, publish the readings, run until both
    keys end, read the results; against an emulator (the README's address replaced by its own)."""
    from plugboard_beam.testing.emulator import Emulator

    (block,) = [b for b in blocks("shell", "Streaming from Pub/Sub") if "topic publish" in b]
    assert block.startswith("export PUBSUB_EMULATOR_HOST=127.0.0.1:8085 PUBSUB_PROJECT_ID=my-project\n")
    shutil.copytree(ROOT / "specs" / "tank", tmp_path / "specs" / "tank")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with Emulator(project="my-project") as emu:
        proc = subprocess.run(["bash", "-c", "set -e\n" + block.replace("127.0.0.1:8085", emu.host)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    levels = {k: [m["data"]["level"] for m in results if m["attributes"]["key"] == k and m["data"]]
              for k in ("pump-1", "pump-2")}
    assert levels == {"pump-1": [8.0, 14.4, 19.52, 17.616], "pump-2": [1.0, 12.8, 22.24]}
    assert sorted(m["attributes"]["key"] for m in results if m["attributes"].get("eos")) == ["pump-1", "pump-2"]
