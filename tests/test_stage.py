"""StageRun: chunks out of order, repeated chunks, failures closing outputs (no Beam)."""

from __future__ import annotations

import pickle

from components import Boom, Counter, Pass, Sink
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.stage import StageRun
from plugboard_beam.schemas import ConnectorSpec
from plugboard_beam.spec.load import graph_from_components


def stage(boom: bool = False) -> tuple[StageRun, int]:
    mid = Boom(name="mid") if boom else Pass(name="mid")
    comps = [Counter(name="src", n=1), mid, Sink(name="sink")]
    graph = graph_from_components(comps, [ConnectorSpec(source="src.v", target="mid.x"),
                                          ConnectorSpec(source="mid.y", target="sink.x")])
    engine = Engine(graph, {c.name: c for c in comps}, key="k", members=["mid"])
    run = StageRun(engine)
    run.start()
    (edge_in,) = engine.inputs
    return run, edge_in


def test_out_of_order_and_repeated_chunks_apply_once_in_order() -> None:
    run, e = stage()
    outs = []
    for chunk in [(e, 3, [3, 4], True), (e, 0, [0, 1], False), (e, 0, [0, 1], False), (e, 2, [2], False)]:
        run.feed(chunk)
        outs += [c for batch in run.advance() for c in batch]
    values = [v for (_, _, vals, _) in outs for v in vals]
    assert values == [0, 1, 2, 3, 4]
    assert outs[-1][3] is True  # the end is passed on once
    assert sum(1 for o in outs if o[3]) == 1
    assert run.finished and run.close() == []


def test_state_survives_pickling_between_chunks() -> None:
    run, e = stage()
    run.feed((e, 0, [10, 11], False))
    first = [c for batch in run.advance() for c in batch]
    run2: StageRun = pickle.loads(pickle.dumps(run))
    run2.feed((e, 0, [10, 11], False))  # a redelivery after the move: ignored
    run2.feed((e, 2, [12], True))
    rest = [c for batch in run2.advance() for c in batch]
    assert [v for o in first + rest for v in o[2]] == [10, 11, 12]
    assert [o[1] for o in first + rest if o[2]] == [0, 2]  # chunk starts are source steps


def test_failure_ends_outputs_so_downstream_can_finish() -> None:
    run, e = stage(boom=True)
    run.feed((e, 0, [0, 1, 2, 3], False))
    outs = [c for batch in run.advance() for c in batch]
    assert [v for o in outs for v in o[2]] == [0, 1]
    assert outs[-1][3] is True
    errors = run.close()
    assert errors and errors[0].component == "mid" and errors[0].step == 2


def test_dump_leaves_the_graph_out_and_load_restores_it() -> None:
    run, e = stage()
    run.feed((e, 0, [10, 11], False))
    first = [c for batch in run.advance() for c in batch]
    blob = run.dump()
    assert run.engine.graph is not None  # dumping does not disturb the live run
    assert len(blob) < len(pickle.dumps(run))
    run2 = StageRun.load(blob, run.engine.graph)
    run2.feed((e, 2, [12], True))
    rest = [c for batch in run2.advance() for c in batch]
    assert [v for o in first + rest for v in o[2]] == [10, 11, 12]
    assert run2.finished and run2.close() == []
