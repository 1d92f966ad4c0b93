"""Events in streaming (Pub/Sub emulator): the public event cases, an event edge closing a loop
through the feedback topic, and events leaving the model on a topic (``PubSubEventWriter``)."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import shlex
import shutil
import subprocess
import sys
import time
import typing as _t

from conftest import cli_command
import pytest

from plugboard_beam.testing.emulator import Emulator

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
MODELS = HERE / "events_models"
PROJECT = "plugboard-beam-events"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(project=PROJECT) as emu:
        yield emu


def env_for(emu: Emulator, cwd: Path) -> dict[str, str]:
    return dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=PROJECT,
                GOOGLE_CLOUD_PROJECT=PROJECT, PYTHONPATH=f"{cwd}{os.pathsep}{HERE}")


def run(emu: Emulator, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", *args], cwd=cwd, env=env_for(emu, cwd),
                          capture_output=True, text=True, timeout=300)


def test_public_event_cases_streaming(emulator: Emulator) -> None:
    from test_events_engines import CASES, checker

    for extra in ("", " --stages component"):
        proc = subprocess.run([sys.executable, str(checker()), "--cli", shlex.join(cli_command()),
                               "--cases", str(CASES), "--no-invalid", f"--run-args=--streaming{extra}",
                               "--timeout", "240"],
                              capture_output=True, text=True, timeout=900, env=env_for(emulator, HERE))
        assert proc.returncode == 0 and "3 passed, 0 failed" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("extra", [[], ["--stages", "component"]])
def test_event_edge_closing_a_loop_goes_through_the_feedback_topic(emulator: Emulator, tmp_path: Path,
                                                                   extra: list[str]) -> None:
    for f in ("loopm.py", "loop.yaml"):
        shutil.copy(MODELS / f, tmp_path / f)
    compiled = subprocess.run([*cli_command(), "process", "compile", "loop.yaml", "--streaming"], cwd=tmp_path,
                              env=env_for(emulator, tmp_path), capture_output=True, text=True, timeout=120)
    assert "r2 =ping=> r1: one step later; through a Pub/Sub feedback topic" in compiled.stdout, compiled.stderr
    local = run(emulator, tmp_path, "loop.yaml", "--runner", "local")
    assert local.returncode == 0, local.stderr
    want = (tmp_path / "r1.txt").read_text()
    assert "ping r2:1:" in want
    (tmp_path / "r1.txt").unlink()
    proc = run(emulator, tmp_path, "loop.yaml", "--streaming", *extra)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r1.txt").read_text() == want


def _pull_all(sub: str, eos: int, timeout: float = 60) -> list[tuple[dict[str, str], bytes]]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    out: list[tuple[dict[str, str], bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and sum(a.get("eos") == "true" for a, _ in out) < eos:
        resp = subscriber.pull(subscription=sub, max_messages=500, timeout=2)
        if resp.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
        out += [(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]
    return out


@pytest.mark.parametrize("engine", [["--runner", "local"], ["--streaming"], []])
def test_events_leave_the_model_on_a_topic_for_5_keys(emulator: Emulator, tmp_path: Path,
                                                      engine: list[str]) -> None:
    from google.cloud import pubsub_v1

    shutil.copy(MODELS / "alarms.py", tmp_path / "alarms.py")
    shutil.copy(MODELS / "alarms.yaml", tmp_path / "model.yaml")
    (tmp_path / "scen.csv").write_text("key,level.every\n" + "".join(f"asset-{i},{i + 2}\n" for i in range(5)))
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    topic = f"projects/{PROJECT}/topics/alarms"
    sub = f"projects/{PROJECT}/subscriptions/alarms-{len(engine)}-{int(time.time() * 1000)}"
    try:
        pubsub_v1.PublisherClient().create_topic(name=topic)
    except Exception:
        pass
    pubsub_v1.SubscriberClient().create_subscription(name=sub, topic=topic)
    proc = run(emulator, tmp_path, "model.yaml", "--scenarios", "scen.csv", *engine)
    assert proc.returncode == 0, proc.stderr
    msgs = _pull_all(sub, eos=5)
    rows = sorted((a["key"], int(a["step"]), a["event_type"], json.loads(d)["data"]["level"], json.loads(d)["source"])
                  for a, d in msgs if a.get("eos") != "true")
    # key asset-i alarms on steps where step % (i + 2) == 1, of steps 0..5
    want = sorted((f"asset-{i}", s, "alarm", s, "level") for i in range(5) for s in range(6) if s % (i + 2) == 1)
    assert rows == want
    eos: dict[str, _t.Any] = {a["key"]: int(a["count"]) for a, _ in msgs if a.get("eos") == "true"}
    assert eos == {f"asset-{i}": sum(1 for s in range(6) if s % (i + 2) == 1) for i in range(5)}


@pytest.mark.parametrize("engine", [["--runner", "local"], ["--streaming"]])
def test_messages_become_events_for_the_right_key(emulator: Emulator, tmp_path: Path, engine: list[str]) -> None:
    import random

    from google.cloud import pubsub_v1

    shutil.copy(MODELS / "events_in.py", tmp_path / "events_in.py")
    shutil.copy(MODELS / "events_in.yaml", tmp_path / "model.yaml")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    pub, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = f"projects/{PROJECT}/topics/alarms-in"
    sub_name = f"alarms-in-{engine[-1].strip('-')}"
    try:
        pub.create_topic(name=topic)
    except Exception:
        pass
    subscriber.create_subscription(name=f"projects/{PROJECT}/subscriptions/{sub_name}", topic=topic)
    rng = random.Random(3)
    levels = {f"asset-{i}": [10 * i + j for j in range(2 + i)] for i in range(5)}
    msgs = [(json.dumps({"data": {"level": v}}).encode(), {"key": k, "seq": str(s)})
            for k, vs in levels.items() for s, v in enumerate(vs)]
    msgs += [(b"", {"key": k, "seq": str(len(vs)), "eos": "true"}) for k, vs in levels.items()]
    msgs += rng.sample(msgs, 5)  # redeliveries
    rng.shuffle(msgs)
    for data, attrs in msgs:
        pub.publish(topic, data, **attrs).result()
    (tmp_path / "keys.yaml").write_text("".join(f"- {{key: {k}}}\n" for k in levels))
    proc = run(emulator, tmp_path, "model.yaml", "--scenarios", "keys.yaml", "-p", f"rx.subscription={sub_name}",
               *engine)
    assert proc.returncode == 0, proc.stderr
    for k, vs in levels.items():
        # the message of seq s is the converter's step s, so its event belongs to tick s
        assert (tmp_path / f"{k}.txt").read_text().splitlines() == [
            f"level={v} tick={s}" for s, v in enumerate(vs)], k
