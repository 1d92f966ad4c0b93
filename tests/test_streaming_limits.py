"""Streaming: one message, or one output, never stops the pipeline (issue 15.1 and 15.6),
against the Pub/Sub emulator.

Before: a reading whose number has 5,000 digits, an array nested 100,000 deep, a 3.9 MB reading
whose dead letter exceeds Pub/Sub's 10 MB, an output over the publish limit each ended the run
with exit 3 "internal error" (the other keys' outputs lost), and a 4.5 MB message hung it. Now the
message is dead-lettered with the reason, or its key fails (named), and every other key's outputs
are exact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import shutil
import subprocess
import textwrap
import time
import typing as _t

import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.testing.emulator import Emulator
from pubsub_testing import clients, emulator_fixture

PROJECT = "plugboard-beam-limits"
pytestmark = pytest.mark.slow

Message = tuple[dict[str, str], bytes]


emulator = emulator_fixture(PROJECT)


def env_for(emu: Emulator) -> dict[str, str]:
    return dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=PROJECT)


def make_sub(topic_name: str, sub_name: str) -> tuple[str, str]:
    from google.api_core import exceptions

    pub, sub = clients()
    t, s = f"projects/{PROJECT}/topics/{topic_name}", f"projects/{PROJECT}/subscriptions/{sub_name}"
    try:
        pub.create_topic(name=t)
    except exceptions.AlreadyExists:
        pass
    sub.create_subscription(name=s, topic=t)
    return t, s


def pull_all(sub: str, until: _t.Callable[[list[Message]], bool], timeout: float) -> list[Message]:
    _, subscriber = clients()
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(out):
        resp = subscriber.pull(subscription=sub, max_messages=50, timeout=5)
        if resp.received_messages:
            subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in resp.received_messages])
        out += [(dict(m.message.attributes), bytes(m.message.data)) for m in resp.received_messages]
    return out


def simulate(inflows: list[float]) -> list[dict[str, _t.Any]]:
    """specs/tank by hand (see tests/test_security_streaming.py)."""
    level, outflow, rows = 0.0, 0.0, []
    for inflow in inflows:
        level = min(100.0, max(0.0, level + inflow - outflow))
        shown = round(level, 6)
        outflow = round(0.2 * shown, 6)
        rows.append({"level": shown, "outflow": outflow, "high": shown > 20.0})
    return rows


def results_by_key(published: list[Message]) -> tuple[dict[str, list[_t.Any]], dict[str, int]]:
    steps: dict[str, dict[int, _t.Any]] = {}
    eos: dict[str, int] = {}
    for attrs, data in published:
        if attrs.get("eos") == "true":
            eos[attrs["key"]] = int(attrs["count"])
        else:
            steps.setdefault(attrs["key"], {})[int(attrs["step"])] = json.loads(data)
    return {k: [v[i] for i in sorted(v)] for k, v in steps.items()}, eos


def publish(topic: str, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    pub, _ = clients()
    for data, attrs in messages:
        pub.publish(topic, data, **attrs).result(timeout=60)


def run(work: Path, emu: Emulator, model: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), "process", "run", model, "--streaming", "--scenarios", "keys.yaml", *args],
                          cwd=work, capture_output=True, text=True, timeout=600, env=env_for(emu))


def test_hostile_readings_are_dead_lettered_or_fail_their_key_and_other_keys_are_exact(
        emulator: Emulator, tmp_path: Path) -> None:
    """The tank twin, 5 keys. Each of a, b, c gets a hostile message beside its good ones (a
    5,000-digit number, an array nested 100,000 deep, a 4.5 MB message); d's reading at step 2 is
    a 3.9 MB array that fails the tank, whose dead letter (re-encoded: ~13 MB) is cut; e is plain."""
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    in_topic, _ = make_sub("lim-in", "lim-in-sub")
    _, results = make_sub("lim-out", "lim-out-results")
    _, dead = make_sub("lim-dead", "lim-dead-sub")
    keys = ["a", "b", "c", "d", "e"]
    inflows = {k: [float(i + 1), 2.5, 7.0 - i, 1.25] for i, k in enumerate(keys)}
    huge = b'{"inflow": [' + b",".join([b"1e15"] * 780_000) + b"]}"  # 3.9 MB
    assert 3_800_000 < len(huge) < 4_000_000
    messages: list[tuple[bytes, dict[str, str]]] = []
    for k, vs in inflows.items():
        for s, v in enumerate(vs):
            data = huge if (k, s) == ("d", 2) else json.dumps({"inflow": v}).encode()
            messages.append((data, {"key": k, "seq": str(s)}))
        messages.append((b"", {"key": k, "seq": str(len(vs)), "eos": "true"}))
    hostile = [
        (b'{"inflow": ' + b"7" * 5000 + b"}", {"key": "a", "seq": "1"}),
        (b'{"inflow": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {"key": "b", "seq": "1"}),
        (b'{"inflow": 1.0, "pad": "' + b"x" * 4_500_000 + b'"}', {"key": "c", "seq": "2"}),
    ]
    publish(in_topic, hostile[:2] + messages[:9] + hostile[2:] + messages[9:])
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in keys]))
    t0 = time.monotonic()
    proc = run(work, emulator, "tank.yaml", "-p", "sensor.subscription=lim-in-sub", "-p", "report.topic=lim-out",
               "-p", "sensor.dead_letter_topic=lim-dead", "-p", "sensor.max_payload_bytes=4000000")
    print(f"run took {time.monotonic() - t0:.1f} s\n{proc.stderr[-3000:]}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "1 of 5 model instance(s) failed" in proc.stderr, proc.stderr[-3000:]
    assert "5 message(s) went to the dead-letter topic(s)" in proc.stderr
    assert "component 'tank' (key 'd') failed in step 2" in proc.stderr and "TypeError" in proc.stderr
    published = pull_all(results, lambda got: len(results_by_key(got)[1]) == 5, timeout=60)
    by_key, eos = results_by_key(published)
    for k in "abce":
        assert by_key[k] == simulate(inflows[k]), k  # every other key exact
        assert eos[k] == 4
    assert by_key["d"] == simulate(inflows["d"][:2]) and eos["d"] == 2  # d's steps before its failure
    letters = pull_all(dead, lambda got: len(got) >= 5, timeout=60)
    by_seq = {(a.get("key"), a.get("seq")): (a, d) for a, d in letters}
    reason = {k: by_seq[k][0]["reason"] for k in by_seq}
    assert reason[("a", "1")] == "payload refused: a number with 5,000 digits is over the limit of 4,300 digits"
    assert reason[("b", "1")] == "payload refused: arrays/objects nested deeper than the limit of 64"
    assert reason[("c", "2")] == (f"payload refused: payload of {len(hostile[2][0]):,} bytes is over the limit of "
                                  "4,000,000 bytes")
    assert by_seq[("c", "2")][1] == hostile[2][0]  # the rejected payload itself, whole
    # d's reading failed the tank: its dead letter (the value re-encoded) is over 10 MB, so cut
    attrs, data = by_seq[("d", "2")]
    assert attrs["reason"].startswith("key failed at step 2 in component 'tank': TypeError")
    assert attrs["truncated"] == "true" and int(attrs["original_bytes"]) > 10_000_000
    full = json.dumps({"inflow": [1e15] * 780_000}).encode()
    assert int(attrs["original_bytes"]) == len(full) and attrs["sha256"] == hashlib.sha256(full).hexdigest()
    assert full.startswith(data) and 9_000_000 < len(data) < 10_000_000
    # d's input after its failure: dead-lettered too, whole
    assert json.loads(by_seq[("d", "3")][1]) == {"inflow": 1.25}


AMP = '''
from plugboard_beam.component import Component, IOController as IO

class Amp(Component):
    """Passes ``value`` on and pads it with ``size`` characters."""
    io = IO(inputs=["size", "value"], outputs=["pad", "out"])

    async def step(self) -> None:
        self.pad = "x" * int(self.size)
        self.out = self.value
'''

AMP_MODEL = """
plugboard:
  process:
    args:
      components:
      - type: plugboard_beam.library.PubSubReader
        args: {name: rx, topic: amp-in, fields: [size, value]}
      - {type: amp_parts.Amp, args: {name: amp}}
      - type: plugboard_beam.library.PubSubWriter
        args: {name: tx, topic: amp-out, fields: [pad, out]}
      connectors:
      - {source: rx.size, target: amp.size}
      - {source: rx.value, target: amp.value}
      - {source: amp.pad, target: tx.pad}
      - {source: amp.out, target: tx.out}
"""


def test_outputs_over_the_publish_limit_or_not_json_fail_their_key_only(emulator: Emulator, tmp_path: Path) -> None:
    """An output of 11 MB (over Pub/Sub's 10 MB) and an output NaN (not JSON) each fail their
    key, named; the other keys' outputs are exact and every published message is strict JSON."""
    work = tmp_path / "amp"
    work.mkdir()
    (work / "amp_parts.py").write_text(textwrap.dedent(AMP))
    (work / "amp.yaml").write_text(textwrap.dedent(AMP_MODEL).lstrip())
    in_topic, _ = make_sub("amp-in", "amp-in-sub")
    _, results = make_sub("amp-out", "amp-out-results")
    rows = {"ok1": [(3, 1.5), (0, 2)], "huge": [(1, 1.0), (11_000_000, 2.0), (1, 3.0)],
            "nan": [(1, 1.0), (1, "NaN"), (2, 3.0)], "inf": [(0, "-Infinity")], "ok2": [(5, None), (1, [1, {"a": 2}])]}
    messages = []
    for k, vs in rows.items():
        for s, (size, value) in enumerate(vs):
            text = f'{{"size": {size}, "value": {value if isinstance(value, str) else json.dumps(value)}}}'
            messages.append((text.encode(), {"key": k, "seq": str(s)}))
        messages.append((b"", {"key": k, "seq": str(len(vs)), "eos": "true"}))
    publish(in_topic, messages)
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in rows]))
    proc = run(work, emulator, "amp.yaml", "-p", "rx.subscription=amp-in-sub")
    print(proc.stderr[-3000:])
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "3 of 5 model instance(s) failed" in proc.stderr, proc.stderr[-3000:]
    assert "component 'tx' (key 'huge') failed in step 1" in proc.stderr
    assert "over the publish limit of 9,936,000 bytes" in proc.stderr
    assert "component 'tx' (key 'nan') failed in step 1" in proc.stderr
    assert "the float nan at ['out'] is not JSON" in proc.stderr
    assert "component 'tx' (key 'inf') failed in step 0" in proc.stderr and "the float -inf" in proc.stderr
    published = pull_all(results, lambda got: len(results_by_key(got)[1]) == 5, timeout=60)
    for _, data in published:
        if data:
            json.loads(data, parse_constant=lambda c: pytest.fail(f"{c} published: not JSON"))
    by_key, eos = results_by_key(published)
    assert by_key["ok1"] == [{"pad": "xxx", "out": 1.5}, {"pad": "", "out": 2}] and eos["ok1"] == 2
    assert by_key["ok2"] == [{"pad": "xxxxx", "out": None}, {"pad": "x", "out": [1, {"a": 2}]}] and eos["ok2"] == 2
    assert by_key["huge"] == [{"pad": "x", "out": 1.0}] and eos["huge"] == 1
    assert by_key["nan"] == [{"pad": "x", "out": 1.0}] and eos["nan"] == 1
    assert "inf" not in by_key and eos["inf"] == 0
