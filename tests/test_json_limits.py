"""Decode limits checked before parsing, strict JSON out, messages that fit Pub/Sub (issue 15.1, 15.6)."""

from __future__ import annotations

import hashlib
import json
import math
import time
import typing as _t

import pytest

from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event
from plugboard_beam.library.json_limits import (
    MAX_PUBLISH_BYTES,
    DecodeLimits,
    LimitExceeded,
    NotJSON,
    check_payload,
    dumps_strict,
    find_not_json,
    fit_message,
    int_digits,
    loads_limited,
    message_size,
)
from plugboard_beam.library.pubsub import Parsed, PubSubWriter, Rejected, parse_message
from plugboard_beam.library.pubsub_events import PubSubEventWriter

DEFAULT = DecodeLimits()


def test_defaults_are_documented_values() -> None:
    assert (DEFAULT.max_bytes, DEFAULT.max_depth, DEFAULT.max_int_digits) == (1_000_000, 64, 4300)
    assert DecodeLimits.of(max_depth=3) == DecodeLimits(max_depth=3)
    with pytest.raises(ValueError, match="max_depth must be a positive integer"):
        DecodeLimits(max_depth=0)


def test_a_5000_digit_number_is_refused_before_json_loads_would_raise() -> None:
    data = b'{"inflow": ' + b"7" * 5000 + b"}"
    with pytest.raises(ValueError):  # what json.loads does with it (Python's 4300-digit limit)
        json.loads(data)
    with pytest.raises(LimitExceeded, match="a number with 5,000 digits is over the limit of 4,300"):
        check_payload(data, DEFAULT)
    assert loads_limited(b'{"inflow": ' + b"7" * 4300 + b"}", DEFAULT)["inflow"] == int("7" * 4300)
    with pytest.raises(LimitExceeded, match="5 digits"):
        check_payload(b"[1.12345]", DecodeLimits(max_int_digits=4))  # every run of digits counts


def test_digits_and_brackets_inside_strings_are_text() -> None:
    text = json.dumps({"note": "[" * 500 + "9" * 6000 + "\\\"]"}).encode()
    assert loads_limited(text, DEFAULT)["note"].startswith("[[[")


def test_an_array_nested_100000_deep_is_refused_quickly() -> None:
    data = b'{"inflow": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RecursionError):
        json.loads(data)
    t0 = time.perf_counter()
    with pytest.raises(LimitExceeded, match="nested deeper than the limit of 64"):
        check_payload(data, DEFAULT)
    assert time.perf_counter() - t0 < 1.0
    ok = b"[" * 64 + b"]" * 64
    assert check_payload(ok, DEFAULT) is None
    with pytest.raises(LimitExceeded):
        check_payload(b"[" * 65 + b"]" * 65, DEFAULT)
    with pytest.raises(LimitExceeded):  # unclosed: the parser would still recurse into each
        check_payload(b"[" * 100_000 + b"]", DEFAULT)
    with pytest.raises(ValueError, match="not JSON"):
        loads_limited(b"[" * 10 + b"]", DEFAULT)
    # siblings do not add up: depth is the deepest path
    assert check_payload(b"[" + b"[[]]," * 10_000 + b"[]]", DecodeLimits(max_depth=3)) is None


def test_payload_size_limit() -> None:
    with pytest.raises(LimitExceeded, match="payload of 1,000,001 bytes is over the limit of 1,000,000 bytes"):
        check_payload(b" " * 1_000_001, DEFAULT)
    with pytest.raises(LimitExceeded, match="over the limit of 10 bytes"):
        check_payload(b'{"a": 12345}', DecodeLimits(max_bytes=10))


def test_pre_scan_of_a_megabyte_is_cheap() -> None:
    for data in (json.dumps({"inflow": [1.5] * 150_000, "s": "x" * 100_000}).encode(),
                 b"[" + b"[]," * 330_000 + b"[]]", b"[" * 64 + b"0," * 450_000 + b"]" * 64):
        assert len(data) <= DEFAULT.max_bytes
        t0 = time.perf_counter()
        check_payload(data, DEFAULT)
        assert time.perf_counter() - t0 < 1.0


def test_loads_limited_raises_only_value_errors() -> None:
    with pytest.raises(ValueError, match=r"not JSON \(not UTF-8\)"):
        loads_limited(b"\xff\xfe", DEFAULT)
    with pytest.raises(ValueError, match="not JSON"):
        loads_limited(b"{", DEFAULT)
    # a limit set above Python's own: still a clean refusal, not a crash
    with pytest.raises(LimitExceeded, match="cannot be decoded"):
        loads_limited(b"9" * 5000, DecodeLimits(max_int_digits=10_000))


def test_parse_message_applies_the_limits() -> None:
    attrs = {"key": "a", "seq": "0"}
    deep = b'{"inflow": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    big = b'{"inflow": ' + b"1" * 5000 + b"}"
    for data, why in [(deep, "nested deeper"), (big, "5,000 digits"), (b'{"inflow": 1, "p": "' + b"x" * 2000 + b'"}',
                                                                           "over the limit of 100 bytes")]:
        got = parse_message(data, attrs, ["inflow"], limits=DecodeLimits(max_bytes=100 if b"xxx" in data else 10**6))
        assert isinstance(got, Rejected) and why in got.reason and got.key == "a", got
    assert parse_message(b'{"inflow": 2.5}', attrs, ["inflow"]) == Parsed("a", 0, False, (2.5,))


def test_dumps_strict_refuses_non_finite_floats_and_names_where() -> None:
    assert json.dumps({"inflow": math.nan}) == '{"inflow": NaN}'  # what went out before
    with pytest.raises(NotJSON, match=r"the float nan at \['inflow'\] is not JSON"):
        dumps_strict({"inflow": math.nan})
    with pytest.raises(NotJSON, match=r"the float -inf at \['a'\]\[1\]"):
        dumps_strict({"a": [1.0, -math.inf]})
    assert json.loads(dumps_strict({"a": [1, 2.5, None, True, "x", {"b": 10**100}]})) == \
        {"a": [1, 2.5, None, True, "x", {"b": 10**100}]}


def test_dumps_strict_refuses_huge_ints_deep_nesting_and_objects_without_crashing() -> None:
    with pytest.raises(NotJSON, match="has 5,000 digits, over the limit of 4,300"):
        dumps_strict({"x": 10**5000 - 1})
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(NotJSON, match="nested deeper than the limit of 64"):
        dumps_strict({"x": deep})
    with pytest.raises(NotJSON, match="is a set"):
        dumps_strict({"x": {1}})
    with pytest.raises(NotJSON, match="JSON object keys are strings"):
        dumps_strict({1: 2})
    assert find_not_json([[1]], max_depth=2) is None and find_not_json([[[1]]], max_depth=2) is not None


def test_int_digits_without_text() -> None:
    for n in (0, 9, 10, 10**17, 10**18 - 1, 10**18, 10**4299, 10**4300 - 1, -(10**4299)):
        assert int_digits(n) == len(str(abs(n))), n
    assert int_digits(10**4300) == 4301 and int_digits(10**5000) == 5001 and int_digits(-(10**5000 - 1)) == 5000


def test_fit_message_cuts_attributes_and_data_with_a_digest() -> None:
    data = b"z" * 12_000_000
    attrs = {"reason": "\u00e9" * 2000, "key": "a", **{f"a{i}": "v" for i in range(150)}}
    out, got = fit_message(data, attrs, keep=["reason", "key"])
    assert message_size(out, got) <= MAX_PUBLISH_BYTES
    assert len(got) <= 100 and got["key"] == "a"
    assert len(got["reason"].encode()) <= 1024 and set(got["reason"]) == {"\u00e9"}
    assert got["truncated"] == "true" and got["original_bytes"] == "12000000"
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert data.startswith(out) and len(out) > 9_000_000
    small, small_attrs = fit_message(b"abc", {"reason": "r"})
    assert (small, small_attrs) == (b"abc", {"reason": "r"})


def writer(**args: object) -> PubSubWriter:
    w = PubSubWriter(topic="out-topic", fields=["a"], name="w", **args)  # type: ignore[arg-type]
    w.outbox = []  # as under Beam: no client
    return w


def test_pubsub_writer_refuses_non_json_and_oversize_messages_in_its_step() -> None:
    w = writer()
    w.a = 1.5  # type: ignore[attr-defined]
    w.step()
    w.a = math.inf  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"not strict JSON: the float inf at \['a'\] is not JSON"):
        w.step()
    w.a = 10**4400  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="4,401 digits"):
        w.step()
    assert w.outbox == [(b'{"a": 1.5}', {"key": "default", "step": "0"})] and w.count == 1
    small = writer(max_message_bytes=40)
    small.a = "x" * 30  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"a message of 54 bytes is over the publish limit of 40 bytes"):
        small.step()
    with pytest.raises(ValueError, match="max_message_bytes must be an integer from 1 to 9,936,000"):
        writer(max_message_bytes=20_000_000)


def test_feedback_codec_refuses_huge_ints_and_splits_chunks_over_the_message_limit() -> None:
    from plugboard_beam.streaming.codec import MAX_MESSAGE, Codec, Unencodable, new_secret

    codec = Codec("run", new_secret())
    with pytest.raises(Unencodable, match="int of 5,000 digits"):
        codec.seal_chunk("k", (0, 3, [10**5000 - 1], False))  # str() of it raised ValueError before
    assert codec.open_chunk(*codec.seal_chunk("k", (0, 3, [10**3999], False))) == ("k", (0, 3, [10**3999], False))
    big = "x" * (MAX_MESSAGE // 3)
    sealed = codec.seal_chunks("k", (1, 10, [big, big, big, 1], True))
    assert len(sealed) == 4 and all(len(d) <= MAX_MESSAGE for d, _ in sealed)
    assert [codec.open_chunk(d, a) for d, a in sealed] == [
        ("k", (1, 10, [big], False)), ("k", (1, 11, [big], False)), ("k", (1, 12, [big], False)),
        ("k", (1, 13, [1], True))]
    with pytest.raises(Unencodable, match=r"a value of type str \(8,000,\d+ bytes encoded; a feedback message "
                                          r"holds at most 8,000,000\) at step 11"):
        codec.seal_chunks("k", (1, 10, [1, "y" * (MAX_MESSAGE + 10)], True))


def test_dead_letter_attributes_are_cut_in_bytes_and_data_over_the_limit_with_a_digest() -> None:
    from plugboard_beam.streaming.pipeline import dead_letter

    data = b"q" * 10_500_000
    msg = dead_letter(data, {"key": "k", "seq": "4", "reason": "spoofed"}, "\u00fc" * 3000, "sensor")
    assert msg.attributes["reader"] == "sensor" and msg.attributes["key"] == "k" and msg.attributes["seq"] == "4"
    assert len(msg.attributes["reason"].encode()) <= 1024 and msg.attributes["reason"].startswith("\u00fc")
    assert msg.attributes["sha256"] == hashlib.sha256(data).hexdigest()
    assert msg.attributes["original_bytes"] == "10500000"
    assert message_size(msg.data, msg.attributes) <= MAX_PUBLISH_BYTES


def test_failure_reasons_are_cut_so_a_failure_record_stays_readable() -> None:
    from plugboard_beam.exceptions import StepError
    from plugboard_beam.runtime.failure import MAX_REASON, Failure

    failure = Failure.of(StepError("c", "k", 2, "step", ValueError("v" * 100_000)))
    assert len(failure.reason) < MAX_REASON + 50 and failure.reason.endswith("(92,000 more characters)")
    assert Failure.from_json(failure.to_json()) == failure  # (a reason over 65536 characters was refused)


class Reading(Event):
    type: _t.ClassVar[str] = "limits-reading"
    data: dict[str, float]


class ReadingsOut(PubSubEventWriter):
    io = IO(input_events=[Reading])


def test_event_writer_publishes_strict_json_only() -> None:
    w = ReadingsOut(topic="events-out", name="ev")
    w.outbox = []
    w._publish_event(Reading(source="s", data={"v": 2.5}))
    with pytest.raises(ValueError, match=r"not strict JSON: the float nan at \['data'\]\['v'\] is not JSON"):
        w._publish_event(Reading(source="s", data={"v": math.nan}))
    assert len(w.outbox) == 1 and json.loads(w.outbox[0][0])["data"] == {"v": 2.5}
