"""The streaming codec: what may cross a cut edge, and nothing received is trusted or executed."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
import pickle
import typing as _t

import pytest

from plugboard_beam.streaming.codec import KIND, MAC, Codec, Malformed, Unencodable, decode_value, encode_value
from plugboard_beam.streaming.keys import key_problem


class Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def roundtrip(value: object) -> object:
    return decode_value(json.loads(json.dumps(encode_value(value), allow_nan=False)))


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**80, -(2**70), 1.5, -0.0, "text ✓", b"\x00\xffbytes", [], [1, [2, [3]]],
    (1, "a", None), {"a": 1, "b": [1.0, 2.0]}, {1: "int key", (1, 2): "tuple key", None: 0, b"k": b"v"},
    [{"t": 1}, {"d": 2}, {"f": "nan"}],  # user dicts that look like our tags stay dicts
])
def test_values_round_trip_exactly(value: object) -> None:
    back = roundtrip(value)
    assert back == value and type(back) is type(value)


def test_non_finite_floats_round_trip() -> None:
    back = roundtrip([math.nan, math.inf, -math.inf])
    assert isinstance(back, list)
    assert math.isnan(back[0]) and back[1] == math.inf and back[2] == -math.inf


def test_foreign_numbers_cross_as_int_and_float() -> None:
    from fractions import Fraction

    assert roundtrip(Fraction(1, 2)) == 0.5


@pytest.mark.parametrize(("value", "where", "type_name"), [
    (object(), "", "object"), ({1, 2}, "", "set"), ([1, [2, Boom("x")]], "[1][1]", "Boom"),
    ({"a": {"b": object()}}, "['a']['b']", "object"),
])
def test_values_that_cannot_cross_are_named(value: object, where: str, type_name: str) -> None:
    with pytest.raises(Unencodable) as err:
        encode_value(value)
    assert err.value.where == where and err.value.type_name == type_name
    assert "cannot cross a cut edge" in str(err.value)


def test_too_deep_values_are_refused_both_ways() -> None:
    deep: list[object] = []
    cur = deep
    for _ in range(100):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(Unencodable):
        encode_value(deep)
    with pytest.raises(Malformed):
        decode_value(json.loads("[" * 100 + "]" * 100))


@pytest.mark.parametrize("data", [{"x": 1}, {"t": 1}, {"f": "1e9"}, {"i": "12a"}, {"b": "***"}, {"d": [[1]]},
                                  {"d": [[[1], 2]]}, {"a": 1, "b": 2}])
def test_decode_accepts_only_its_own_shapes(data: object) -> None:
    with pytest.raises(Malformed):
        decode_value(data)


def test_sealed_chunks_open_only_with_the_runs_secret(tmp_path: Path) -> None:
    codec = Codec("run1", b"s" * 32)
    data, attrs = codec.seal_chunk("k", (3, 5, [1.5, {"a": (1, b"x")}], False))
    assert codec.open_chunk(data, attrs) == ("k", (3, 5, [1.5, {"a": (1, b"x")}], False))
    assert attrs[KIND] == "chunk" and set(attrs) == {KIND, MAC}
    # The secret is in no message and no repr.
    assert b"s" * 32 not in data and all("s" * 32 not in v for v in attrs.values())
    assert "sss" not in repr(codec)
    # Another run, another secret, a tampered byte, a missing or garbled MAC, another kind.
    assert Codec("run2", b"s" * 32).open_chunk(data, attrs) is None
    assert Codec("run1", b"t" * 32).open_chunk(data, attrs) is None
    assert codec.open_chunk(data.replace(b"1.5", b"2.5"), attrs) is None
    assert codec.open_chunk(data, {KIND: "chunk"}) is None
    assert codec.open_chunk(data, {**attrs, MAC: "00" * 32}) is None
    assert codec.open_chunk(data, {**attrs, MAC: "é"}) is None
    assert codec.open(data, attrs, "done") is None
    assert codec.open_chunk(b"", attrs) is None and codec.open_chunk(None, None) is None


def test_a_pickle_with_a_forged_mac_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Boom(str(marker)))
    codec = Codec("run1", os.urandom(32))
    assert codec.open_chunk(payload, {KIND: "chunk", MAC: "ab" * 32, "edge": "1", "start": "0"}) is None
    # Even correctly MACed (an insider with the secret), a pickle is not our encoding.
    good_mac = codec._mac(payload)
    assert codec.open_chunk(payload, {KIND: "chunk", MAC: good_mac}) is None
    assert not marker.exists()


def test_authentic_but_malformed_bodies_are_rejected() -> None:
    codec = Codec("run1", b"k" * 32)
    for body in ({"key": 1, "edge": 0, "start": 0, "end": False, "values": []},
                 {"key": "k", "edge": "0", "start": 0, "end": False, "values": []},
                 {"key": "k", "edge": 0, "start": -1, "end": False, "values": []},
                 {"key": "k", "edge": 0, "start": 0, "end": False, "values": [{"zz": 1}]},
                 {"key": "k", "edge": 0, "start": 0, "end": False}):
        data, attrs = codec.seal("chunk", body)
        assert codec.open_chunk(data, attrs) is None


def test_unencodable_chunk_names_the_step() -> None:
    codec = Codec("r", b"k" * 32)
    with pytest.raises(Unencodable) as err:
        codec.seal_chunk("k", (0, 7, [1.0, object()], False))
    assert err.value.where == "step 8"


@pytest.mark.parametrize("key", ["", "../x", "..", ".hidden", "a/b", "100%", "x" * 300, "a\x00b", "a\nb"])
def test_unsafe_keys_are_rejected_with_a_reason(key: str) -> None:
    assert key_problem(key)


@pytest.mark.parametrize("key", ["asset-01", "a.b", "ünïcode", "with space"])
def test_plain_keys_are_accepted(key: str) -> None:
    assert key_problem(key) is None


def test_ordinary_keys_are_accepted() -> None:
    assert key_problem("asset-01") is None and key_problem("pump 1 (north)") is None


def test_events_cross_a_cut_edge_validated_by_the_models_classes() -> None:
    from pydantic import BaseModel

    from plugboard_beam.events import Event
    from plugboard_beam.streaming.codec import Codec, new_secret

    class Data(BaseModel):
        level: float

    class Alarm(Event):
        type: _t.ClassVar[str] = "alarm"
        data: Data

    ev = Alarm(source="tank", data=Data(level=1.5))
    ev._tick = 7
    codec = Codec("run", new_secret(), {"alarm": Alarm})
    data, attrs = codec.seal_chunk("k", (3, 0, [[ev], ()], False))
    opened = codec.open_chunk(data, attrs)
    assert opened is not None
    key, (edge, start, values, end) = opened
    assert (key, edge, start, end) == ("k", 3, 0, False)
    got = values[0][0]
    assert isinstance(got, Alarm) and got.data.level == 1.5 and got.source == "tank" and got.tick == 7
    assert got.id == ev.id and values[1] == ()
    # a run that does not know the type refuses it (malformed: dropped, never constructed)
    assert Codec("run", codec.secret, {}).open_chunk(data, attrs) is None
