"""The streaming DoFns and the run's watch, without Pub/Sub: what they do with hostile input."""

from __future__ import annotations

import json
import os
import pickle
import typing as _t

from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.pvalue import TaggedOutput

from plugboard_beam.runners.streaming import Watch
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.streaming.codec import KIND, MAC, Codec
from plugboard_beam.streaming.pipeline import (
    ControlDoFn,
    EdgeInfo,
    EncodeDoFn,
    FeedbackDoFn,
    LateDoFn,
    ReaderDoFn,
    ReaderRoute,
    SequenceDoFn,
    late_reason,
)
from plugboard_beam.streaming.resources import ReaderInfo

CODEC = Codec("run1", os.urandom(32))


def reader_route() -> ReaderRoute:
    info = ReaderInfo(name="sensor", fields=("inflow",), key_attribute="key", subscription="s", topic="t",
                      dead_letter_topic="projects/p/topics/dead", own_subscription=True)
    return ReaderRoute(info, ((0, 0, 1),))


def run_dofn(dofn: _t.Any, element: _t.Any, **kw: _t.Any) -> list[_t.Any]:
    dofn.setup()
    return list(dofn.process(element, **kw) or [])


def test_reader_dead_letters_unsafe_and_unknown_keys_with_a_reason() -> None:
    dofn = ReaderDoFn(reader_route(), frozenset({"a"}))
    for key, reason in (("../x", "the key contains '/'"), ("b", "not one of this run's keys"),
                        ("x" * 300, "longer than 256")):
        out = run_dofn(dofn, PubsubMessage(b'{"inflow": 1}', {"key": key, "seq": "0"}))
        assert len(out) == 1 and out[0].tag == "dead"
        assert reason in out[0].value.attributes["reason"] and out[0].value.attributes["reader"] == "sensor"
    ok = run_dofn(dofn, PubsubMessage(b'{"inflow": 1}', {"key": "a", "seq": "3"}))
    assert [(o.tag, o.value) for o in ok] == [("s1", ("a", (0, 3, [1], False)))]


def test_reader_treats_internal_looking_attributes_as_user_data() -> None:
    evil = pickle.dumps(os.system)
    out = run_dofn(ReaderDoFn(reader_route(), None),
                   PubsubMessage(evil, {"key": "a", "seq": "0", KIND: "chunk", MAC: "0" * 64, "edge": "0"}))
    assert len(out) == 1 and out[0].tag == "dead" and "not JSON" in out[0].value.attributes["reason"]


def test_feedback_drops_everything_but_authentic_chunks() -> None:
    dofn = FeedbackDoFn(CODEC, {0: 1})
    data, attrs = CODEC.seal_chunk("a", (0, 2, [1.5], False))
    opened = run_dofn(dofn, PubsubMessage(data, attrs))
    assert [(o.tag, o.value) for o in opened] == [("s1", ("a", (0, 2, [1.5], False)))]
    other_run = Codec("run2", CODEC.secret).seal_chunk("a", (0, 2, [1.5], False))
    unknown_edge = CODEC.seal_chunk("a", (7, 0, [1.0], False))
    for message in (PubsubMessage(pickle.dumps(os.system), {KIND: "chunk", "run": "run1", "key": "a", "start": "0"}),
                    PubsubMessage(data, {KIND: "chunk"}), PubsubMessage(b"", {}), PubsubMessage(*other_run),
                    PubsubMessage(*unknown_edge), PubsubMessage(data.replace(b"1.5", b"9.5"), attrs)):
        assert run_dofn(dofn, message) == []


def test_an_unencodable_value_fails_the_key_and_ends_the_edge() -> None:
    dofn = EncodeDoFn(CODEC, EdgeInfo(2, "valve", "outflow", "valve.outflow->tank.outflow"))
    out = run_dofn(dofn, ("k", (2, 4, [1.0, object()], False)))
    failed = [o.value for o in out if isinstance(o, TaggedOutput)]
    sent = [o for o in out if isinstance(o, PubsubMessage)]
    assert len(failed) == 1
    key, row = failed[0]
    assert key == "k" and row["component"] == "valve" and row["field"] == "outflow" and row["step"] == 5
    assert "cannot cross a cut edge" in row["message"] and "key 'k'" in row["message"]
    assert len(sent) == 1 and CODEC.open_chunk(sent[0].data, sent[0].attributes) == ("k", (2, 4, [], True))
    control = run_dofn(ControlDoFn(CODEC, None), failed[0])
    body = CODEC.open(control[0].data, control[0].attributes, "done")
    assert body is not None and body["failure"] == row and body["stage"] is None


def test_input_of_a_failed_key_is_dead_lettered_with_the_step() -> None:
    row = Failure(key="b", component="tank", step=1, phase="step", error_type="RuntimeError", reason="boom").to_json()
    dofn = LateDoFn({0: ("sensor", ("inflow",), "key", 0)})
    out = run_dofn(dofn, ("b", (0, 3, ["abc", 4.0], False), row))
    assert [(json.loads(m.data), m.attributes["seq"]) for m in out] == [({"inflow": "abc"}, "3"),
                                                                         ({"inflow": 4.0}, "4")]
    assert all(m.attributes["reason"] == "key failed at step 1 in component 'tank': RuntimeError: boom" for m in out)
    assert run_dofn(dofn, ("b", (5, 0, [1.0], False), row)) == []  # internal edges: counted only
    assert late_reason("") == "the key had already ended (input after its end of stream)"


def test_a_readers_late_end_of_stream_is_dead_lettered_not_dropped() -> None:
    """An eos message (no values) for a key that had failed or ended used to vanish without a
    dead letter; an empty end of an internal stream loses nothing and is not counted."""
    row = Failure(key="b", component="tank", step=1, phase="step", error_type="RuntimeError", reason="boom").to_json()
    dofn = LateDoFn({0: ("sensor", ("inflow",), "key", 0)})
    out = run_dofn(dofn, ("b", (0, 6, [], True), row))
    assert [(m.data, m.attributes["key"], m.attributes["seq"], m.attributes["eos"]) for m in out] == [
        (b"", "b", "6", "true")]
    assert out[0].attributes["reason"].startswith("key failed at step 1 in component 'tank'")
    ended = run_dofn(dofn, ("c", (0, 4, [], True), ""))
    assert [m.attributes["reason"] for m in ended] == ["the key had already ended (input after its end of stream)"]
    assert run_dofn(dofn, ("b", (5, 0, [], True), row)) == []  # an internal end: nothing lost

    class Count:
        n = 0

        def inc(self) -> None:
            self.n += 1

    counted = LateDoFn({})
    counted.setup()
    counted.late = Count()
    assert list(counted.process(("b", (5, 0, [1.0], False), row))) == []  # feedback of a failed key: counted
    assert list(counted.process(("c", (5, 0, [1.0], False), ""))) == []  # a loop's last value after a normal end
    assert counted.late.n == 1


def test_sequence_state_is_json_and_deduplicates_message_ids() -> None:
    class State:
        blob: _t.Optional[bytes] = None

        def read(self) -> _t.Optional[bytes]:
            return self.blob

        def write(self, blob: bytes) -> None:
            self.blob = blob

    from plugboard_beam.library.pubsub import Parsed

    state, dofn = State(), SequenceDoFn(reader_route())
    msg = Parsed("a", None, False, (1.0,))
    first = run_dofn(dofn, ("a", ("m1", msg)), state=state)
    again = run_dofn(dofn, ("a", ("m1", msg)), state=state)
    second = run_dofn(dofn, ("a", ("m2", msg)), state=state)
    assert [o.value[1][1] for o in first + second] == [0, 1] and again == []
    assert json.loads(state.blob or b"") == {"next": 2, "seen": ["m1", "m2"]}


class FakeResources:
    control_subscription = "c"
    writer_watch: _t.ClassVar[dict[str, str]] = {}


def test_watch_reports_a_failure_pulled_but_not_yet_handled_when_it_stops() -> None:
    """Ctrl-C while a key's failure waited in the watch's queue (pulled and acknowledged, not
    handled): the failure used to be lost ("0 key(s) had ended")."""
    watch = Watch(FakeResources(), CODEC, [], [0], [])
    row = Failure(key="b", component="tank", step=0, phase="step", error_type="TypeError", reason="abc").to_dict()
    data, attrs = CODEC.seal("done", {"key": "b", "stage": 0, "failure": row, "published": {}})
    watch.events.put(("control", attrs, data))
    watch.stop()
    # (a run keyed by its messages counts the keys that ended at its last stage)
    assert [f["key"] for f in watch.failures] == ["b"] and watch.ended_count == 1


def test_watch_counts_only_authentic_control_messages_and_true_ends_of_stream() -> None:
    watch = Watch(FakeResources(), CODEC, ["a"], [0], ["report"])
    forged = Codec("run1", os.urandom(32)).seal("done", {"key": "a", "stage": 0, "failure": None})
    watch._handle("control", forged[1], forged[0])
    assert watch.rejected == 1 and ("a", 0) in watch.pending_stages
    # A forged end of stream on the output topic is not trusted.
    watch._handle("writer:report", {"key": "a", "eos": "true", "count": "0"}, b"")
    watch._handle("writer:report", {"key": "a", "step": "0"}, b"{}")
    assert not watch.complete
    # The stage's authentic completion says the writer published 2 messages for the key.
    data, attrs = CODEC.seal("done", {"key": "a", "stage": 0, "failure": None, "published": {"report": 2}})
    watch._handle("control", attrs, data)
    assert not watch.pending_stages and not watch.complete
    watch._handle("writer:report", {"key": "a", "step": "1"}, b"{}")
    assert watch.complete
