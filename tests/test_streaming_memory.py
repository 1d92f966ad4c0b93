"""Bounded memory in a long streaming run whose keys come from the messages (issue 15.4).

The emulator tests measure the resident memory of a real run (the CLI in a subprocess):
ended keys, the open-key cap and forged messages on the output topic.
"""

from __future__ import annotations

import json
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

from conftest import ROOT, cli_command
from plugboard_beam.runners.streaming import Watch
from plugboard_beam.streaming.codec import Codec, new_secret
from plugboard_beam.streaming.keystate import EndedKeys
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients, emulator_fixture, resource_paths

PROJECT = "plugboard-beam-memory"


# ------------------------------------------------------------------ without the emulator
def test_ended_keys_are_bounded_in_number_and_time() -> None:
    now = [0.0]
    ended = EndedKeys(seconds=10.0, capacity=100, clock=lambda: now[0])
    for i in range(1000):
        ended.add(f"k{i}", "" if i % 2 else '{"failed": 1}')
    assert len(ended) == 100
    assert ended.get("k0") is None and ended.get("k999") == "" and ended.get("k998") == '{"failed": 1}'
    now[0] = 5.0
    ended.add("late", "")
    now[0] = 10.5  # the first 100 are older than 10 s
    assert ended.get("k999") is None and ended.get("late") == "" and len(ended) == 1


def test_watch_ignores_forged_output_messages() -> None:
    """Forged messages on an output topic (unknown keys, any steps) leave nothing behind."""
    watch = Watch(None, Codec("run1", new_secret(), {}), ["a"], [0], ["report"])
    rng = random.Random(1)
    for i in range(20_000):
        key = "a" if i % 10 == 0 else f"forged-{i}"
        watch._handle("writer:report", {"key": key, "step": str(rng.randrange(10**9))}, b"{}")
    # only the known key is followed, and of it at most the steps seen so far
    assert set(watch.steps_seen) <= {("a", "report")}
    assert not watch.expected and not watch.ended_keys
    assert len(watch.steps_seen.get(("a", "report"), set())) <= 2_000


def test_sequence_state_of_a_key_is_cleared_at_its_end_of_stream() -> None:
    from plugboard_beam.library.pubsub import Parsed
    from plugboard_beam.streaming.keystate import ForgetfulSequenceDoFn
    from test_streaming_dofns import reader_route, run_dofn

    class State:
        blob: _t.Optional[bytes] = None

        def read(self) -> _t.Optional[bytes]:
            return self.blob

        def write(self, blob: bytes) -> None:
            self.blob = blob

        def clear(self) -> None:
            self.blob = None

    state, dofn = State(), ForgetfulSequenceDoFn(reader_route())
    data = Parsed("a", None, False, (1.0,))
    out = run_dofn(dofn, ("a", ("m1", data)), state=state)
    assert state.blob is not None and [o.value[1][1] for o in out] == [0]
    out = run_dofn(dofn, ("a", ("m2", Parsed("a", None, True, ()))), state=state)
    assert [o.value[1][1:] for o in out] == [(1, [], True)]  # the end of stream, numbered 1
    assert state.blob is None  # nothing kept for the ended key


@pytest.mark.slow
def test_direct_runner_forgets_keys_whose_state_was_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    import apache_beam as beam
    from apache_beam.coders import BytesCoder
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.direct.evaluation_context import EvaluationContext
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    from plugboard_beam.lowering import patches

    assert patches.drop_empty_keyed_state()
    contexts: list[_t.Any] = []
    init = EvaluationContext.__init__

    def recording(self: _t.Any, *args: _t.Any, **kwargs: _t.Any) -> None:
        init(self, *args, **kwargs)
        contexts.append(self)

    monkeypatch.setattr(EvaluationContext, "__init__", recording)

    class EndsKeys(beam.DoFn):
        STATE = ReadModifyWriteStateSpec("s", BytesCoder())

        def process(self, element: tuple[str, int],
                    state: _t.Any = beam.DoFn.StateParam(STATE)) -> _t.Iterator[str]:  # noqa: B008
            key, _ = element
            if state.read() is None:
                state.write(b"open")
            elif not key.startswith("keep-"):
                state.clear()
            yield key

    stream = TestStream()
    for i in range(60):
        key = f"keep-{i}" if i % 10 == 0 else f"k{i}"
        stream = stream.add_elements([(key, 0)]).add_elements([(key, 1)])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(flags=[], streaming=True, runner="BundleBasedDirectRunner")
    with beam.Pipeline(options=options) as p:
        _ = p | stream | beam.ParDo(EndsKeys())
    (ctx,) = contexts
    sizes = sorted(len(t) for t in ctx._transform_keyed_states.values())
    # the stateful step's table: only the 6 keys that kept their state have an entry (60
    # without the patch); (the TestStream's own has 1)
    assert sizes[-1] == 6, sizes


# ------------------------------------------------------------------ on the emulator
emulator = emulator_fixture(PROJECT)


topic, subscription = resource_paths(PROJECT)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Run:
    """The tank twin (loops fused: one stage, no feedback round trip) streaming from
    ``<tag>-in`` to ``<tag>-out``, its dead letters on ``<tag>-in-dead-letter``."""

    def __init__(self, emu: Emulator, tmp_path: Path, tag: str, *args: str, scenarios: _t.Sequence[str] = ()) -> None:
        self.pub, self.sub = clients()
        self.in_topic, self.out_topic = topic(f"{tag}-in"), topic(f"{tag}-out")
        for t in (self.in_topic, self.out_topic, topic(f"{tag}-in-dead-letter")):
            self.pub.create_topic(name=t)
        self.results, self.dead = subscription(f"{tag}-results"), subscription(f"{tag}-dead")
        self.sub.create_subscription(name=self.results, topic=self.out_topic)
        self.sub.create_subscription(name=self.dead, topic=topic(f"{tag}-in-dead-letter"))
        work = tmp_path / tag
        shutil.copytree(ROOT / "specs" / "tank", work)
        extra: list[str] = []
        if scenarios:
            (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in scenarios]))
            extra = ["--scenarios", "keys.yaml"]
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=PROJECT)
        self.proc = subprocess.Popen(
            [*cli_command(), "process", "run", "tank.yaml", "--streaming", "--loops", "fused",
             "-p", f"sensor.topic={tag}-in", "-p", f"report.topic={tag}-out", *extra, *args],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(self.pub.list_topic_subscriptions(topic=self.in_topic)):
            assert self.proc.poll() is None, self.proc.communicate()[1][-3000:]
            time.sleep(0.3)
        assert list(self.pub.list_topic_subscriptions(topic=self.in_topic)), "the run never subscribed"

    def send(self, key: str, inflows: _t.Sequence[float], eos: bool = True, first: int = 0) -> list[_t.Any]:
        futures = [self.pub.publish(self.in_topic, json.dumps({"inflow": v}).encode(), key=key, seq=str(first + i))
                   for i, v in enumerate(inflows)]
        if eos:
            futures.append(self.pub.publish(self.in_topic, b"", key=key, seq=str(first + len(inflows)), eos="true"))
        return futures

    def pull(self, sub: str, until: _t.Callable[[list[dict[str, str]]], bool], timeout: float) -> list[dict[str, str]]:
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(got):
            assert self.proc.poll() is None, self.proc.communicate()[1][-3000:]
            resp = self.sub.pull(subscription=sub, max_messages=1000, timeout=3)
            if resp.received_messages:
                self.sub.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
            got += [dict(m.message.attributes) for m in resp.received_messages]
        return got

    def ended(self, n: int, timeout: float = 400) -> list[dict[str, str]]:
        """Pull results until ``n`` keys have published their end of stream."""
        got = self.pull(self.results, lambda g: sum(a.get("eos") == "true" for a in g) >= n, timeout)
        assert sum(a.get("eos") == "true" for a in got) >= n, "not every key ended"
        return got

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.mark.slow
def test_ended_keys_leave_no_memory(emulator: Emulator, tmp_path: Path) -> None:
    """3,000 keys that end after warm-up grow the run by well under 1 KB each (it was ~2.2 KB:
    a tombstone per key in Beam state and the DirectRunner's tables, the driver's sets)."""
    run = Run(emulator, tmp_path, "ended", "--forget-ended-keys", "2")
    try:
        def wave(first: int, n: int) -> None:
            futures = [f for i in range(first, first + n) for f in run.send(f"asset-{i}", [1.0])]
            for f in futures:
                f.result()
            run.ended(n)

        wave(0, 1000)  # warm-up: imports, caches, allocator arenas
        time.sleep(3)
        before = rss_kb(run.proc.pid)
        wave(1000, 3000)
        time.sleep(3)  # (ended keys are forgotten after 2 s)
        after = rss_kb(run.proc.pid)
    finally:
        err = run.stop()
    per_key = (after - before) / 3000
    print(f"RSS {before} -> {after} kB: {per_key * 1024:.0f} bytes per ended key")
    assert run.proc.returncode == 130, err[-3000:]
    assert "4000 key(s) had ended" in err, err[-3000:]
    assert per_key < 1.0, f"{per_key:.2f} kB per ended key"


@pytest.mark.slow
def test_open_key_cap_dead_letters_new_keys_and_reports_them(emulator: Emulator, tmp_path: Path) -> None:
    run = Run(emulator, tmp_path, "cap", "--max-open-keys", "3")
    keys = [f"k{i}" for i in range(5)]
    try:
        for k in keys:  # five keys open (no end of stream yet): two are one too many
            run.send(k, [1.0], eos=False)[0].result()
        letters = run.pull(run.dead, lambda g: len(g) >= 2, 120)
        refused = {a["key"] for a in letters}
        assert len(letters) == 2 and len(refused) == 2, letters
        assert all(a["reason"].startswith("too many open keys: 3 keys were open (--max-open-keys 3)")
                   for a in letters), letters
        admitted = [k for k in keys if k not in refused]
        for k in admitted:  # they end; then the refused keys are replayed from their start
            run.send(k, [2.0], eos=True, first=1)[0].result()
        got = run.ended(3)
        for k in sorted(refused):
            for f in run.send(k, [1.0, 2.0]):
                f.result()
        got += run.ended(2)
    finally:
        err = run.stop()
    assert run.proc.returncode == 130, err[-3000:]
    steps: dict[str, set[int]] = {}
    for a in got:
        if a.get("eos") != "true":
            steps.setdefault(a["key"], set()).add(int(a["step"]))
    assert steps == {k: {0, 1} for k in keys}, steps
    assert "2 message(s) of new keys were refused because too many keys were open (--max-open-keys)" in err, err


@pytest.mark.slow
def test_forged_output_messages_cost_the_driver_nothing(emulator: Emulator, tmp_path: Path) -> None:
    """A run with known keys watches its output topic: 30,000 forged messages there (random
    keys and steps) do not grow it (they grew it ~1.4 KB each), and the run still ends
    exactly."""
    run = Run(emulator, tmp_path, "forged", scenarios=["a", "b"])
    try:
        time.sleep(5)  # the run is up and watching its output topic
        before = rss_kb(run.proc.pid)
        rng = random.Random(5)
        futures = [run.pub.publish(run.out_topic, b"{}", key=f"forged-{rng.randrange(10**9)}",
                                   step=str(rng.randrange(10**6))) for _ in range(30_000)]
        futures += [run.pub.publish(run.out_topic, b"{}", key="a", step=str(10**6 + i)) for i in range(2_000)]
        for f in futures:
            f.result()
        time.sleep(15)  # the driver pulls them all (500 per pull)
        after = rss_kb(run.proc.pid)
        for k in ("a", "b"):
            for f in run.send(k, [1.0, 2.0]):
                f.result()
        _, err = run.proc.communicate(timeout=180)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
    print(f"RSS {before} -> {after} kB after 32,000 forged messages")
    assert run.proc.returncode == 0, err[-3000:]
    assert after - before < 12_000, f"{after - before} kB"
