"""Ctrl-C (SIGINT) and SIGTERM end a streaming run cleanly: within 20 / 30 s, exit 130 / 143,
destroy() called on the live components, the run's own subscriptions and topics deleted
(against the Pub/Sub emulator)."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.testing.emulator import Emulator
from test_streaming import PROJECT, clients, drain, emulator, env_for, make_sub  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def run_resources(prefix: str) -> set[str]:
    """Topics and subscriptions on the emulator whose names start with ``prefix``."""
    pub, sub = clients()
    names = [t.name for t in pub.list_topics(project=f"projects/{PROJECT}")]
    names += [s.name for s in sub.list_subscriptions(project=f"projects/{PROJECT}")]
    return {n for n in names if n.rsplit("/", 1)[-1].startswith(prefix)}


@pytest.mark.parametrize(("sig", "code", "bound"), [(signal.SIGINT, 130, 20), (signal.SIGTERM, 143, 30)])
def test_a_signal_stops_a_streaming_run_cleanly(emulator: Emulator, tmp_path: Path,  # noqa: F811
                                                sig: signal.Signals, code: int, bound: float) -> None:
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    model = yaml.safe_load((work / "tank.yaml").read_text())
    args = model["plugboard"]["process"]["args"]
    args["components"].append({"type": "plugboard_beam.library.JsonLinesWriter",
                               "args": {"name": "log", "path": "log-{key}.jsonl", "fields": ["level"]}})
    args["connectors"].append({"source": "tank.level", "target": "log.level"})
    (work / "forever.yaml").write_text(yaml.safe_dump(model))
    name = sig.name.lower()
    topic, _ = make_sub("tank-inflow", f"tank-inflow-{name}")
    _, results = make_sub("tank-state", f"tank-state-{name}")
    before = (run_resources("pbb-"))
    proc = subprocess.Popen([*cli_command(), "process", "run", "forever.yaml", "--streaming",
                             "-p", f"sensor.subscription=tank-inflow-{name}"], cwd=work, env=env_for(emulator),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub, _ = clients()
        for seq in range(3):
            pub.publish(topic, json.dumps({"inflow": 4.0}).encode(), key="a", seq=str(seq)).result()
        got = drain(results, expect=3, timeout=90)
        assert len(got) == 3 and proc.poll() is None  # still running: keys come from messages
        created = (run_resources("pbb-")) - before
        assert created, ("the run made no resources of its own", run_resources(""))
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(f"{sig.name}: exit {proc.returncode} after {seconds:.1f} s")
    assert proc.returncode == code, err
    assert f"({sig.name})" in err and "Traceback" not in err
    if sig == signal.SIGINT:
        assert "stopped: " in err
    assert seconds < bound
    # destroy() ran for the still-running key: its JSON-lines file was written.
    assert [json.loads(x)["level"] for x in (work / "log-a.jsonl").read_text().splitlines()] == [4.0, 7.2, 9.76]
    assert not created & (run_resources("pbb-")), "the run's subscriptions/topics were left behind"
