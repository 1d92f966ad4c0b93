"""Events, rule by rule (SEMANTICS.md, Events): ticks, order, event-driven components, the
stop, stage boundaries and bad input. No YAML or Beam here (see test_events_engines.py)."""

from __future__ import annotations

from pathlib import Path
import typing as _t

from ev_parts import (
    BlobSink,
    BlobSrc,
    Counter,
    Ping,
    PongSink,
    PureCounter,
    Raiser,
    Relay,
    Rogue,
    Src,
    Watcher,
)
import pytest

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event, StopEvent
from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import ModelGraph
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.session import run_to_end
from plugboard_beam.runtime.stage import Chunk, StageRun
from plugboard_beam.schemas import ConnectorSpec
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.events import add_events
from plugboard_beam.spec.load import graph_from_components


def model(components: list[Component], wires: list[tuple[str, str]]) -> ModelGraph:
    graph = graph_from_components(components, [ConnectorSpec(source=s, target=t) for s, t in wires])
    return add_events(graph, {c.name: type(c) for c in components})


def run(components: list[Component], wires: list[tuple[str, str]], **kw: _t.Any) -> Engine:
    engine = Engine(model(components, wires), {c.name: c for c in components}, **kw)
    run_to_end(engine)
    return engine


# ------------------------------------------------------------------------------ the API
def test_event_fields_and_handler_decorator_as_plugboard() -> None:
    ev = Ping(source="a", data={"step": 3})
    assert ev.type == "ping" and ev.source == "a" and ev.data.step == 3  # type: ignore[union-attr]
    assert ev.version == "0.1.0" and ev.metadata == {} and ev.id and ev.timestamp.tzinfo is not None
    assert StopEvent.type == "system.stop" and StopEvent.safe_type() == "system_stop"

    class Pop(Component):
        io = IO(outputs=["y"], input_events=[Ping])

        @Ping.handler(populates_fields=["y"])
        async def on_ping(self, event: Ping) -> None:
            self.y = event.data.step  # type: ignore[union-attr]

    assert Pop.event_io().handlers["ping"] == "on_ping"
    assert Pop.event_io().handlers["system.stop"] == "_stop_handler"
    with pytest.raises(NotImplementedError):
        class NoType(Event):
            data: dict[str, int]


def test_io_events_merge_along_the_class_hierarchy() -> None:
    class Base(Component):
        io = IO(inputs=["t"], input_events=[Ping])

    class Child(Base):
        io = IO(outputs=["y"], output_events=[StopEvent])

    io = Child.io
    assert io.inputs == ("t",) and io.outputs == ("y",)
    assert io.input_events == (Ping,) and io.output_events == (StopEvent,)
    assert Child.event_io().may_stop


def test_stop_producers_are_found_by_name_in_their_code() -> None:
    assert Src.event_io().may_stop  # queues StopEvent without declaring it
    assert not Relay.event_io().may_stop
    assert "system.stop" in Src.event_io().output_types


# ------------------------------------------------------------------------------ ticks
def test_upstream_through_fields_same_step_others_one_step_later() -> None:
    src, w, r = Src(name="src", n=6, at=[1, 3]), Watcher(name="w"), Relay(name="r", at=[2])
    run([src, w, r], [("src.t", "w.t"), ("src.t", "r.t")])
    # src is upstream of w: its tick-1 event is seen before w's step 1; r is a sibling: its
    # tick-2 event is seen one step later, before step 3.
    assert w.seen == [(1, "src", 1), (3, "r", 2), (3, "src", 3)]
    # r sees its own tick-2 event one step later too.
    assert r.seen == [(1, "src", 1), (3, "r", 2), (3, "src", 3)]


def test_downstream_event_closing_a_loop_lags_one_step() -> None:
    src, r1, r2 = Src(name="src", n=6), Relay(name="r1"), Relay(name="r2", at=[1, 4])
    run([src, r1, r2], [("src.t", "r1.t"), ("r1.u", "r2.t")])
    assert r1.seen == [(2, "r2", 1), (5, "r2", 4)]
    assert r2.seen == [(2, "r2", 1), (5, "r2", 4)]


def test_order_is_tick_then_producer_then_queue_order() -> None:
    src, r, w = Src(name="src", n=5, at=[2], per=3), Relay(name="r", at=[1]), Watcher(name="w")
    run([src, r, w], [("src.t", "r.t"), ("src.t", "w.t")])
    # before r's step 2: r's own tick-1 event (older tick) first, then src's tick-2 events in
    # the order they were queued.
    assert r.log[r.log.index("step 1 t=1") + 1:r.log.index("step 2 t=2")] == [
        "ping r:1:", "ping src:2:0", "ping src:2:1", "ping src:2:2"]


def test_event_only_consumer_without_outputs_never_steps() -> None:
    src, c = Src(name="src", n=8, at=[0, 2, 7]), PureCounter(name="c")
    run([src, c], [])
    assert c.n == 3 and c.step_calls == 0 and c.status == "completed"


def test_event_only_consumer_with_outputs_steps_per_event_tick_and_once_more_unsent() -> None:
    src, c, sink = Src(name="src", n=8, at=[0, 2, 7]), Counter(name="c"), PongSink(name="sink")
    engine = run([src, c, sink], [("c.count", "sink.count")])
    assert c.log == ["step 0 count=1", "step 1 count=2", "step 2 count=3", "step 3 count=3"]
    assert sink.rows == [1, 2, 3]  # the extra last step's output is not sent
    assert sink.pongs == [1, 2, 3]  # returned events are emitted (handled after sink's last step)
    assert engine.steps()["c"] == 4


def test_event_after_the_last_step_is_handled_before_destroy_without_a_step() -> None:
    src, w, r = Src(name="src", n=4), Watcher(name="w"), Relay(name="r", at=[3])
    run([src, w, r], [("src.t", "w.t"), ("src.t", "r.t")])
    assert w.steps == 4 and w.seen == [(4, "r", 3)]
    assert w.log[-1] == "destroy steps=4 completed"


def test_stop_event_same_tick_downstream_next_step_itself() -> None:
    src, w = Src(name="src", n=100, stop_at=3), Watcher(name="w")
    engine = run([src, w], [("src.t", "w.t")])
    # w is downstream: sees the stop before its step 3, takes it (closed), stops.
    assert w.log == ["step 0 t=0 closed=0", "step 1 t=1 closed=0", "step 2 t=2 closed=0",
                     "step 3 t=3 closed=1", "destroy steps=4 stopped"]
    # src sees its own stop one step later, takes that step (sending nothing), stops.
    assert engine.steps() == {"src": 5, "w": 4}
    assert src.status == "stopped"


# ------------------------------------------------------------------- stage boundaries
def _split(components: list[Component], wires: list[tuple[str, str]]) -> dict[str, StageRun]:
    graph = model(components, wires)
    by = {c.name: c for c in components}
    runs = {}
    for c in components:
        run_ = StageRun(Engine(graph, {c.name: by[c.name]}, key="k", members=[c.name]))
        run_.start()
        runs[c.name] = run_
    return runs


def _pump(runs: dict[str, StageRun], order: list[str], chunk_rounds: int) -> None:
    """Run stages in the given order, moving chunks between them, until all finish."""
    owner = {eid: name for name, r in runs.items() for eid in r.engine.inputs}
    inbox: dict[str, list[Chunk]] = {n: [] for n in runs}
    for _ in range(10_000):
        if all(r.finished for r in runs.values()):
            return
        for name in order:
            r = runs[name]
            for ch in inbox[name]:
                r.feed(ch)
            inbox[name] = []
            for ch in [c for batch in r.advance(max_rounds=chunk_rounds) for c in batch]:
                inbox[owner[ch[0]]].append(ch)
    raise AssertionError("stages did not finish")


@pytest.mark.parametrize("order", [["src", "w", "r"], ["r", "w", "src"], ["w", "r", "src"]])
@pytest.mark.parametrize("rounds", [1, 3])
def test_one_stage_per_component_gives_the_same_deliveries(order: list[str], rounds: int) -> None:
    ref = [Src(name="src", n=9, at=[1, 3, 8]), Watcher(name="w"), Relay(name="r", at=[2, 5, 8])]
    wires = [("src.t", "w.t"), ("src.t", "r.t")]
    run(ref, wires)
    comps = [Src(name="src", n=9, at=[1, 3, 8]), Watcher(name="w"), Relay(name="r", at=[2, 5, 8])]
    runs = _split(comps, wires)
    _pump(runs, order, rounds)
    for r in runs.values():
        assert r.close() == []
    assert _t.cast(Watcher, comps[1]).seen == _t.cast(Watcher, ref[1]).seen
    assert _t.cast(Relay, comps[2]).log == _t.cast(Relay, ref[2]).log


def test_engine_state_with_pending_events_survives_pickling() -> None:
    comps = [Src(name="src", n=6, at=[1, 2]), Watcher(name="w")]
    runs = _split(comps, [("src.t", "w.t")])
    chunks = [c for batch in runs["src"].advance() for c in batch]
    w = runs["w"]
    for ch in chunks:
        w.feed(ch)
    w2 = StageRun.load(w.dump(), w.engine.graph)
    list(w2.advance())
    assert w2.finished and w2.close() == []
    watcher = _t.cast(Watcher, w2.engine.runners["w"].comp)
    assert watcher.seen == [(1, "src", 1), (2, "src", 2)]


# ------------------------------------------------------------------------- bad input
def test_queueing_an_undeclared_type_names_component_key_and_step() -> None:
    with pytest.raises(StepError) as err:
        run([Src(name="src", n=5), Rogue(name="rogue")], [("src.t", "rogue.t")], key="k7")
    msg = str(err.value)
    assert "'rogue'" in msg and "'k7'" in msg and "step 2" in msg and "'pong'" in msg and "output_events" in msg


def test_a_raising_handler_names_component_key_step_and_destroy_runs() -> None:
    bad = Raiser(name="bad", bad=3)
    with pytest.raises(StepError) as err:
        run([Src(name="src", n=6, at=[1, 3]), bad], [("src.t", "bad.t")], key="k1")
    msg = str(err.value)
    assert "'bad'" in msg and "'k1'" in msg and "on_ping()" in msg and "step 3" in msg and "bad ping" in msg
    assert bad.destroyed and bad.status == "failed"


def test_unpicklable_event_crossing_a_stage_is_a_clear_error() -> None:
    comps = [BlobSrc(name="src"), BlobSink(name="sink")]
    runs = _split(comps, [("src.t", "sink.t")])
    list(runs["src"].advance())
    err = runs["src"].error
    assert err is not None
    assert err.component == "src" and err.key == "k" and err.step == 1
    assert "pickle" in str(err) and "'sink'" in str(err)
    assert runs["src"].engine.finished  # its outputs ended, so the other stage can finish


def test_fused_run_of_unpicklable_event_is_fine() -> None:
    run([BlobSrc(name="src"), BlobSink(name="sink")], [("src.t", "sink.t")])


def test_type_name_used_by_two_classes_is_a_model_error() -> None:
    class Ping2(Event):
        type: _t.ClassVar[str] = "ping"
        data: dict[str, int]

    class Other(Component):
        io = IO(inputs=["t"], output_events=[Ping2])

    with pytest.raises(ModelError, match="'ping' is used by 2 different classes"):
        model([Src(name="src"), Other(name="o")], [("src.t", "o.t")])


def test_unproduced_input_event_and_stray_handler_are_model_errors() -> None:
    class Lonely(Component):
        io = IO(inputs=["t"], input_events=[Ping])

    class Stray(Component):
        io = IO(inputs=["t"])

        @Ping.handler
        def on_ping(self, event: Ping) -> None:
            pass

    with pytest.raises(ModelError) as err:
        model([Stray(name="stray"), Lonely(name="l"), _Feeder(name="f")], [("f.t", "l.t"), ("f.t", "stray.t")])
    text = str(err.value)
    assert "input event 'ping' is not emitted by any component" in text
    assert "handler on_ping() is for event type 'ping', which is not in input_events" in text


class _Feeder(Component):
    io = IO(outputs=["t"])


def test_readme_events_example_runs_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    import ast
    import asyncio
    import re

    from conftest import ROOT

    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
              if "plugboard_beam.events" in b]
    assert len(blocks) == 1, "README lost its Events example"
    code = compile(blocks[0], "README.md", "exec")  # a script: no top-level await
    namespace: dict[str, _t.Any] = {"__name__": "readme_events"}
    exec(code, namespace)
    asyncio.run(namespace["main"]())
    log, pages = capsys.readouterr().out.splitlines()
    assert ast.literal_eval(log) == ["level=0", "level=3", "level=6", "level=9", "alarm 12", "level=12",
                                     "alarm 15", "level=15"]
    assert ast.literal_eval(pages) == [12, 15]


def test_event_driven_component_waiting_on_its_own_downstream_is_a_model_error() -> None:
    # c (event-driven) -> sink.count; sink would emit the Pings c steps on.
    class PingBack(Component):
        io = IO(inputs=["count"], output_events=[Ping])

    with pytest.raises(ModelError, match="neither can take a first step"):
        model([Counter(name="c"), PingBack(name="back")], [("c.count", "back.count")])


def test_plugboard_style_event_connectors_are_accepted_and_the_stop_ends_the_model() -> None:
    import asyncio

    from plugboard_beam.connector import AsyncioConnector, ConnectorBuilder
    from plugboard_beam.events import EventConnectorBuilder
    from plugboard_beam.process import LocalProcess

    # A source that never closes: the StopEvent it queues at step 5 ends the whole model.
    src, relay, count = Src(name="src", n=10**9, at=[1, 3], stop_at=5), Relay(name="relay"), Counter(name="count")
    sink = PongSink(name="sink")
    comps: list[Component] = [src, relay, count, sink]
    builder = EventConnectorBuilder(connector_builder=ConnectorBuilder(connector_cls=AsyncioConnector))
    event_connectors = builder.build(comps)
    assert event_connectors["ping"].producers == ("src", "relay")
    assert event_connectors["ping"].consumers == ("relay", "count")
    wires = [("src.t", "relay.t"), ("count.count", "sink.count")]
    process = LocalProcess(comps, [AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires]
                           + list(event_connectors.values()))

    async def main() -> None:
        async with process:
            await process.run()

    asyncio.run(main())
    assert process.steps() == {"src": 7, "relay": 6, "count": 3, "sink": 2}
    assert {c.status for c in comps} == {"stopped"}
    assert relay.log[-1] == "destroy stopped"


def test_json_codec_round_trips_and_refuses_bad_input() -> None:
    import json

    from plugboard_beam.events.codec import EventDecodeError, decode_batch, encode_batch, event_classes

    classes = event_classes([Src, Counter])
    assert set(classes) == {"ping", "pong", "system.stop"}
    batch = [Ping(source="a", data={"step": 3}, metadata={"m": "1"}), StopEvent(source="a", data={})]
    back = decode_batch(json.loads(json.dumps(encode_batch(batch))), classes)
    assert back == batch
    with pytest.raises(EventDecodeError, match="unknown event type 'nope'"):
        decode_batch([{"type": "nope"}], classes)
    with pytest.raises(EventDecodeError, match="invalid 'ping' event"):
        decode_batch([{"type": "ping", "source": "a", "data": {"step": "x"}}], classes)
    with pytest.raises(EventDecodeError):
        decode_batch({"type": "ping"}, classes)


def test_stop_queued_from_code_that_does_not_name_stopevent_is_refused_not_lost() -> None:
    def make_stop(source: str) -> Event:  # the class below never names StopEvent itself
        return StopEvent(source=source, data={})

    class Sneaky(Component):
        io = IO(inputs=["t"])

        def step(self) -> None:
            if self.t == 1:
                self.io.queue_event(make_stop(self.name))

    with pytest.raises(StepError, match=r"'system.stop'.*add StopEvent to IO\(output_events"):
        run([Src(name="src", n=3), Sneaky(name="sneaky")], [("src.t", "sneaky.t")])
