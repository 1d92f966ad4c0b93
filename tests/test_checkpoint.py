"""Durable streaming (``--checkpoint``): the intake journal store, and ``kill -9`` then restart."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import time
import typing as _t

import pytest
import yaml
from google.api_core.exceptions import DeadlineExceeded

from conftest import ROOT, cli_command
from plugboard_beam.streaming.checkpoint import (
    ENDED,
    Checkpoint,
    CheckpointError,
    IntakeSpec,
    Journal,
    ReaderIdentity,
    Record,
    open_store,
)
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients, emulator_fixture
from test_dataio_gcs import BUCKET as GCS_BUCKET
from test_dataio_gcs import gcs_emulator as gcs_emulator
from test_dataio_postgres import postgres_url as postgres_url

READERS = [ReaderIdentity("sensor", "projects/p/subscriptions/in", ("inflow",), "key")]
CONFIG = {"plugboard": {"components": ["a", "b"]}}


def record(i: int, key: str) -> Record:
    return Record(f"m{i}", json.dumps({"inflow": i}).encode(), {"key": key, "seq": str(i)}, 1_000 + i, key)


@pytest.fixture(params=["folder", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "ck") if request.param == "folder" else f"sqlite:///{tmp_path / 'ck.db'}"


# ----------------------------------------------------------------------------- the journal store
def test_journal_append_then_replay_in_pull_order_skipping_ended_keys(store_url: str) -> None:
    journal = Journal(open_store(store_url), "sensor", READERS[0].subscription)
    journal.append([record(0, "a"), record(1, "b")])
    journal.append([record(2, "a"), record(1, "b")])  # a redelivery journaled twice replays once
    journal.append([record(3, "c")])
    again = Journal(open_store(store_url), "sensor", READERS[0].subscription)  # as after a restart
    assert [(r.message_id, r.key) for r in again.replay(set())] == [("m0", "a"), ("m1", "b"), ("m2", "a"), ("m3", "c")]
    assert [r.message_id for r in again.replay({"a"})] == ["m1", "m3"]
    first = again.replay(set())[0]
    assert (first.data, first.attributes, first.publish_micros) == (b'{"inflow": 0}', {"key": "a", "seq": "0"}, 1000)


def test_big_pulls_are_split_into_segments_each_below_the_read_limit(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from plugboard_beam.streaming import checkpoint

    monkeypatch.setattr(checkpoint, "SEGMENT_BYTES", 1000)
    store = open_store(str(tmp_path / "ck"))
    journal = Journal(store, "sensor", READERS[0].subscription)
    journal.append([Record(f"m{i}", b"x" * 300, {"key": "a"}, 0, "a") for i in range(10)])
    assert len(store.list("journal/sensor")) >= 4
    assert [r.message_id for r in journal.replay(set())] == [f"m{i}" for i in range(10)]


def test_torn_and_corrupt_writes_are_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "ck"
    store = open_store(str(root))
    journal = Journal(store, "sensor", READERS[0].subscription)
    journal.append([record(0, "a")])
    folder = root / "journal" / "sensor"
    # a write killed before its rename leaves a tmp file (never listed), a damaged disk a cut segment
    (folder / ".tmp-abc123").write_bytes(b'{"v": 1, "reader": "sensor", "records": [{"id": "m9"')
    good = sorted(folder.glob("*.json"))[0].read_bytes()
    (folder / "99999999999999999999-1-00000000.json").write_bytes(good[: len(good) // 2])
    journal.append([record(1, "a")])
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        replayed = Journal(store, "sensor", READERS[0].subscription).replay(set())
    assert [r.message_id for r in replayed] == ["m0", "m1"]
    assert "99999999999999999999-1-00000000.json of reader 'sensor' is skipped: the segment is not JSON" in caplog.text


def test_hostile_segments_are_validated_not_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import pickle

    store = open_store(str(tmp_path / "ck"))
    sub = READERS[0].subscription
    bad = [
        pickle.dumps({"v": 1}),  # never unpickled: not JSON
        json.dumps({"v": 1, "reader": "sensor", "subscription": sub,
                    "records": [{"id": "x", "data": "%%%", "attrs": {}, "time": 0, "key": "a"}]}).encode(),
        json.dumps({"v": 1, "reader": "sensor", "subscription": sub,
                    "records": [{"id": "x", "data": "", "attrs": {"k": 1}, "time": 0, "key": "a"}]}).encode(),
        json.dumps({"v": 1, "reader": "other", "subscription": sub, "records": []}).encode(),
        json.dumps([1, 2]).encode(),
    ]
    for i, blob in enumerate(bad):
        store.put(f"journal/sensor/{i:020d}-0-0.json", blob)
    journal = Journal(store, "sensor", sub)
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        assert journal.replay(set()) == []
    assert journal.skipped == len(bad)
    for reason in ("not JSON", "not base64", "attributes are not strings", "a segment of reader 'other'",
                   "not a journal segment"):
        assert reason in caplog.text


def test_an_object_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from plugboard_beam.streaming import checkpoint

    store = open_store(str(tmp_path / "ck"))
    store.put("journal/sensor/0.json", b"[" + b" " * 5000 + b"]")
    monkeypatch.setattr(checkpoint, "MAX_OBJECT_BYTES", 4096)
    with pytest.raises(ValueError, match="over the 4096-byte limit"):
        store.get("journal/sensor/0.json")


def test_compaction_drops_only_the_ended_keys_records(store_url: str) -> None:
    store = open_store(store_url)
    journal = Journal(store, "sensor", READERS[0].subscription)
    journal.append([record(0, "a"), record(1, "b")])
    journal.append([record(2, "a")])
    journal.append([record(3, "c")])
    assert journal.compact({"a"}) == 2
    assert len(store.list("journal/sensor")) == 2  # the segment holding only "a" is gone
    assert [r.message_id for r in journal.replay(set())] == ["m1", "m3"]
    assert journal.compact({"a"}) == 0


def test_checkpoint_records_ended_keys_then_compacts_and_a_restart_sees_them(store_url: str) -> None:
    ckpt = Checkpoint.open(store_url, "tank", CONFIG, READERS)
    Journal(ckpt.store, "sensor", READERS[0].subscription).append([record(0, "a"), record(1, "b")])
    ckpt.start()
    failure = {"key": "b", "component": "tank", "step": 0, "message": "boom"}
    ckpt.key_ended("a")
    ckpt.key_ended("b", failure)
    assert ckpt.close(30.0)
    again = Checkpoint.open(store_url, "tank", CONFIG, READERS)
    assert again.ended() == {"a": None, "b": failure}
    spec = again.intake(READERS[0])
    assert spec.ended == frozenset({"a", "b"})
    assert Journal(again.store, "sensor", READERS[0].subscription).replay(set()) == []  # compacted


def test_ended_keys_are_bounded_and_expire(tmp_path: Path) -> None:
    url = str(tmp_path / "ck")
    ckpt = Checkpoint.open(url, "tank", CONFIG, READERS, max_ended=3)
    ckpt.record_ended([(f"k{i}", None) for i in range(2)])
    ckpt.record_ended([(f"k{i}", None) for i in range(2, 5)])
    assert set(ckpt.ended()) == {"k2", "k3", "k4"}  # the oldest beyond max_ended are dropped
    store = open_store(url)
    blob = json.loads(_t.cast(bytes, store.get(ENDED)))
    blob["keys"]["k2"]["t"] -= 3600
    store.put(ENDED, json.dumps(blob).encode())
    assert set(Checkpoint.open(url, "tank", CONFIG, READERS, ended_seconds=60).ended()) == {"k3", "k4"}


def test_a_checkpoint_of_another_model_or_other_readers_is_refused(store_url: str) -> None:
    Checkpoint.open(store_url, "tank", CONFIG, READERS)
    Checkpoint.open(store_url, "tank", CONFIG, READERS)  # the same model: accepted
    with pytest.raises(CheckpointError, match="made by model 'tank' with other component arguments or connections"):
        Checkpoint.open(store_url, "tank", {"plugboard": {"components": ["a"]}}, READERS)
    other = [READERS[0]._replace(subscription="projects/p/subscriptions/elsewhere")]
    with pytest.raises(CheckpointError, match="with other Pub/Sub readers"):
        Checkpoint.open(store_url, "tank", CONFIG, other)


def test_intake_journals_before_returning_and_skips_redeliveries(tmp_path: Path) -> None:
    url = str(tmp_path / "ck")
    spec = IntakeSpec(url, "sensor", READERS[0].subscription, "key", frozenset({"gone"}))
    intake = spec.open()
    assert intake.next_replay(10) == []
    pulled = [("m0", b"{}", {"key": "a"}, 5), ("m1", b"{}", {"key": "gone"}, 6)]
    assert intake.admit(pulled) == [0, 1]
    assert intake.admit([("m0", b"{}", {"key": "a"}, 5), ("m2", b"{}", {"key": "b"}, 7)]) == [1]  # m0 redelivered
    # durable as soon as admit returned: a new process replays it (not the ended key's) and knows its ids
    restarted = spec.open()
    assert [r.message_id for r in restarted.next_replay(1)] == ["m0"]
    assert [r.message_id for r in restarted.next_replay(10)] == ["m2"]
    assert restarted.admit([("m2", b"{}", {"key": "b"}, 7)]) == []


def test_checkpoint_urls_are_checked(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="ftp:// is not supported"):
        open_store("ftp://host/ck")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot create the folder"):
        open_store(str(blocker / "ck"))


@pytest.mark.slow
def test_gcs_store_round_trip(gcs_emulator: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``gs://`` through Beam's FileSystems against the Cloud Storage emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    url = f"gs://{GCS_BUCKET}/ck-{os.getpid()}"
    journal = Journal(open_store(url), "sensor", READERS[0].subscription)
    journal.append([record(0, "a"), record(1, "b")])
    journal.append([record(2, "a")])
    assert [r.message_id for r in journal.replay(set())] == ["m0", "m1", "m2"]
    assert journal.compact({"a"}) == 2
    assert [r.message_id for r in Journal(open_store(url), "sensor", READERS[0].subscription).replay(set())] == ["m1"]
    Checkpoint.open(url, "tank", CONFIG, READERS)
    with pytest.raises(CheckpointError, match="other Pub/Sub readers"):
        Checkpoint.open(url, "tank", CONFIG, [READERS[0]._replace(name="other")])


@pytest.mark.slow
def test_postgres_store_round_trip(postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    with create_engine(postgres_url).begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS pbb_checkpoint"))
    ckpt = Checkpoint.open(postgres_url, "tank", CONFIG, READERS)
    journal = Journal(ckpt.store, "sensor", READERS[0].subscription)
    journal.append([record(0, "a"), record(1, "b")])
    journal.append([record(2, "a")])
    ckpt.record_ended([("a", None)])
    assert ckpt.compact() == 2
    again = Checkpoint.open(postgres_url, "tank", CONFIG, READERS)
    assert again.ended() == {"a": None}
    assert [r.message_id for r in Journal(again.store, "sensor", READERS[0].subscription).replay(set())] == ["m1"]
    with pytest.raises(CheckpointError, match="other component arguments"):
        Checkpoint.open(postgres_url, "tank", {"other": 1}, READERS)


def test_readers_dead_letter_the_keys_the_checkpoint_recorded_as_ended() -> None:
    from apache_beam.io.gcp.pubsub import PubsubMessage

    from plugboard_beam.streaming.pipeline import ReaderDoFn, ReaderRoute
    from plugboard_beam.streaming.resources import ReaderInfo

    info = ReaderInfo(name="sensor", fields=("inflow",), key_attribute="key", subscription="s", topic="t",
                      dead_letter_topic="projects/p/topics/dead", own_subscription=False)
    dofn = ReaderDoFn(ReaderRoute(info, ((0, 0, 1),)), frozenset({"a", "b"}), frozenset({"a"}))
    dofn.setup()
    late = list(dofn.process(PubsubMessage(b'{"inflow": 1}', {"key": "a", "seq": "9"})))
    assert len(late) == 1 and late[0].tag == "dead"
    assert "the key had already ended (recorded in the checkpoint" in late[0].value.attributes["reason"]
    live = list(dofn.process(PubsubMessage(b'{"inflow": 1}', {"key": "b", "seq": "0"})))
    assert [o.tag for o in live] == ["s1"]


def test_watch_tells_the_checkpoint_once_every_stage_and_output_of_a_key_is_done() -> None:
    from plugboard_beam.runners.streaming import Watch
    from plugboard_beam.streaming.codec import Codec

    class Resources:
        control_subscription = "c"
        writer_watch: _t.ClassVar[dict[str, str]] = {}
        writers: _t.ClassVar[dict[str, str]] = {"report": "projects/p/topics/out"}

    codec = Codec("run1", os.urandom(32))
    watch = Watch(Resources(), codec, [], [0, 1], [])  # keys from the messages
    ended: list[tuple[str, _t.Any]] = []
    watch.on_key_ended = lambda key, failure: ended.append((key, failure))

    def done(key: str, stage: int, published: dict[str, int], failure: _t.Any = None) -> None:
        data, attrs = codec.seal("done", {"key": key, "stage": stage, "failure": failure, "published": published})
        watch._handle("control", attrs, data)

    done("a", 0, {"report": 2})
    watch._handle("writer:report", {"key": "a", "step": "0"}, b"{}")
    watch._handle("writer:report", {"key": "a", "step": "1"}, b"{}")
    assert ended == []  # stage 1 has not ended
    done("a", 1, {})
    assert ended == [("a", None)]
    failure = {"key": "b", "component": "tank", "step": 3, "message": "boom"}
    done("b", 0, {"report": 1}, failure)
    done("b", 1, {})
    assert ended == [("a", None)]  # the writer's message for b is not out yet
    watch._handle("writer:report", {"key": "b", "step": "0"}, b"{}")
    assert ended == [("a", None), ("b", failure)]


# ----------------------------------------------------------------------------- the CLI refuses
def run_cli(*args: str, cwd: Path, env: _t.Optional[dict[str, str]] = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or dict(os.environ))


@pytest.mark.slow
def test_checkpoint_without_streaming_or_on_dataflow_is_refused(tmp_path: Path) -> None:
    model = str(ROOT / "specs" / "hello" / "my-model.yaml")
    batch = run_cli("process", "run", model, "--checkpoint", "ck", cwd=tmp_path)
    assert batch.returncode == 2, batch.stderr
    assert "--checkpoint is an option of streaming runs on --runner direct (--streaming)" in batch.stderr
    flow = run_cli("process", "run", model, "--runner", "dataflow", "--streaming", "--dry-run", "--checkpoint", "ck",
                   cwd=tmp_path)
    assert flow.returncode == 2, flow.stderr
    assert "Dataflow keeps its own durable state and exactly-once processing" in flow.stderr
    assert "Traceback" not in batch.stderr + flow.stderr
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow
def test_checkpoint_needs_durable_subscriptions(tmp_path: Path) -> None:
    env = dict(os.environ, PUBSUB_EMULATOR_HOST="127.0.0.1:9", PUBSUB_PROJECT_ID="plugboard-beam-test")
    proc = run_cli("process", "run", str(ROOT / "specs" / "tank" / "tank.yaml"), "--streaming", "--checkpoint", "ck",
                   cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "--checkpoint needs a durable subscription for every PubSubReader: sensor" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a checkpoint is bound to its model: the same run with another tank capacity is refused
    durable = ["-p", "sensor.subscription=tank-in"]
    first = run_cli("process", "run", str(ROOT / "specs" / "tank" / "tank.yaml"), "--streaming", *durable,
                    "--checkpoint", "ck", cwd=tmp_path, env=env)
    assert "cannot set up Pub/Sub topics" in first.stderr and (tmp_path / "ck" / "meta.json").exists()
    changed = run_cli("process", "run", str(ROOT / "specs" / "tank" / "tank.yaml"), "--streaming", *durable,
                      "-p", "tank.capacity=50", "--checkpoint", "ck", cwd=tmp_path, env=env)
    assert changed.returncode == 2, changed.stderr
    assert "was made by model 'tank' with other component arguments or connections" in changed.stderr
    assert "Traceback" not in changed.stderr


# ----------------------------------------------------------------------------- kill -9 and restart
PROJECT = "plugboard-beam-ckpt"
KEYS = [f"tank-{i}" for i in range(5)]


emulator = emulator_fixture(PROJECT)


class Scenario:
    """The tank twin with 5 keys on its own topics: a durable input subscription, and a
    subscription on the output topic made before any run (it sees every output)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.work = root / name
        shutil.copytree(ROOT / "specs" / "tank", self.work)
        (self.work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in KEYS]))
        pub, sub = clients()
        self.topic = f"projects/{PROJECT}/topics/{name}-in"
        self.input_sub = f"projects/{PROJECT}/subscriptions/{name}-in"
        self.out_topic = f"projects/{PROJECT}/topics/{name}-out"
        self.outputs = f"projects/{PROJECT}/subscriptions/{name}-out"
        self.progress = f"projects/{PROJECT}/subscriptions/{name}-progress"
        for t in (self.topic, self.out_topic):
            pub.create_topic(name=t)
        sub.create_subscription(name=self.input_sub, topic=self.topic, ack_deadline_seconds=20)
        sub.create_subscription(name=self.outputs, topic=self.out_topic)
        sub.create_subscription(name=self.progress, topic=self.out_topic)

    def publish(self, readings: dict[str, list[float]]) -> int:
        pub, _ = clients()
        futures = []
        for key, values in readings.items():
            for seq, v in enumerate(values):
                futures.append(pub.publish(self.topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(seq)))
            futures.append(pub.publish(self.topic, b"", key=key, seq=str(len(values)), eos="true"))
        for f in futures:
            f.result()
        return len(futures)

    def command(self, checkpoint: _t.Optional[Path]) -> list[str]:
        args = [*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios", "keys.yaml",
                "-p", f"sensor.topic={self.name}-in", "-p", f"sensor.subscription={self.name}-in",
                "-p", f"report.topic={self.name}-out"]
        return args + (["--checkpoint", str(checkpoint)] if checkpoint else [])

    def start(self, env: dict[str, str], checkpoint: _t.Optional[Path]) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(checkpoint), cwd=self.work, env=env, text=True, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(self.work / "run.log", "a"))

    def outputs_seen(self, sub: str, timeout: float = 2.0) -> list[tuple[dict[str, str], bytes]]:
        _, subscriber = clients()
        out: list[tuple[dict[str, str], bytes]] = []
        while True:
            try:
                resp = subscriber.pull(subscription=sub, max_messages=500, timeout=timeout)
            except DeadlineExceeded:  # (an emulator under load answered after the deadline: nothing yet)
                return out
            if not resp.received_messages:
                return out
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
            out += [(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]

    def left_on_input(self) -> int:
        """Readings still on the input subscription (pulled without acknowledging)."""
        _, subscriber = clients()
        resp = subscriber.pull(subscription=self.input_sub, max_messages=500, timeout=3.0)
        return len(resp.received_messages)


def results(messages: list[tuple[dict[str, str], bytes]]) -> dict[tuple[str, int], dict[str, _t.Any]]:
    """Outputs by (key, step); the same (key, step) published twice must carry the same values."""
    out: dict[tuple[str, int], dict[str, _t.Any]] = {}
    for attrs, data in messages:
        if attrs.get("eos") == "true":
            continue
        step = (attrs["key"], int(attrs["step"]))
        value = json.loads(data)
        assert out.setdefault(step, value) == value, f"{step} published with different values"
    return out


def readings() -> dict[str, list[float]]:
    rng = random.Random(15)
    return {k: [round(rng.uniform(0, 12), 3) for _ in range(6 + i)] for i, k in enumerate(KEYS)}


def kill_when(scenario: Scenario, proc: subprocess.Popen[str], outputs: int, seconds: float,
              journal: _t.Optional[Path] = None) -> int:
    """``kill -9`` the run's process group once ``outputs`` outputs were published, or (0)
    ``seconds`` after the ``journal`` folder first holds a segment (messages acknowledged);
    how many outputs it had published."""
    seen = 0
    deadline = time.monotonic() + 240
    since: _t.Optional[float] = None
    while time.monotonic() < deadline and proc.poll() is None:
        if outputs == 0 and since is None and journal is not None and any(journal.glob("*.json")):
            since = time.monotonic()
        if since is not None and time.monotonic() - since >= seconds:
            break
        if outputs == 0:  # a kill by time: watch the journal closely
            time.sleep(0.01)
            continue
        seen += sum(a.get("eos") != "true" for a, _ in scenario.outputs_seen(scenario.progress, timeout=0.2))
        if seen >= outputs:
            break
    assert proc.poll() is None, f"the run ended before its kill point: {(scenario.work / 'run.log').read_text()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return seen


@pytest.fixture(scope="module")
def uninterrupted(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], _t.Any]:
    scenario = Scenario("ck-base", tmp_path_factory.mktemp("base"))
    scenario.publish(readings())
    proc = subprocess.run(scenario.command(None), cwd=scenario.work, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = results(scenario.outputs_seen(scenario.outputs))
    assert {k for k, _ in expected} == set(KEYS)
    assert len(expected) == sum(len(v) for v in readings().values())
    return expected


def kill_point(attempt: int) -> tuple[int, float]:
    """Where attempt ``attempt`` kills the run (seeded): after a random number of outputs (keys
    half-way, some ended and compacted), or, every other attempt, a random time after its first
    pull was journaled and acknowledged (most readings taken, few or none through the model)."""
    rng = random.Random(1000 + attempt)
    return (0, rng.uniform(0.0, 0.4)) if attempt % 2 else (rng.randint(1, 40), 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(5))
def test_kill_9_then_restart_with_the_checkpoint_loses_nothing_and_applies_nothing_twice(
        attempt: int, emulator: Emulator, uninterrupted: dict[tuple[str, int], _t.Any], tmp_path: Path) -> None:
    outputs, seconds = kill_point(attempt)
    scenario = Scenario(f"ck-crash-{attempt}", tmp_path)
    checkpoint = tmp_path / "checkpoint"
    scenario.publish(readings())
    first = scenario.start(dict(os.environ), checkpoint)
    seen = kill_when(scenario, first, outputs, seconds, journal=checkpoint / "journal" / "sensor")
    seen += sum(a.get("eos") != "true" for a, _ in scenario.outputs_seen(scenario.progress))
    print(f"attempt {attempt}: killed with {seen} output(s) out "
          f"(kill point: {outputs or f'{seconds:.1f} s after the first journaled pull'})")
    restart = subprocess.run(scenario.command(checkpoint), cwd=scenario.work, capture_output=True, text=True,
                             timeout=600, env=dict(os.environ))
    assert restart.returncode == 0, restart.stderr[-3000:]
    assert "Traceback" not in restart.stderr
    assert results(scenario.outputs_seen(scenario.outputs)) == uninterrupted
    assert scenario.left_on_input() == 0  # every reading was acknowledged, once journaled
    # a third run has nothing left to do: every key was recorded as ended
    again = subprocess.run(scenario.command(checkpoint), cwd=scenario.work, capture_output=True, text=True,
                           timeout=600, env=dict(os.environ))
    assert again.returncode == 0, again.stderr[-3000:]
    assert results(scenario.outputs_seen(scenario.outputs, timeout=3.0)) == {}


@pytest.mark.slow
def test_without_a_checkpoint_kill_9_loses_the_readings(emulator: Emulator,
                                                          uninterrupted: dict[tuple[str, int], _t.Any],
                                                          tmp_path: Path) -> None:
    """The bug --checkpoint fixes: Beam's DirectRunner acknowledges what it pulls at once."""
    scenario = Scenario("ck-lossy", tmp_path)
    scenario.publish(readings())
    first = scenario.start(dict(os.environ), None)
    kill_when(scenario, first, 3, 0.0)
    assert scenario.left_on_input() == 0  # acknowledged although most never took effect
    restart = scenario.start(dict(os.environ), None)
    try:
        restart.wait(45)
    except subprocess.TimeoutExpired:  # the keys wait for readings that are gone
        os.killpg(restart.pid, signal.SIGKILL)
        restart.wait(30)
    got = results(scenario.outputs_seen(scenario.outputs))
    assert len(got) < len(uninterrupted)
    assert all(uninterrupted[step] == value for step, value in got.items())  # what came out is right
