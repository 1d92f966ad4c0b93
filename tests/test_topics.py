"""``plugboard-beam topic publish|tail``: a file's rows as reader messages, a topic's messages as
JSON lines; bounded, safely parsed input; against the Pub/Sub emulator end to end (slow)."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import re
import signal
import subprocess
import time
import typing as _t

import pytest

from conftest import cli_command
from plugboard_beam.cli import topics
from plugboard_beam.exceptions import UserError
from plugboard_beam.testing.emulator import Emulator, free_port

PROJECT = "topics-test"


def decoded(found: topics.Messages) -> list[tuple[_t.Any, dict[str, str]]]:
    return [(json.loads(m.data) if m.data else None, m.attributes) for m in found.messages]


def test_csv_rows_become_reader_messages_numbered_per_key(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("key,inflow,note,flag\na,1.5,x,true\nb,2,,false\na,nan,\"y, z\",\n7,-3,1e3,TRUE\n")
    found = topics.messages_of(path, eos=True)
    assert decoded(found) == [
        ({"inflow": 1.5, "note": "x", "flag": True}, {"key": "a", "seq": "0"}),
        ({"inflow": 2, "note": None, "flag": False}, {"key": "b", "seq": "0"}),
        ({"inflow": "nan", "note": "y, z", "flag": None}, {"key": "a", "seq": "1"}),
        ({"inflow": -3, "note": 1000.0, "flag": "TRUE"}, {"key": "7", "seq": "0"}),
        (None, {"key": "a", "seq": "2", "eos": "true"}),
        (None, {"key": "b", "seq": "1", "eos": "true"}),
        (None, {"key": "7", "seq": "1", "eos": "true"}),
    ]


def test_jsonl_rows_with_their_own_seq(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"key": "a", "seq": 5, "v": [1, {"w": null}]}\n\n{"key": "a", "seq": 2, "v": "s"}\n')
    found = topics.messages_of(path, eos=True)
    assert decoded(found) == [({"v": [1, {"w": None}]}, {"key": "a", "seq": "5"}),
                              ({"v": "s"}, {"key": "a", "seq": "2"}),
                              (None, {"key": "a", "seq": "6", "eos": "true"})]


@pytest.mark.parametrize(("name", "text", "words"), [
    ("in.csv", "inflow\n1\n", "in.csv:2: no 'key'"),
    ("in.csv", "key,v\na,1,2\n", "in.csv:2: more cells than the header"),
    ("in.csv", "key,key\na,1\n", "repeated column"),
    ("in.csv", "", "no header row"),
    ("in.csv", "key,seq,v\na,0,1\na,,2\n", "in.csv:3: give 'seq' on every row or on none"),
    ("in.csv", "key,seq\na,-1\n", "'seq' must be an integer >= 0"),
    ("in.csv", "key,seq\na,1.5\n", "'seq' must be an integer >= 0"),
    ("in.csv", "key,v\n,1\n", "'key' must be a non-empty"),
    ("in.jsonl", '{"key": "a", "v": NaN}\n', "in.jsonl:1: not a JSON object"),
    ("in.jsonl", '{"key": "a"}\n[1, 2]\n', "in.jsonl:2: not a JSON object"),
    ("in.jsonl", '{"key": true}\n', "'key' must be a non-empty"),
    ("in.jsonl", "[" * 100_000 + "\n", "in.jsonl:1: not a JSON object"),
    ("in.txt", "key\na\n", "give a .csv or .jsonl"),
])
def test_bad_files_are_refused_naming_the_line(tmp_path: Path, name: str, text: str, words: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=re.escape(words)):
        topics.messages_of(tmp_path / name)


def test_files_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"key,v\n" + b"a,\xff\n")
    with pytest.raises(UserError, match="not UTF-8"):
        topics.messages_of(path)
    path.write_text("key,v\n" + "a,1\n" * 20)
    monkeypatch.setattr(topics, "MAX_ROWS", 10)
    with pytest.raises(UserError, match="more than 10 rows"):
        topics.messages_of(path)
    monkeypatch.setattr(topics, "MAX_FILE_BYTES", 50)
    with pytest.raises(UserError, match="bytes; at most 50"):
        topics.messages_of(path)
    monkeypatch.setattr(topics, "MAX_FILE_BYTES", 10_000)
    monkeypatch.setattr(topics, "MAX_MESSAGE_BYTES", 20)
    path.write_text("key,v\na," + "x" * 30 + "\n")
    with pytest.raises(UserError, match=r"in\.csv:2: the message would have"):
        topics.messages_of(path)
    with pytest.raises(UserError, match="cannot read it"):
        topics.messages_of(tmp_path / "missing.csv")


def test_messages_print_as_one_escaped_json_line() -> None:
    line = topics.describe_message(b'{"level": 1.5}', {"step": "0", "key": "a\x1b[2J"})
    assert line == '{"attributes": {"key": "a\\u001b[2J", "step": "0"}, "data": {"level": 1.5}}'
    assert json.loads(topics.describe_message(b"", {"eos": "true"})) == {"attributes": {"eos": "true"}, "data": None}
    assert json.loads(topics.describe_message(b"not json\n", {}))["text"] == "not json\n"
    assert json.loads(topics.describe_message(b"\xff\x00", {}))["base64"] == "/wA="
    assert json.loads(topics.describe_message(b"NaN", {}))["text"] == "NaN"


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_user_mistakes_are_one_message(tmp_path: Path) -> None:
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}", PUBSUB_PROJECT_ID=PROJECT)
    proc = cli("topic", "publish", "t", "missing.csv", env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "missing.csv: cannot read it" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "in.csv").write_text("v\n1\n")
    proc = cli("topic", "publish", "t", "in.csv", env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "in.csv:2: no 'key'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("topic", "publish", "t", "in.csv", "--subscription", "1bad", env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "--subscription '1bad'" in proc.stderr
    proc = cli("topic", "tail", "t", "--max", "-1", env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_an_unreachable_emulator_is_named(tmp_path: Path) -> None:
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}", PUBSUB_PROJECT_ID=PROJECT)
    (tmp_path / "in.csv").write_text("key,v\na,1\n")
    start = time.monotonic()
    proc = cli("topic", "publish", "t", "in.csv", env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "the Pub/Sub emulator at 127.0.0.1:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 60


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(project=PROJECT) as emu:
        yield emu


def subscriptions(emu: Emulator) -> list[str]:
    from google.cloud import pubsub_v1

    sub = pubsub_v1.SubscriberClient()
    try:
        return sorted(s.name.split("/")[-1] for s in sub.list_subscriptions(project=f"projects/{PROJECT}"))
    finally:
        sub.close()


@pytest.mark.slow
def test_publish_then_tail_against_the_emulator(emulator: Emulator, tmp_path: Path) -> None:
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator.host, PUBSUB_PROJECT_ID=PROJECT)
    (tmp_path / "in.csv").write_text("key,inflow\npump-1,8.0\npump-2,1\npump-1,2.5\n")
    tail = subprocess.Popen([*cli_command(), "topic", "tail", "levels", "--max", "5", "--timeout", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert tail.stderr is not None
        first = tail.stderr.readline()  # subscribed: what is published from now on is seen
        assert first.startswith("tailing projects/topics-test/topics/levels (subscription"), first
        proc = cli("topic", "publish", "levels", "in.csv", "--eos", "--subscription", "levels-kept",
                   env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "published 3 message(s) for 2 keys, 2 end-of-stream to projects/topics-test/topics/levels" \
            in proc.stdout
        out, err = tail.communicate(timeout=120)
    finally:
        tail.kill()
    assert tail.returncode == 0 and "5 message(s)" in err, err
    got = sorted((m["attributes"]["key"], int(m["attributes"]["seq"]), m["attributes"].get("eos"), m["data"])
                 for m in map(json.loads, out.splitlines()))
    assert got == [("pump-1", 0, None, {"inflow": 8.0}), ("pump-1", 1, None, {"inflow": 2.5}),
                   ("pump-1", 2, "true", None), ("pump-2", 0, None, {"inflow": 1}), ("pump-2", 1, "true", None)]
    # the tail's own subscription is gone; the one made for a run keeps the messages
    assert subscriptions(emulator) == ["levels-kept"]
    quiet = cli("topic", "tail", "levels", "--timeout", "2", env=env, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and "0 message(s)" in quiet.stderr, quiet.stderr
    assert subscriptions(emulator) == ["levels-kept"]


@pytest.mark.slow
def test_ctrl_c_stops_tail_and_deletes_its_subscription(emulator: Emulator, tmp_path: Path) -> None:
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator.host, PUBSUB_PROJECT_ID=PROJECT)
    before = subscriptions(emulator)
    tail = subprocess.Popen([*cli_command(), "topic", "tail", "quiet-topic"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert tail.stderr is not None
        assert tail.stderr.readline().startswith("tailing projects/topics-test/topics/quiet-topic")
        assert len(subscriptions(emulator)) == len(before) + 1
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 130 and "stopped (interrupted) after 0 message(s)" in err and "Traceback" not in err
    assert subscriptions(emulator) == before
