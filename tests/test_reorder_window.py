"""Bounded waits for ``seq`` gaps: a key whose messages wait for a missing earlier ``seq`` beyond
its reader's reorder window (``reorder_window_count`` messages, ``reorder_window_seconds``)
fails loudly, naming the reader, the key and the missing seq; the messages that waited go to
the dead-letter topic with that reason; every other key goes on."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess
import time

import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.stage import ReorderWindow, SeqGap, StageRun
from plugboard_beam.spec import load_model


def tank_stage(tmp_path: Path, window: ReorderWindow) -> tuple[StageRun, int]:
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    model = load_model(work / "tank.yaml")
    members = [n.name for n in model.graph.nodes if n.name != "sensor"]
    comps = model.build_components("k")
    for name in members:
        if name == "report":
            comps[name].outbox = []  # type: ignore[attr-defined]
    edge = next(e.id for e in model.graph.edges if e.source == "sensor")
    engine = Engine(model.graph, {n: comps[n] for n in members}, key="k", members=members)
    run = StageRun(engine, {edge: window})
    run.start()
    return run, edge


def test_a_gap_beyond_the_count_window_fails_the_key_naming_reader_key_and_seq(tmp_path: Path) -> None:
    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 3, 0.0))
    run.feed((edge, 0, [1.0], False))
    run.feed((edge, 1, [2.0], False))
    run.feed((edge, 3, [4.0], False))  # seq 2 is missing
    run.feed((edge, 4, [5.0], False))
    assert run.error is None  # two waiting: within the window
    run.feed((edge, 5, [6.0], False))
    err = run.error
    assert err is not None
    assert (err.component, err.key, err.step, err.phase) == ("sensor", "k", 2, "step")
    assert err.error_type == SeqGap.__name__
    assert "the message with seq 2 never arrived: 3 later message(s) (seq 3..5)" in str(err)
    assert "reorder_window_count=3" in str(err)
    assert sorted(run.pending[edge]) == [3, 4, 5]  # the waiting input is there for the dead-letter path
    assert run.engine.destroyed  # the failure protocol ran


def test_a_gap_filled_within_the_window_is_not_a_failure(tmp_path: Path) -> None:
    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 3, 0.0))
    for seq in (1, 2, 0, 4, 5, 3, 7, 8, 6):
        run.feed((edge, seq, [float(seq)], False))
    assert run.error is None and not run.pending
    assert run.engine.inputs[edge].received == 9


def test_a_gap_older_than_the_time_window_fails_when_the_next_message_comes(tmp_path: Path) -> None:
    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 0, 0.5))
    run.feed((edge, 1, [1.0], False))
    time.sleep(0.7)
    assert run.error is None
    run.feed((edge, 2, [2.0], False))
    assert run.error is not None and run.error.step == 0
    assert "reorder_window_seconds=0.5" in str(run.error)


@pytest.mark.parametrize("value", ["-1", "1.5", "abc"])
def test_a_bad_reorder_window_is_refused_at_validation(tmp_path: Path, value: str) -> None:
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    res = subprocess.run([*cli_command(), "process", "validate", "tank.yaml", "-p",
                          f"sensor.reorder_window_count={value}"], cwd=work, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0 and "reorder_window_count" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_streaming_seq_gap_fails_its_key_after_the_window_and_dead_letters_what_waited(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator
    from test_streaming import PROJECT, clients, drain, env_for, make_sub

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    keys = ["ok-1", "gap", "ok-2"]
    inflows = {k: [float(i + 1) for i in range(6)] for k in keys}
    with Emulator(project=PROJECT) as emu:  # (sets PUBSUB_EMULATOR_HOST for this process's clients too)
        topic, _ = make_sub("tank-inflow", "tank-inflow-gap")
        _, results = make_sub("tank-state", "tank-state-gap")
        _, dead = make_sub("tank-inflow-dead-letter", "tank-dead-gap")
        pub, _ = clients()
        for k, values in inflows.items():
            for seq, v in enumerate(values):
                if k == "gap" and seq == 2:
                    continue  # lost (dead-lettered upstream, or taken by another subscriber)
                pub.publish(topic, json.dumps({"inflow": v}).encode(), key=k, seq=str(seq)).result()
            pub.publish(topic, b"", key=k, seq=str(len(values)), eos="true").result()
        (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in keys]))
        proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios",
                               "keys.yaml", "-p", "sensor.subscription=tank-inflow-gap",
                               "-p", "sensor.reorder_window_count=3"],
                              cwd=work, capture_output=True, text=True, timeout=400, env=env_for(emu))
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        assert "component 'sensor' (key 'gap') failed in step 2" in proc.stderr
        assert "the message with seq 2 never arrived" in proc.stderr
        published = drain(results, expect_eos=2)
        by_key: dict[str, list[int]] = {}
        for attrs, _ in published:
            if attrs.get("eos") != "true":
                by_key.setdefault(attrs["key"], []).append(int(attrs["step"]))
        assert sorted(by_key["ok-1"]) == sorted(by_key["ok-2"]) == list(range(6))
        gap = sorted(by_key.get("gap", []))
        assert gap == list(range(len(gap))) and len(gap) <= 2  # its outputs before the gap (as far as they got)
        letters = drain(dead, expect=4, timeout=30)
        seqs = sorted(int(a["seq"]) for a, _ in letters if a.get("key") == "gap")
        # what waited (3, 4, 5) and what came after the failure (the eos, seq 6): each once
        assert seqs == [3, 4, 5, 6], letters
        assert [a.get("eos") for a, _ in letters if a["seq"] == "6"] == ["true"]
        assert all("key failed at step 2 in component 'sensor'" in a["reason"] for a, _ in letters
                   if a.get("key") == "gap"), letters


def test_what_waited_behind_the_gap_eos_included_goes_to_the_dead_letter_path(tmp_path: Path) -> None:
    from plugboard_beam.lowering.beam import _unused_input

    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 3, 0.0))
    run.feed((edge, 0, [1.0], False))
    for chunk in ((edge, 2, [3.0], False), (edge, 3, [4.0], False), (edge, 4, [], True)):
        run.feed(chunk)  # seq 1 missing; the eos (seq 4) waits too
    assert run.error is not None and run.error.step == 1
    unused = [c for c in _unused_input(run) if c[0] == edge]
    assert unused == [(edge, 2, [3.0], False), (edge, 3, [4.0], False), (edge, 4, [], True)]


def test_a_message_without_seq_for_a_key_with_seq_is_set_aside_not_dropped(tmp_path: Path) -> None:
    from plugboard_beam.runtime.stage import MIXED_REASONS, Unsequenced

    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 0, 0.0))
    run.feed((edge, 0, [1.0], False))
    run.feed((edge, 0, Unsequenced([9.0]), False))  # numbered 0 in arrival order: used to vanish as a "repeat"
    run.feed((edge, 1, [2.0], False))
    assert run.mixed == [(edge, 0, [9.0], False)] and type(run.mixed[0][2]) is Unsequenced
    assert run.error is None and run.engine.inputs[edge].received == 2
    assert "no seq attribute" in MIXED_REASONS[True]
    other, edge2 = tank_stage(tmp_path / "2", ReorderWindow("sensor", 0, 0.0))
    other.feed((edge2, 0, Unsequenced([1.0]), False))
    other.feed((edge2, 1, [5.0], False))  # a key numbered in arrival order refuses seq
    assert [c[1] for c in other.mixed] == [1] and other.engine.inputs[edge2].received == 1


@pytest.mark.slow
def test_streaming_message_without_seq_for_a_key_with_seq_is_dead_lettered(tmp_path: Path) -> None:
    from plugboard_beam.testing.emulator import Emulator
    from test_streaming import PROJECT, clients, drain, env_for, make_sub

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": "k"}]))
    with Emulator(project=PROJECT) as emu:
        topic, _ = make_sub("tank-inflow", "tank-inflow-mixed")
        _, results = make_sub("tank-state", "tank-state-mixed")
        _, dead = make_sub("tank-inflow-dead-letter", "tank-dead-mixed")
        pub, _ = clients()
        for seq in range(3):
            pub.publish(topic, json.dumps({"inflow": float(seq)}).encode(), key="k", seq=str(seq)).result()
        proc = subprocess.Popen([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios",
                                 "keys.yaml", "-p", "sensor.subscription=tank-inflow-mixed"],
                                cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(emu))
        try:
            first = drain(results, expect=1, timeout=180)
            assert first, "no output"
            pub.publish(topic, json.dumps({"inflow": 99.0}).encode(), key="k").result()  # no seq
            letters = drain(dead, expect=1, timeout=60)
            assert len(letters) == 1, letters
            attrs, data = letters[0]
            assert json.loads(data) == {"inflow": 99.0} and attrs["key"] == "k" and "seq" not in attrs
            assert attrs["reason"].startswith("the message has no seq attribute but this key's messages have one")
            pub.publish(topic, json.dumps({"inflow": 55.0}).encode(), key="k", seq="1").result()  # a repeated seq
            for seq in range(3, 5):
                pub.publish(topic, json.dumps({"inflow": float(seq)}).encode(), key="k", seq=str(seq)).result()
            pub.publish(topic, b"", key="k", seq="5", eos="true").result()
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err[-3000:]
        assert "1 message(s) went to the dead-letter topic(s)" in err
        rest = drain(results, expect_eos=1, timeout=60)
        steps = sorted(int(a["step"]) for a, _ in first + rest if a.get("eos") != "true")
        assert steps == [0, 1, 2, 3, 4]  # the key's own messages, none lost, none displaced


@pytest.mark.slow
def test_streaming_gap_with_nothing_after_it_fails_when_the_time_window_ends(tmp_path: Path) -> None:
    """The key receives nothing after its gap: only a timer can end its wait (it used to wait for
    ever, the run never ended)."""
    from plugboard_beam.testing.emulator import Emulator
    from test_streaming import PROJECT, clients, drain, env_for, make_sub

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": "ok"}, {"key": "gap"}]))
    with Emulator(project=PROJECT) as emu:
        topic, _ = make_sub("tank-inflow", "tank-inflow-timer")
        _, dead = make_sub("tank-inflow-dead-letter", "tank-dead-timer")
        pub, _ = clients()
        for seq in range(3):
            pub.publish(topic, json.dumps({"inflow": 1.0}).encode(), key="ok", seq=str(seq)).result()
        pub.publish(topic, b"", key="ok", seq="3", eos="true").result()
        for seq in (0, 2):  # seq 1 never comes, nor anything after seq 2
            pub.publish(topic, json.dumps({"inflow": 1.0}).encode(), key="gap", seq=str(seq)).result()
        t0 = time.monotonic()
        proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--streaming", "--scenarios",
                               "keys.yaml", "-p", "sensor.subscription=tank-inflow-timer",
                               "-p", "sensor.reorder_window_seconds=4"],
                              cwd=work, capture_output=True, text=True, timeout=300, env=env_for(emu))
        took = time.monotonic() - t0
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "component 'sensor' (key 'gap') failed in step 1" in proc.stderr
        assert "the message with seq 1 never arrived: 1 later message(s) (seq 2..2)" in proc.stderr
        assert "reorder_window_seconds=4" in proc.stderr and "Traceback" not in proc.stderr
        letters = drain(dead, expect=1, timeout=30)
        assert [(a["key"], a["seq"]) for a, _ in letters] == [("gap", "2")]
        assert took < 240, took


@pytest.mark.slow
def test_local_runner_reader_fails_a_gap_beyond_the_window(tmp_path: Path) -> None:
    """--runner local reads Pub/Sub with the client: the same reorder window holds there (its
    step used to wait for the missing seq for ever)."""
    from plugboard_beam.testing.emulator import Emulator
    from test_streaming import PROJECT, clients, env_for, make_sub

    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    (work / "keys.yaml").write_text("- {key: gap}\n")
    with Emulator(project=PROJECT) as emu:
        topic, _ = make_sub("tank-inflow", "tank-inflow-local-gap")
        pub, _ = clients()
        for seq in (0, 2, 3):
            pub.publish(topic, json.dumps({"inflow": 1.0}).encode(), key="gap", seq=str(seq)).result()
        proc = subprocess.run([*cli_command(), "process", "run", "tank.yaml", "--runner", "local", "--scenarios",
                               "keys.yaml", "-p", "sensor.subscription=tank-inflow-local-gap",
                               "-p", "sensor.reorder_window_count=2"],
                              cwd=work, capture_output=True, text=True, timeout=200, env=env_for(emu))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "component 'sensor' (key 'gap') failed in step 1" in proc.stderr
    assert "SeqGap: the message with seq 1 never arrived: 2 later message(s) (seq 2..3)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_repeated_reader_input_is_reported_as_a_repeat(tmp_path: Path) -> None:
    """A message repeating a key's seq (a redelivery, or a duplicate) is dropped: ``feed`` says
    so, and the stage counts it for the end-of-run report (``repeated_input``)."""
    run, edge = tank_stage(tmp_path, ReorderWindow("sensor", 0, 0.0))
    assert run.feed((edge, 0, [1.0], False)) is True
    assert run.feed((edge, 0, [7.0], False)) is False  # applied already
    assert run.feed((edge, 2, [3.0], False)) is True
    assert run.feed((edge, 2, [3.0], False)) is False  # waiting already
    assert run.feed((edge, 1, [2.0], False)) is True
    assert run.engine.inputs[edge].received == 3
