"""Streaming on the DirectRunner against the real Pub/Sub emulator."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import random
import shutil
import subprocess
import time
import typing as _t

import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients

#: every test runs against the Pub/Sub emulator
pytestmark = pytest.mark.slow

PROJECT = "plugboard-beam-test"


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator(project=PROJECT) as emu:
        yield emu


def env_for(emu: Emulator) -> dict[str, str]:
    return dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=PROJECT)


def make_sub(topic: str, sub: str) -> tuple[str, str]:
    pub, subscriber = clients()
    t, s = f"projects/{PROJECT}/topics/{topic}", f"projects/{PROJECT}/subscriptions/{sub}"
    try:
        pub.create_topic(name=t)
    except Exception:
        pass
    subscriber.create_subscription(name=s, topic=t)
    return t, s


def drain(sub: str, expect_eos: int = 0, expect: int = 0, timeout: float = 60) -> list[tuple[dict[str, str], bytes]]:
    """Pull until ``expect_eos`` end-of-stream messages / ``expect`` messages arrived (or timeout)."""
    _, subscriber = clients()
    out: list[tuple[dict[str, str], bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (sum(a.get("eos") == "true" for a, _ in out) < expect_eos
                                           or len(out) < expect):
        resp = subscriber.pull(subscription=sub, max_messages=500, timeout=2)
        if resp.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
        out += [(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]
    return out


def test_conformance_streaming(emulator: Emulator, conformance: Path) -> None:
    import sys

    proc = subprocess.run([sys.executable, str(conformance / "check"), "--cli", " ".join(cli_command()),
                           "--run-args=--streaming", "--timeout", "240"],
                          capture_output=True, text=True, timeout=1800, env=env_for(emulator))
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout


def test_tank_twin_20_keys_out_of_order_duplicates_eos_equals_batch(emulator: Emulator, tmp_path: Path) -> None:
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    rng = random.Random(7)
    keys = [f"asset-{i:02d}" for i in range(20)]
    inflows = {k: [round(rng.uniform(0, 10), 3) for _ in range(6 + i % 5)] for i, k in enumerate(keys)}
    topic, sub = make_sub("tank-inflow", "tank-inflow-e2e")
    _, results = make_sub("tank-state", "tank-state-e2e")
    _, dead = make_sub("tank-inflow-dead-letter", "tank-dead-e2e")
    pub, _ = clients()
    messages: list[tuple[bytes, dict[str, str]]] = []
    for k, values in inflows.items():
        for seq, v in enumerate(values):
            messages.append((json.dumps({"inflow": v}).encode(), {"key": k, "seq": str(seq)}))
        messages.append((b"", {"key": k, "seq": str(len(values)), "eos": "true"}))
    messages += rng.sample(messages, 40)  # redeliveries
    rng.shuffle(messages)  # out of order, across and within keys
    malformed = [(b"not json", {"key": "asset-00", "seq": "99"}), (b'{"outflow": 1}', {"key": "asset-01", "seq": "98"}),
                 (b'{"inflow": 1}', {"seq": "1"})]
    for data, attrs in messages[:30] + malformed + messages[30:]:
        pub.publish(topic, data, **attrs).result()
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in keys]))
    t0 = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios", "keys.yaml",
                           "-p", "sensor.subscription=tank-inflow-e2e"], cwd=work, capture_output=True, text=True,
                          timeout=600, env=env_for(emulator))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "3 message(s) went to the dead-letter topic(s)" in proc.stderr
    elapsed = time.monotonic() - t0
    published = drain(results, expect_eos=len(keys))
    by_key: dict[str, list[tuple[int, dict[str, _t.Any]]]] = {}
    eos: dict[str, int] = {}
    for attrs, data in published:
        if attrs.get("eos") == "true":
            eos[attrs["key"]] = int(attrs["count"])
        else:
            by_key.setdefault(attrs["key"], []).append((int(attrs["step"]), json.loads(data)))
    # The same inputs in batch (replayed from a list), written as JSON lines per key.
    (work / "rows.yaml").write_text(yaml.safe_dump([{"key": k, "sensor.rows": v} for k, v in inflows.items()]))
    batch = subprocess.run([*cli_command(), "process", "run", "tank-batch.yaml", "--scenarios", "rows.yaml"],
                           cwd=work, capture_output=True, text=True, timeout=600)
    assert batch.returncode == 0, batch.stderr
    for k in keys:
        expected = [json.loads(line) for line in (work / f"tank-{k}.jsonl").read_text().splitlines()]
        steps = sorted(by_key.get(k, []), key=lambda s: s[0])
        assert [s for s, _ in steps] == list(range(len(expected))), k  # each step published once
        assert [p for _, p in steps] == expected, k
        assert eos[k] == len(inflows[k]) == len(expected)
    dead_letters = drain(dead, expect=3, timeout=30)
    reasons = sorted(a["reason"].split(":")[0] for a, _ in dead_letters)
    assert len(dead_letters) == 3, dead_letters
    assert reasons == ["no 'key' attribute (it names the model instance)", "payload is not JSON",
                       "payload lacks field(s) inflow"]
    print(f"20 keys streamed in {elapsed:.1f} s")


def test_local_runner_reads_and_publishes_with_the_client(emulator: Emulator, tmp_path: Path) -> None:
    """Under LocalProcess (--runner local) the same model uses google-cloud-pubsub directly."""
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    topic, _ = make_sub("tank-inflow", "tank-inflow-local")
    _, results = make_sub("tank-state", "tank-state-local")
    pub, _ = clients()
    inflows = {"a": [1.0, 2.0, 3.0], "b": [10.0, 0.0]}
    msgs = [(json.dumps({"inflow": v}).encode(), {"key": k, "seq": str(i)})
            for k, vs in inflows.items() for i, v in enumerate(vs)]
    msgs += [(b"", {"key": k, "seq": str(len(vs)), "eos": "true"}) for k, vs in inflows.items()]
    for data, attrs in reversed(msgs):
        pub.publish(topic, data, **attrs).result()
    (work / "keys.yaml").write_text("- {key: a}\n- {key: b}\n")
    proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--runner", "local", "--scenarios",
                           "keys.yaml", "-p", "sensor.subscription=tank-inflow-local"], cwd=work,
                          capture_output=True, text=True, timeout=300, env=env_for(emulator))
    assert proc.returncode == 0, proc.stderr
    got = drain(results, expect_eos=2, timeout=30)
    levels = {k: [json.loads(d)["level"] for a, d in sorted(got, key=lambda x: int(x[0]["step"]))
                  if a["key"] == k and a.get("eos") != "true"] for k in inflows}
    assert levels == {"a": [1.0, 2.8, 5.24], "b": [10.0, 8.0]}
