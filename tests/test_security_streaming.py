"""Streaming as a hostile publisher would try it, against the Pub/Sub emulator (issue 8).

Every run here publishes its inputs only after the run's own topics exist, then an attacker
thread replays and tampers with every message it can see: the user's input and output topics
and the run's internal feedback and control topics.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import pickle
import random
import shutil
import signal
import subprocess
import threading
import time
import typing as _t

import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients, emulator_fixture, resource_paths

PROJECT = "plugboard-beam-sec"
pytestmark = pytest.mark.slow


emulator = emulator_fixture(PROJECT)


def env_for(emu: Emulator) -> dict[str, str]:
    return dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=PROJECT)


topic, subscription = resource_paths(PROJECT)


def make_sub(topic_name: str, sub_name: str) -> tuple[str, str]:
    from google.api_core import exceptions

    pub, sub = clients()
    t, s = topic(topic_name), subscription(sub_name)
    try:
        pub.create_topic(name=t)
    except exceptions.AlreadyExists:
        pass
    sub.create_subscription(name=s, topic=t)
    return t, s


def pull_all(sub: str, until: _t.Callable[[list[tuple[dict[str, str], bytes]]], bool], timeout: float,
             ) -> list[tuple[dict[str, str], bytes]]:
    _, subscriber = clients()
    out: list[tuple[dict[str, str], bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        resp = subscriber.pull(subscription=sub, max_messages=500, timeout=2)
        if resp.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
        out += [(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]
    return out


class Boom:
    """Unpickling runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def simulate(inflows: list[float]) -> list[dict[str, _t.Any]]:
    """specs/tank by hand: level(t) = clamp(level(t-1) + inflow(t) - outflow(t-1)), outflow = 0.2 level."""
    level, outflow, rows = 0.0, 0.0, []
    for inflow in inflows:
        level = min(100.0, max(0.0, level + inflow - outflow))
        shown = round(level, 6)
        outflow = round(0.2 * shown, 6)
        rows.append({"level": shown, "outflow": outflow, "high": shown > 20.0})
    return rows


def results_by_key(published: list[tuple[dict[str, str], bytes]]) -> tuple[dict[str, list[_t.Any]], dict[str, int]]:
    steps: dict[str, dict[int, _t.Any]] = {}
    eos: dict[str, int] = {}
    for attrs, data in published:
        if attrs.get("eos") == "true":
            eos[attrs["key"]] = int(attrs["count"])
        else:
            steps.setdefault(attrs["key"], {})[int(attrs["step"])] = json.loads(data)
    return {k: [v[i] for i in sorted(v)] for k, v in steps.items()}, eos


def complete(published: list[tuple[dict[str, str], bytes]], keys: _t.Sequence[str]) -> bool:
    """Every key's end of stream and every data message before it have arrived."""
    by_key, eos = results_by_key(published)
    return all(k in eos and len(by_key.get(k, [])) == eos[k] for k in keys)


class Attacker(threading.Thread):
    """Watches every topic of the run (and the user's input and output topics) and republishes
    each message it sees as: an exact copy, a copy whose data is a malicious pickle, copies
    with each attribute removed and with each attribute garbled, and garbage. Output messages
    are also replayed onto the input and feedback topics; internal messages onto the input topic."""

    def __init__(self, run_prefix: str, input_topic: str, output_topic: str, marker: Path) -> None:
        super().__init__(daemon=True)
        self.run_prefix = run_prefix
        self.input_topic, self.output_topic = input_topic, output_topic
        self.marker = marker
        self.stop = threading.Event()
        self.watched: dict[str, str] = {}  # topic -> attacker subscription
        self.sent: dict[str, int] = {}
        self.run_topics: set[str] = set()
        self.pub, self.sub = clients()
        self.rng = random.Random(3)
        self.errors: list[str] = []
        self.handled: set[tuple[str, bytes, tuple[tuple[str, str], ...]]] = set()  # never attack our own copies

    def watch(self, topic_path: str) -> None:
        name = f"attacker-{len(self.watched)}-{int(time.time() * 1000) % 10**8}"
        self.sub.create_subscription(name=subscription(name), topic=topic_path)
        self.watched[topic_path] = subscription(name)

    def discover(self) -> None:
        for t in self.pub.list_topics(project=f"projects/{PROJECT}"):
            if t.name.rsplit("/", 1)[-1].startswith(self.run_prefix) and t.name not in self.watched:
                self.watch(t.name)
                self.run_topics.add(t.name)

    def tampered(self, data: bytes, attrs: dict[str, str]) -> list[tuple[bytes, dict[str, str]]]:
        evil = pickle.dumps(Boom(self.marker))
        out = [(data, attrs), (evil, attrs), (b"\x80\x04garbage" + os.urandom(8), attrs)]
        for name in attrs:
            out.append((data, {k: v for k, v in attrs.items() if k != name}))
            garbled = self.rng.choice(["", "0", "-1", "x" * 50, "../../x", attrs[name][::-1]])
            out.append((data, {**attrs, name: garbled}))
            out.append((evil, {k: v for k, v in attrs.items() if k != name}))
        return out

    def attack(self, topic_path: str, data: bytes, attrs: dict[str, str]) -> None:
        copies: list[tuple[str, bytes, dict[str, str]]] = []
        if topic_path == self.input_topic:
            # The data channel: a publisher may add data, so keep copies that are not new data.
            evil = pickle.dumps(Boom(self.marker))
            copies += [(topic_path, data, attrs), (topic_path, evil, attrs),
                       (topic_path, data, {k: v for k, v in attrs.items() if k != "key"}),
                       (topic_path, data, {**attrs, "seq": "x1"}),
                       (topic_path, data, {**attrs, "key": "../../escaped"}),
                       (topic_path, evil, {**attrs, "pbb": "chunk", "mac": "00" * 32, "edge": "0"})]
        elif topic_path == self.output_topic:
            copies += [(self.input_topic, d, a) for d, a in self.tampered(data, attrs)]
            copies += [(t, data, attrs) for t in self.run_topics]
        else:  # the run's feedback or control topic
            copies += [(topic_path, d, a) for d, a in self.tampered(data, attrs)]
            copies += [(self.input_topic, data, attrs)]
            # The bug of old: feedback attribute without an edge.
            copies.append((topic_path, pickle.dumps(Boom(self.marker)), {"pbb": "chunk", "key": attrs.get("key", "k")}))
        for t, d, a in copies:
            self.handled.add((t, d, tuple(sorted(a.items()))))
            self.pub.publish(t, d, **a)
            self.sent[t] = self.sent.get(t, 0) + 1

    def run(self) -> None:
        try:
            for t in (self.input_topic, self.output_topic):
                self.watch(t)
            while not self.stop.is_set():
                self.discover()
                for t, s in list(self.watched.items()):
                    try:
                        resp = self.sub.pull(subscription=s, max_messages=100, timeout=0.5)
                    except Exception:
                        continue
                    if resp.received_messages:
                        self.sub.acknowledge(subscription=s, ack_ids=[m.ack_id for m in resp.received_messages])
                    for m in resp.received_messages:
                        data, attrs = bytes(m.message.data), dict(m.message.attributes)
                        fingerprint = (t, data, tuple(sorted(attrs.items())))
                        if fingerprint not in self.handled:
                            self.handled.add(fingerprint)
                            self.attack(t, data, attrs)
                time.sleep(0.05)
        except Exception as exc:
            self.errors.append(repr(exc))


def tank_copy(tmp_path: Path, name: str, extra_writer: bool = False) -> Path:
    work = tmp_path / name
    shutil.copytree(ROOT / "specs" / "tank", work)
    if extra_writer:
        model = yaml.safe_load((work / "tank.yaml").read_text())
        args = model["plugboard"]["process"]["args"]
        args["components"].append({"type": "plugboard_beam.library.JsonLinesWriter",
                                   "args": {"name": "log", "path": "out/log-{key}.jsonl", "fields": ["level"]}})
        args["connectors"].append({"source": "tank.level", "target": "log.level"})
        (work / "tank.yaml").write_text(yaml.safe_dump(model))
        (work / "out").mkdir()
    return work


def wait_for_run_topics(prefix: str, timeout: float = 60) -> list[str]:
    pub, _ = clients()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = [t.name for t in pub.list_topics(project=f"projects/{PROJECT}")
                 if t.name.rsplit("/", 1)[-1].startswith(prefix)]
        if any(n.endswith("-control") for n in names) and any(n.endswith("-feedback") for n in names):
            return names
        time.sleep(0.2)
    raise AssertionError("the run's topics never appeared")


def run_resources(prefix: str) -> list[str]:
    pub, sub = clients()
    names = [t.name for t in pub.list_topics(project=f"projects/{PROJECT}")]
    names += [s.name for s in sub.list_subscriptions(project=f"projects/{PROJECT}")]
    return [n for n in names if n.rsplit("/", 1)[-1].startswith(prefix)]


def test_tank_twin_replayed_and_tampered_publishes_exact_levels_and_stops_on_ctrl_c(
        emulator: Emulator, tmp_path: Path) -> None:
    """The "done when" scenario: 5 keys, shuffled sequenced messages, every published and
    internal message replayed and tampered with; traversal keys; then Ctrl-C."""
    work = tank_copy(tmp_path, "tank", extra_writer=True)
    marker = tmp_path / "PWNED"
    in_topic, _ = make_sub("sec-in", "sec-in-probe")
    out_topic, results = make_sub("sec-out", "sec-out-results")
    _, dead = make_sub("sec-in-dead-letter", "sec-dead")
    before = {n for n in run_resources("pbb-tank-")}
    # stderr to a file: the run logs each dead letter, and a pipe nobody reads until the end fills
    # (64 KiB) and blocks the run's writes
    err_path = tmp_path / "stderr.txt"
    err_file = err_path.open("w")
    proc = subprocess.Popen([*cli_command(), "process", "run", "tank.yaml", "--streaming", "-p", "sensor.topic=sec-in",
                             "-p", "report.topic=sec-out"], cwd=work, env=env_for(emulator),
                            stdout=subprocess.DEVNULL, stderr=err_file, text=True)
    attacker = None
    try:
        names = [n for n in wait_for_run_topics("pbb-tank-") if n not in before]
        prefix = names[0].rsplit("/", 1)[-1].rsplit("-", 1)[0]
        attacker = Attacker(prefix, in_topic, out_topic, marker)
        attacker.start()
        time.sleep(2)  # the attacker is watching every topic
        rng = random.Random(11)
        keys = [f"tank-{i}" for i in range(5)]
        inflows = {k: [round(rng.uniform(0, 10), 3) for _ in range(6 + i)] for i, k in enumerate(keys)}
        messages = [(json.dumps({"inflow": v}).encode(), {"key": k, "seq": str(s)})
                    for k, vs in inflows.items() for s, v in enumerate(vs)]
        messages += [(b"", {"key": k, "seq": str(len(vs)), "eos": "true"}) for k, vs in inflows.items()]
        rng.shuffle(messages)
        traversal = ["../escape", "..", "../../escape2", "a/../../escape3", "..\\escape4", "x\x00y"]
        messages[5:5] = [(json.dumps({"inflow": 1.0}).encode(), {"key": k, "seq": "0"}) for k in traversal]
        pub, _ = clients()
        for data, attrs in messages:
            pub.publish(in_topic, data, **attrs).result()
        t_fed = time.monotonic()
        published = pull_all(results, lambda got: complete(got, keys), timeout=240)
        print(f"all outputs {time.monotonic() - t_fed:.1f} s after the last input was published")
        time.sleep(3)  # replays of the last messages are processed too
        assert proc.poll() is None, err_path.read_text()[-3000:]  # still streaming (keys come from messages)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stop_seconds = time.monotonic() - t0
    finally:
        if attacker is not None:
            attacker.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_file.close()
    err = err_path.read_text()
    print(f"stopped {stop_seconds:.1f} s after SIGINT; attacker sent {attacker.sent if attacker else {}}")
    print(err[-2000:])
    assert attacker is not None and not attacker.errors, attacker.errors if attacker else None
    # (the volume depends on how fast the run goes: 416 to 900+ seen; every kind of topic is what matters)
    assert sum(attacker.sent.values()) > 300 and any("-feedback" in t for t in attacker.sent), attacker.sent
    assert any("-control" in t for t in attacker.sent), attacker.sent
    assert proc.returncode == 130, err[-3000:]
    assert "stopped: " in err and "(SIGINT)" in err and "Traceback" not in err
    assert stop_seconds < 30
    # Nothing executed, nothing escaped the folder.
    assert not marker.exists()
    # (Garbled copies on the input topic may start new keys: the input topic is the data channel.)
    files = list((work / "out").rglob("*"))
    assert all(p.parent == work / "out" and p.is_file() for p in files), files
    assert {f"log-{k}.jsonl" for k in keys} <= {p.name for p in files}
    # (only this test's folder and its parent: sibling tests legitimately write encoded names)
    assert not [p for p in tmp_path.rglob("*escape*")]
    assert not [p for p in tmp_path.parent.glob("*escape*")]
    # Exactly the levels of a direct simulation.
    by_key, eos = results_by_key(published)
    assert set(by_key) == set(keys), set(by_key)
    for k in keys:
        assert by_key[k] == simulate(inflows[k]), k
        assert eos[k] == len(inflows[k])
    # Attacks on the run's topics were counted and dropped, and said so.
    assert "internal message(s) (feedback or control) failed authentication" in err
    # Traversal keys were dead-lettered with the reason.
    letters = pull_all(dead, lambda got: False, timeout=5)
    reasons: dict[str, set[str]] = {}
    for a, _ in letters:
        if a.get("key") in traversal:
            reasons.setdefault(a["key"], set()).add(a["reason"])
    assert set(reasons) == set(traversal), reasons
    assert all(any(r.startswith("the key ") for r in rs) for rs in reasons.values()), reasons
    # The run's subscriptions and topics are gone.
    assert run_resources(prefix) == []


def test_bad_payload_fails_only_its_key_and_is_dead_lettered(emulator: Emulator, tmp_path: Path) -> None:
    work = tank_copy(tmp_path, "tank")
    in_topic, _ = make_sub("bad-in", "bad-in-sub")
    _, results = make_sub("bad-out", "bad-out-results")
    _, dead = make_sub("bad-dead-letter", "bad-dead")
    inflows = {"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, "abc", 3.0, 4.0], "c": [5.0, 5.0, 5.0, 5.0]}
    pub, _ = clients()
    for k, vs in inflows.items():
        for s, v in enumerate(vs):
            pub.publish(in_topic, json.dumps({"inflow": v}).encode(), key=k, seq=str(s)).result()
        pub.publish(in_topic, b"", key=k, seq=str(len(vs)), eos="true").result()
    (work / "keys.yaml").write_text("- {key: a}\n- {key: b}\n- {key: c}\n")
    proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios", "keys.yaml",
                           "-p", "sensor.subscription=bad-in-sub", "-p", "report.topic=bad-out",
                           "-p", "sensor.dead_letter_topic=bad-dead-letter"], cwd=work,
                          capture_output=True, text=True, timeout=300, env=env_for(emulator))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # stderr names component, key, step and reason
    assert "component 'tank' (key 'b') failed in step 1" in proc.stderr and "TypeError" in proc.stderr
    published = pull_all(results, lambda got: complete(got, ["a", "b", "c"]), timeout=60)
    by_key, eos = results_by_key(published)
    assert eos == {"a": 4, "b": 1, "c": 4}
    assert by_key["a"] == simulate(inflows["a"]) and by_key["c"] == simulate(inflows["c"])  # other keys exact
    assert by_key["b"] == simulate([1.0])  # b's step 0, then its failure
    # The message that failed the key and those behind it: on the dead-letter topic with the reason.
    letters = pull_all(dead, lambda got: len(got) >= 3, timeout=30)
    got = sorted((a["seq"], json.loads(d)["inflow"], a["reason"]) for a, d in letters if a.get("key") == "b")
    assert [(s, v) for s, v, _ in got] == [("1", "abc"), ("2", 3.0), ("3", 4.0)], letters
    assert all(r.startswith("key failed at step 1 in component 'tank'") for _, _, r in got)


def test_two_concurrent_runs_of_one_model_each_get_their_own_outputs(emulator: Emulator, tmp_path: Path) -> None:
    """Same model, same keys, one emulator: run B (no data yet) must not end when A does."""
    runs = {}
    pub, _ = clients()
    data = {"A": {"k1": [1.0, 2.0], "k2": [3.0]}, "B": {"k1": [9.0, 9.0, 9.0], "k2": [0.5, 0.5]}}
    for name in ("A", "B"):
        work = tank_copy(tmp_path, f"tank{name}")
        in_topic, _ = make_sub(f"conc-in-{name}", f"conc-in-{name}-sub")
        _, results = make_sub(f"conc-out-{name}", f"conc-out-{name}-results")
        (work / "keys.yaml").write_text("- {key: k1}\n- {key: k2}\n")
        args = ["process", "run", "tank.yaml", "--streaming", "--scenarios", "keys.yaml",
                "-p", f"sensor.subscription=conc-in-{name}-sub", "-p", f"report.topic=conc-out-{name}"]
        proc = subprocess.Popen([*cli_command(), *args], cwd=work, env=env_for(emulator),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[name] = (proc, in_topic, results)

    def feed(name: str) -> None:
        _, in_topic, _ = runs[name]
        for k, vs in data[name].items():
            for s, v in enumerate(vs):
                pub.publish(in_topic, json.dumps({"inflow": v}).encode(), key=k, seq=str(s)).result()
            pub.publish(in_topic, b"", key=k, seq=str(len(vs)), eos="true").result()

    try:
        feed("A")
        a_err = runs["A"][0].communicate(timeout=300)[1]
        assert runs["A"][0].returncode == 0, a_err[-3000:]
        time.sleep(5)
        assert runs["B"][0].poll() is None, runs["B"][0].communicate()[1][-3000:]  # B did not end with A
        feed("B")
        b_err = runs["B"][0].communicate(timeout=300)[1]
        assert runs["B"][0].returncode == 0, b_err[-3000:]
    finally:
        for proc, _, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for name, (_, _, results) in runs.items():
        run_keys = list(data[name])
        by_key, eos = results_by_key(pull_all(results, lambda got, ks=run_keys: complete(got, ks), timeout=30))
        assert by_key == {k: simulate(vs) for k, vs in data[name].items()}, name
        assert eos == {k: len(vs) for k, vs in data[name].items()}, name


def test_unreachable_pubsub_fails_fast_naming_the_endpoint(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import free_port

    work = tank_copy(tmp_path, "tank")
    host = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming"], cwd=work,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PUBSUB_EMULATOR_HOST=host, PUBSUB_PROJECT_ID=PROJECT))
    seconds = time.monotonic() - t0
    print(f"failed in {seconds:.1f} s: {proc.stderr.strip()}")
    assert proc.returncode != 0 and seconds < 30
    assert host in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("then", ["wait", "ctrl-c"])
def test_pubsub_lost_mid_run_fails_within_60s_and_ctrl_c_still_works(tmp_path: Path, then: str) -> None:
    work = tank_copy(tmp_path, "tank")
    with Emulator(project=PROJECT) as emu:
        before = set(run_resources("pbb-tank-"))
        proc = subprocess.Popen([*cli_command(), "process", "run", "tank.yaml", "--streaming"], cwd=work,
                                env=env_for(emu), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not set(run_resources("pbb-tank-")) - before:
                time.sleep(0.2)
            time.sleep(5)  # the pipeline is reading
            assert proc.poll() is None
            emu.stop()
            t0 = time.monotonic()
            if then == "ctrl-c":
                time.sleep(2)
                t0 = time.monotonic()
                proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
            seconds = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    print(f"{then}: exit {proc.returncode} after {seconds:.1f} s: {err.strip()[-500:]}".replace("\n", " | "))
    assert "Traceback" not in err
    if then == "ctrl-c":
        assert proc.returncode == 130 and seconds < 30 and "stopped: " in err and "(SIGINT)" in err
    else:
        assert proc.returncode != 0 and seconds < 60 and "lost Pub/Sub" in err and emu.host in err


LOOP_PARTS = '''
import typing as _t

from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict


class Count(Component):
    io = IO(outputs=["x"])

    def __init__(self, steps: int = 5, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._steps, self._i = steps, 0

    async def step(self) -> None:
        if self._i >= self._steps:
            await self.io.close()
            return
        self.x = self._i
        self._i += 1


class Mix(Component):
    io = IO(inputs=["x", "back"], outputs=["y"])

    async def step(self) -> None:
        self.y = self.x


class Leak(Component):
    """Sends a value back round the loop; for key 'bad', at step 2, one that cannot cross a cut edge."""

    io = IO(inputs=["y"], outputs=["back"])

    def __init__(self, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._n = 0

    async def step(self) -> None:
        bad = getattr(self, "_plugboard_beam_key", "") == "bad" and self._n == 2
        self.back = object() if bad else {"ok": (self._n, b"raw", float("inf"))}
        self._n += 1
'''

LOOP_MODEL = '''
plugboard:
  process:
    args:
      components:
      - {type: loop_parts.Count, args: {name: count, steps: 5}}
      - {type: loop_parts.Mix, args: {name: mix, initial_values: {back: [0]}}}
      - {type: loop_parts.Leak, args: {name: leak}}
      connectors:
      - {source: count.x, target: mix.x}
      - {source: mix.y, target: leak.y}
      - {source: leak.back, target: mix.back}
'''


def test_a_value_that_cannot_cross_a_cut_edge_fails_its_key_clearly(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "loop_parts.py").write_text(LOOP_PARTS)
    (tmp_path / "loop.yaml").write_text(LOOP_MODEL)
    (tmp_path / "keys.yaml").write_text("- {key: good}\n- {key: bad}\n")
    t0 = time.monotonic()
    proc = subprocess.run([*cli_command(), "process", "run", "loop.yaml", "--streaming", "--scenarios", "keys.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env_for(emulator))
    print(f"{time.monotonic() - t0:.1f} s: {proc.stderr[-1500:]}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # The failure names component, field, key and step; the other key (dicts, tuples, bytes, inf) is fine.
    assert "component 'leak' (key 'bad') failed in step 2 (counting from 0), sending output 'back'" in proc.stderr
    assert "a value of type object" in proc.stderr and "cannot cross a cut edge" in proc.stderr
    assert "1 of 2 model instance(s) failed" in proc.stderr and "key 'good'" not in proc.stderr
