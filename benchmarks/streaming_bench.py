#!/usr/bin/env python
"""Streaming on the DirectRunner with the Pub/Sub emulator (a benchmark script, not a test).

    .venv/bin/python benchmarks/streaming_bench.py

Prints end-to-end latency (publish -> result received) p50/p95 for a 3-component model,
sustained messages/s over 10 keys (both without and with ``--checkpoint``), loop-iteration
latency through the feedback topic (a model without readers: one subscription), the same loop
fed by a Pub/Sub reader (two subscriptions: the reader's and the run's feedback subscription),
the time to fail when Pub/Sub is unreachable, and the time to stop on SIGINT.

    .venv/bin/python benchmarks/streaming_bench.py [--only loops|fail|checkpoint]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import typing as _t

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
CLI = str(Path(sys.executable).with_name("plugboard-beam"))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def gaps_ms(path: Path) -> list[float]:
    import itertools

    times = [float(x) for x in path.read_text().split()]
    return [(b - a) * 1000 for a, b in itertools.pairwise(times)]


def loops(env: dict[str, str]) -> None:
    """Loop iterations with one subscription (no reader) and with two (reader + feedback)."""
    from google.cloud import pubsub_v1

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        r = subprocess.run([CLI, "process", "run", str(MODELS / "stream_loop.yaml"), "--streaming"],
                           env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(r.stderr)
        gaps = gaps_ms(Path(tmp, "loop-times.txt"))
        print(f"loop iteration through the feedback topic (1 subscription): n={len(gaps)} "
              f"median={statistics.median(gaps):.0f} ms p95={pct(gaps, 95):.0f} ms "
              f"(whole run {time.time() - t0:.1f} s, {load()})", flush=True)
    pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = "projects/bench-project/topics/bench-loop"
    pub.create_topic(name=topic)
    sub.create_subscription(name="projects/bench-project/subscriptions/bench-loop-sub", topic=topic)
    n = 100
    for i in range(n):
        pub.publish(topic, json.dumps({"x": float(i)}).encode(), key="loop", seq=str(i))
    pub.publish(topic, b"", key="loop", seq=str(n), eos="true").result()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "keys.yaml").write_text("- {key: loop}\n")
        t0 = time.time()
        r = subprocess.run([CLI, "process", "run", str(MODELS / "stream_loop_reader.yaml"), "--streaming",
                            "--scenarios", "keys.yaml"], env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(r.stderr)
        gaps = gaps_ms(Path(tmp, "loop-times.txt"))
        print(f"loop iteration with a reader beside the feedback subscription (2 subscriptions): n={len(gaps)} "
              f"median={statistics.median(gaps):.0f} ms p95={pct(gaps, 95):.0f} ms "
              f"(whole run {time.time() - t0:.1f} s, {load()})", flush=True)


def load() -> str:
    """The machine's load averages (other work shares its cores: figures depend on them)."""
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def fail_fast(env: dict[str, str]) -> None:
    """Seconds to a clear error with Pub/Sub unreachable, and to stop on SIGINT."""
    from plugboard_beam.testing.emulator import free_port

    dead = dict(env, PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    t0 = time.time()
    r = subprocess.run([CLI, "process", "run", str(MODELS / "stream3.yaml"), "--streaming"], env=dead,
                       capture_output=True, text=True, timeout=120)
    print(f"Pub/Sub unreachable: exit {r.returncode} after {time.time() - t0:.1f} s: {r.stderr.strip()[-200:]}",
          flush=True)
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for make in (lambda: pub.create_topic(name="projects/bench-project/topics/bench-in"),
                 lambda: sub.create_subscription(name="projects/bench-project/subscriptions/bench-in-sub",
                                                 topic="projects/bench-project/topics/bench-in")):
        try:
            make()
        except exceptions.AlreadyExists:
            pass
    proc = subprocess.Popen([CLI, "process", "run", str(MODELS / "stream3.yaml"), "--streaming"], env=env,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(15)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    print(f"SIGINT while streaming: exit {proc.returncode} after {time.time() - t0:.1f} s: {err.strip()[-300:]}",
          flush=True)


def latency_throughput(env: dict[str, str], checkpoint: bool) -> None:
    """Latency and throughput of stream3.yaml (keys from the messages), without or with
    ``--checkpoint`` (a fresh folder: each pull is journaled and fsync'ed before it is acknowledged)."""
    from google.cloud import pubsub_v1

    pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    t_in = "projects/bench-project/topics/bench-in"
    label = "with --checkpoint" if checkpoint else "without --checkpoint"
    tmp = tempfile.mkdtemp(prefix="bench-checkpoint-")
    extra = ["--checkpoint", str(Path(tmp, "checkpoint"))] if checkpoint else []
    received: dict[tuple[str, int], float] = {}
    lock = threading.Lock()

    def on_result(m: _t.Any) -> None:
        now = time.time()
        if m.attributes.get("eos") != "true":
            with lock:
                received[(m.attributes["key"], int(m.attributes["step"]))] = now
        m.ack()

    # a fresh subscription per variant: one a cancelled streaming pull held may redeliver only
    # once its lease (60 s) has run out
    out_sub = f"projects/bench-project/subscriptions/bench-out-{'ckpt' if checkpoint else 'plain'}"
    sub.create_subscription(name=out_sub, topic="projects/bench-project/topics/bench-out")
    stream = sub.subscribe(out_sub, on_result)
    proc = subprocess.Popen([CLI, "process", "run", str(MODELS / "stream3.yaml"), "--streaming", *extra],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        # warm up until the pipeline answers
        sent: dict[tuple[str, int], float] = {}
        t0 = time.time()
        seq = 0
        while not received and time.time() - t0 < 120 and proc.poll() is None:
            sent[("warm", seq)] = time.time()
            pub.publish(t_in, json.dumps({"x": seq}).encode(), key="warm", seq=str(seq)).result()
            seq += 1
            time.sleep(0.5)
        print(f"pipeline answering {time.time() - t0:.1f} s after start", flush=True)
        if not received:
            proc.send_signal(signal.SIGINT)
            print(proc.communicate(timeout=60)[1])
            return
        # latency: 50 messages, 100 ms apart
        for i in range(50):
            sent[("lat", i)] = time.time()
            pub.publish(t_in, json.dumps({"x": i}).encode(), key="lat", seq=str(i)).result()
            time.sleep(0.1)
        deadline = time.time() + 60
        while time.time() < deadline and sum(1 for k in received if k[0] == "lat") < 50:
            time.sleep(0.05)
        if not any(k[0] == "lat" for k in received):
            print("no results for the latency messages:", sorted(received)[:5])
        lat = [(received[k] - sent[k]) * 1000 for k in sent if k[0] == "lat" and k in received]
        print(f"latency publish->result, 3 components, {label}: n={len(lat)} p50={pct(lat, 50):.0f} ms "
              f"p95={pct(lat, 95):.0f} ms ({load()})")
        # throughput: 2000 messages over 10 keys, published as fast as possible
        n, keys = 2000, 10
        futures = []
        t_start = time.time()
        for i in range(n):
            k = f"tp{i % keys}"
            futures.append(pub.publish(t_in, json.dumps({"x": i}).encode(), key=k, seq=str(i // keys)))
        for f in futures:
            f.result()
        deadline = time.time() + 300
        while time.time() < deadline and sum(1 for k in received if k[0].startswith("tp")) < n:
            time.sleep(0.05)
        done = [received[k] for k in received if k[0].startswith("tp")]
        elapsed = max(done) - t_start if done else float("nan")
        print(f"sustained throughput, 10 keys, {label}: {len(done)} messages in {elapsed:.1f} s = "
              f"{len(done) / elapsed:.0f} messages/s ({load()})")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        stream.cancel()
        shutil.rmtree(tmp, ignore_errors=True)


def journal_cost() -> None:
    """What ``--checkpoint`` adds to each pull on the local disk: one durable journal segment
    (tmp file + fsync + rename + fsync of the folder), for pulls of 1 and of 500 messages."""
    from plugboard_beam.streaming.checkpoint import IntakeSpec

    with tempfile.TemporaryDirectory() as tmp:
        intake = IntakeSpec(str(Path(tmp, "ck")), "reader", "projects/p/subscriptions/s", "key", frozenset()).open()
        n = 0
        for size in (1, 500):
            times = []
            for _ in range(40 if size == 1 else 10):
                batch = [(str(n + i), json.dumps({"x": float(i)}).encode(), {"key": f"k{i % 10}", "seq": str(i)}, 0)
                         for i in range(size)]
                n += size
                t0 = time.perf_counter()
                intake.admit(batch)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"journal append per pull of {size} message(s): median {statistics.median(times):.1f} ms "
                  f"p95 {pct(times, 95):.1f} ms ({load()})", flush=True)


def main() -> None:
    from google.cloud import pubsub_v1

    from plugboard_beam.testing.emulator import Emulator

    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
    with Emulator(project="bench-project") as emu:
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID="bench-project",
                   PYTHONPATH=str(MODELS))
        if only:
            {"loops": loops, "fail": fail_fast, "checkpoint": lambda e: None}[only](env)
            if only != "checkpoint":
                return
        pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        pub.create_topic(name="projects/bench-project/topics/bench-in")
        pub.create_topic(name="projects/bench-project/topics/bench-out")
        sub.create_subscription(name="projects/bench-project/subscriptions/bench-in-sub",
                                topic="projects/bench-project/topics/bench-in")
        latency_throughput(env, checkpoint=False)
        latency_throughput(env, checkpoint=True)
        journal_cost()
        if only:
            return
        loops(env)
        fail_fast(env)


if __name__ == "__main__":
    main()
