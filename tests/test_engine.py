"""The step engine, rule by rule (SEMANTICS.md), without YAML or Beam."""

from __future__ import annotations

import typing as _t

import pytest

from components import (
    LOG, Add, Boom, Counter, Double, Pass, SetThenClose, Sink, Sink2, Sleepy, Sometimes, SyncCounter,
)
from plugboard_beam.component import Component
from plugboard_beam.exceptions import StepError
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.schemas import ConnectorSpec
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import graph_from_components


def run(components: list[Component], wires: list[tuple[str, str]], **kw: _t.Any) -> Engine:
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    engine = Engine(graph, {c.name: c for c in components}, **kw)
    run_to_end(engine)
    return engine


def test_source_closing_step_sends_nothing() -> None:
    sink = Sink(name="sink")
    engine = run([SetThenClose(name="src", n=8), sink], [("src.v", "sink.x")])
    assert sink.rows == [1, 2, 3, 4, 5, 6, 7]
    assert engine.steps() == {"src": 8, "sink": 7}


def test_sync_methods_work_like_async() -> None:
    sink = Sink(name="sink")
    run([SyncCounter(name="src", n=4), sink], [("src.v", "sink.x")])
    assert sink.rows == [0, 1, 2, 3]


def test_outputs_are_sticky_and_unset_sends_none() -> None:
    rec = Sink2(name="rec")
    run([Counter(name="src", n=7, start=1), Sometimes(name="s"), rec],
        [("src.v", "s.v"), ("s.w", "rec.a"), ("s.never", "rec.b")])
    assert rec.rows == [(None, None), (None, None), (3, None), (3, None), (3, None), (6, None), (6, None)]


def test_unequal_streams_step_min_len() -> None:
    rec = Sink2(name="rec")
    engine = run([Counter(name="s3", n=3), Counter(name="s6", n=6), rec],
                 [("s3.v", "rec.a"), ("s6.v", "rec.b")])
    assert rec.rows == [(0, 0), (1, 1), (2, 2)]
    assert engine.steps()["rec"] == 3


def test_fan_in_orders_by_source_step_then_connector_order() -> None:
    rec = Sink2(name="rec")
    run([Counter(name="s3", n=3, start=1), Counter(name="s4", n=4, start=1),
         Counter(name="s9", n=9, start=1), rec],
        [("s3.v", "rec.a"), ("s4.v", "rec.a"), ("s9.v", "rec.b")])
    assert [a for a, _ in rec.rows] == [1, 1, 2, 2, 3, 3, 4]
    assert len(rec.rows) == 7


def test_fan_in_connector_order_not_component_order() -> None:
    rec = Sink2(name="rec")
    # Same sources, connectors listed the other way round: s4's values come first each step.
    run([Counter(name="s3", n=3, start=10), Counter(name="s4", n=4, start=20),
         Counter(name="s9", n=9), rec],
        [("s4.v", "rec.a"), ("s3.v", "rec.a"), ("s9.v", "rec.b")])
    assert [a for a, _ in rec.rows] == [20, 10, 21, 11, 22, 12, 23]


def test_loop_seed_of_one() -> None:
    rec = Sink2(name="rec")
    c = Add(name="c", initial_values={"b": [-1]})
    run([Counter(name="a", n=10), c, Double(name="d"), rec],
        [("a.v", "c.a"), ("c.s", "d.x"), ("d.y", "c.b"), ("c.s", "rec.a"), ("c.s", "rec.b")])
    # c's step k sees (k, 2 * c's input a at step k-1)
    seen = [row[0] for row in rec.rows]
    assert seen[0] == (0, -1)
    assert len(seen) == 10


def test_loop_seed_of_n_lags_n_steps() -> None:
    rec = Sink2(name="rec")
    c = Pass(name="c")
    m = Add(name="m", initial_values={"b": [100, 200]})
    run([Counter(name="a", n=6), m, c, rec],
        [("a.v", "m.a"), ("m.s", "c.x"), ("c.y", "m.b"), ("m.s", "rec.a"), ("m.s", "rec.b")])
    pairs = [row[0] for row in rec.rows]
    assert pairs[0] == (0, 100)
    assert pairs[1] == (1, 200)
    assert pairs[2] == (2, (0, 100))  # what m sent at step 0 comes back at step 2
    assert len(pairs) == 6


def test_close_cascades_through_a_loop() -> None:
    # When the source ends, the loop ends too: every component finishes and the run returns.
    c = Add(name="c", initial_values={"b": [0]})
    sink = Sink(name="sink")
    engine = run([Counter(name="a", n=5), c, Pass(name="p"), sink],
                 [("a.v", "c.a"), ("c.s", "p.x"), ("p.y", "c.b"), ("p.y", "sink.x")])
    assert engine.finished
    assert engine.steps() == {"a": 6, "c": 5, "p": 5, "sink": 5}


def test_seeded_loop_without_source_ends_when_seed_stream_drained() -> None:
    # A loop whose only other input has ended stops even though values keep circulating.
    c = Add(name="c", initial_values={"b": [0, 0, 0]})
    engine = run([Counter(name="a", n=2), c, Pass(name="p")],
                 [("a.v", "c.a"), ("c.s", "p.x"), ("p.y", "c.b")])
    assert engine.steps()["c"] == 2


def test_component_that_really_awaits_runs_on_the_fallback_loop() -> None:
    sink = Sink(name="sink")
    run([Counter(name="a", n=5), Sleepy(name="z"), sink], [("a.v", "z.x"), ("z.y", "sink.x")])
    assert sink.rows == [0, 1, 2, 3, 4]


def test_failure_names_component_key_step_and_destroys_everyone() -> None:
    LOG.clear()
    sink = Sink(name="sink")
    graph = graph_from_components(
        [Counter(name="a", n=5), Boom(name="bomb"), sink],
        [ConnectorSpec(source="a.v", target="bomb.x"), ConnectorSpec(source="bomb.y", target="sink.x")],
    )
    comps = {"a": Counter(name="a", n=5), "bomb": Boom(name="bomb"), "sink": sink}
    engine = Engine(graph, comps, key="k7")
    with pytest.raises(StepError) as info:
        run_to_end(engine)
    err = info.value
    assert (err.component, err.key, err.step) == ("bomb", "k7", 2)
    assert "two is too many" in str(err) and "'bomb'" in str(err) and "k7" in str(err)
    assert "destroy bomb" in LOG and "destroy sink" in LOG
    assert sink.rows == [0, 1]


def test_initial_values_for_unknown_field_rejected() -> None:
    with pytest.raises(Exception, match="not inputs"):
        Pass(name="p", initial_values={"nope": [1]})


def test_unseeded_cycle_rejected_before_any_step() -> None:
    with pytest.raises(ModelError, match="initial_values"):
        graph_from_components(
            [Pass(name="ping"), Pass(name="pong")],
            [ConnectorSpec(source="ping.y", target="pong.x"), ConnectorSpec(source="pong.y", target="ping.x")],
        )


def test_snapshot_round_trip_mid_run() -> None:
    """An engine pickled between two chunks of input continues exactly where it was."""
    import pickle

    from components import Sink2 as S2

    rec = S2(name="rec")
    comps: dict[str, Component] = {"c": Add(name="c", initial_values={"b": [7]}), "rec": rec}
    graph = graph_from_components(
        [Counter(name="a", n=1), comps["c"], rec],
        [ConnectorSpec(source="a.v", target="c.a"), ConnectorSpec(source="c.s", target="c.b"),
         ConnectorSpec(source="c.s", target="rec.a"), ConnectorSpec(source="a.v", target="rec.b")],
    )
    engine = Engine(graph, comps, members=["c", "rec"])
    engine.init()
    in_a = [p for p in engine.inputs.values() if p.edge.target == "c"][0]
    in_b = [p for p in engine.inputs.values() if p.edge.target == "rec"][0]
    for v in (1, 2):
        in_a.put(v)
        in_b.put(v)
    engine.run()
    restored: Engine = pickle.loads(pickle.dumps(engine))
    for port in (restored.inputs[in_a.edge.id], restored.inputs[in_b.edge.id]):
        port.put(3)
        port.close()
    restored.run()
    assert restored.finished
    rows = restored.runners["rec"].comp.rows  # type: ignore[attr-defined]
    assert rows == [((1, 7), 1), ((2, (1, 7)), 2), ((3, (2, (1, 7))), 3)]
