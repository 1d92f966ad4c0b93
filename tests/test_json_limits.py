"""Decode limits checked before parsing, strict JSON out, messages that fit Pub/Sub (issue 15.1, 15.6)."""

from __future__ import annotations

import hashlib
import json
import math
import time

import pytest

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
from plugboard_beam.library.pubsub import Parsed, Rejected, parse_message

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
    # siblings do not add up: depth is the deepest path
    assert check_payload(b"[" + b"[[]]," * 10_000 + b"[]]", DecodeLimits(max_depth=3)) is None


def test_payload_size_limit() -> None:
    with pytest.raises(LimitExceeded, match="payload of 1,000,001 bytes is over the limit of 1,000,000 bytes"):
        check_payload(b" " * 1_000_001, DEFAULT)
    with pytest.raises(LimitExceeded, match="over the limit of 10 bytes"):
        check_payload(b'{"a": 12345}', DecodeLimits(max_bytes=10))


def test_pre_scan_of_a_megabyte_is_cheap() -> None:
    data = json.dumps({"inflow": [1.5] * 150_000, "s": "x" * 100_000}).encode()
    assert len(data) < DEFAULT.max_bytes
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
