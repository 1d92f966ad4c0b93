"""Library components: message parsing, argument checks, row replay, JSON lines."""

from __future__ import annotations

from pathlib import Path
import textwrap

import pytest

from plugboard_beam.library.pubsub import Parsed, Rejected, parse_message
from plugboard_beam.spec import ModelError, load_model


@pytest.mark.parametrize(("data", "attrs", "want"), [
    (b'{"x": 1, "y": 2}', {"key": "k", "seq": "3"}, Parsed("k", 3, False, (1, 2))),
    (b'{"x": 1, "y": 2, "z": 0}', {"key": "k"}, Parsed("k", None, False, (1, 2))),
    (b"", {"key": "k", "seq": "4", "eos": "true"}, Parsed("k", 4, True, ())),
    (b'{"x": 1}', {"key": "k"}, Rejected("payload lacks field(s) y", "k")),
    (b"[1, 2]", {"key": "k"}, Rejected("payload is a JSON list, not an object", "k")),
    (b'{"x": 1, "y": 2}', {}, Rejected("no 'key' attribute (it names the model instance)")),
    (b'{"x": 1, "y": 2}', {"key": "k", "seq": "two"}, Rejected("attribute seq='two' is not an integer", "k")),
    (b'{"x": 1, "y": 2}', {"key": "k", "seq": "-1"}, Rejected("attribute seq=-1 is negative", "k")),
])
def test_parse_message(data: bytes, attrs: dict[str, str], want: object) -> None:
    assert parse_message(data, attrs, ["x", "y"]) == want


def test_not_json_is_rejected_with_reason() -> None:
    got = parse_message(b"\xffnope", {"key": "k"}, ["x"])
    assert isinstance(got, Rejected) and got.reason.startswith("payload is not JSON")


def model(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def test_reader_fields_are_its_outputs_and_are_validated(tmp_path: Path) -> None:
    good = model(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: plugboard_beam.library.PubSubReader, args: {name: r, topic: t1x, fields: [a, b]}}
              - {type: plugboard_beam.library.JsonLinesWriter, args: {name: w, path: out.jsonl, fields: [a, b]}}
              connectors:
              - {source: r.a, target: w.a}
              - {source: r.b, target: w.b}
    """)
    assert load_model(good).graph.node("r").outputs == ("a", "b")
    bad = model(tmp_path, """
        plugboard:
          process:
            args:
              components:
              - {type: plugboard_beam.library.PubSubReader, args: {name: r, fields: [a]}}
              - {type: plugboard_beam.library.JsonLinesWriter, args: {name: w, path: out.jsonl, fields: [a]}}
              connectors:
              - {source: r.c, target: w.a}
    """)
    with pytest.raises(ModelError) as info:
        load_model(bad)
    text = str(info.value)
    assert "needs a 'subscription' or a 'topic'" in text and ":5:" in text


def test_list_source_and_json_lines_writer(tmp_path: Path) -> None:
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.runners.local import LocalRunner

    path = model(tmp_path, f"""
        plugboard:
          process:
            args:
              components:
              - {{type: plugboard_beam.library.ListSource, args: {{name: s, fields: [a, b], rows: [{{a: 1, b: 2}}, {{a: 3}}]}}}}
              - {{type: plugboard_beam.library.JsonLinesWriter, args: {{name: w, path: {tmp_path}/o.jsonl, fields: [a, b]}}}}
              connectors:
              - {{source: s.a, target: w.a}}
              - {{source: s.b, target: w.b}}
    """)
    LocalRunner().run(load_model(path), RunOptions())
    assert (tmp_path / "o.jsonl").read_text().splitlines() == ['{"a": 1, "b": 2}', '{"a": 3, "b": null}']
