"""Topics and subscriptions deleted while a streaming run runs (issue 15.5), on the emulator.

Each test starts the tank twin keyed by its messages, lets a key go through, deletes one
resource and publishes more: the run stops by itself with one message naming the resource
(never ``internal error``, no traceback), a non-zero exit, ``destroy()`` called and the run's
own subscriptions and topics deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, cli_command
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients, emulator_fixture, resource_paths

PROJECT = "plugboard-beam-vanish"
pytestmark = pytest.mark.slow


emulator = emulator_fixture(PROJECT)


topic, subscription = resource_paths(PROJECT)


def run_resources(prefix: str) -> list[str]:
    pub, sub = clients()
    names = [t.name for t in pub.list_topics(project=f"projects/{PROJECT}")]
    names += [s.name for s in sub.list_subscriptions(project=f"projects/{PROJECT}")]
    return [n for n in names if n.rsplit("/", 1)[-1].startswith(prefix)]


def publish(in_topic: str, key: str, inflows: list[float]) -> None:
    pub, _ = clients()
    for i, v in enumerate(inflows):
        pub.publish(in_topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(i)).result()


def wait_outputs(results: str, key: str, n: int, timeout: float = 120) -> None:
    _, sub = clients()
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < n:
        resp = sub.pull(subscription=results, max_messages=100, timeout=2)
        if resp.received_messages:
            sub.acknowledge(subscription=results, ack_ids=[m.ack_id for m in resp.received_messages])
        seen |= {int(m.message.attributes["step"]) for m in resp.received_messages
                 if m.message.attributes.get("key") == key and "step" in m.message.attributes}
    assert len(seen) >= n, f"only {sorted(seen)} of {n} outputs of key {key!r} came"


@pytest.mark.parametrize("victim", ["output", "dead-letter", "control-subscription", "feedback-subscription"])
def test_resource_deleted_mid_run_stops_cleanly_naming_it(emulator: Emulator, tmp_path: Path, victim: str) -> None:
    tag = victim.split("-")[0]
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    pub, sub = clients()
    in_topic, out_topic, dead_topic = topic(f"{tag}-in"), topic(f"{tag}-out"), topic(f"{tag}-in-dead-letter")
    for t in (in_topic, out_topic, dead_topic):
        pub.create_topic(name=t)
    results = subscription(f"{tag}-results")
    sub.create_subscription(name=results, topic=out_topic)
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator.host, PUBSUB_PROJECT_ID=PROJECT)
    proc = subprocess.Popen([*cli_command(), "process", "run", "tank.yaml", "--streaming",
                             "-p", f"sensor.topic={tag}-in", "-p", f"report.topic={tag}-out"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(pub.list_topic_subscriptions(topic=in_topic)):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.3)
        prefix = next(iter(pub.list_topic_subscriptions(topic=in_topic))).rsplit("/", 1)[-1].rsplit("-", 1)[0]
        publish(in_topic, "a", [1.0, 2.0, 3.0])
        wait_outputs(results, "a", 3)  # the run works
        if victim == "output":
            gone = out_topic
            pub.delete_topic(topic=out_topic)
            what = "the output topic of writer 'report'"
        elif victim == "dead-letter":
            gone = dead_topic
            pub.delete_topic(topic=dead_topic)
            what = "the dead-letter topic of reader 'sensor'"
        else:
            kind = victim.split("-")[0]
            gone = subscription(f"{prefix}-{kind}")
            sub.delete_subscription(subscription=gone)
            what = f"the run's {kind} subscription"
        t0 = time.monotonic()
        publish(in_topic, "b", [1.0, 2.0])
        pub.publish(in_topic, b"{not json", key="c", seq="0").result()  # a dead letter
        _, err = proc.communicate(timeout=90)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print(err[-3000:])
    assert proc.returncode == 2, err[-3000:]
    assert "internal error" not in err and "Traceback" not in err, err[-3000:]
    assert f"{what} ({gone})" in err and "deleted while the run was running" in err, err[-3000:]
    assert "destroy() was called" in err
    assert stop_seconds < 60
    assert run_resources(prefix) == []
