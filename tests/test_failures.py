"""The one failure protocol: the failure record, and a failing model giving the same outputs,
message and exit code on every engine (LocalProcess, local, direct fused, direct --stages
component)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
import subprocess
import typing as _t

import pytest
import yaml

from components import LOG, Boom, Counter, Sink
from conftest import cli_command
from failing_parts import MODEL, SOURCE
from plugboard_beam.connector import AsyncioConnector
from plugboard_beam.exceptions import StepError
from plugboard_beam.process import LocalProcess
from plugboard_beam.runtime.failure import Failure, describe_failures, merge_by_key
from plugboard_beam.schemas import ConnectorSpec


def test_failure_record_round_trips_through_json() -> None:
    err = StepError("frag", "k1", 2, "step", RuntimeError("broke at 3"))
    later = StepError("w", "k1", 0, "destroy", OSError("disk full"))
    failure = Failure.of(err, [later])
    assert failure.message == str(err) == "component 'frag' (key 'k1') failed in step 2 (counting from 0): " \
                                          "RuntimeError: broke at 3"
    assert Failure.from_json(failure.to_json()) == failure
    assert failure.describe().splitlines()[1].strip() == "also: component 'w' (key 'k1') failed in destroy: " \
                                                         "OSError: disk full"
    emit = Failure.of(StepError("frag", "k5", 4, "emit", TypeError("no"), field="y"))
    assert "failed in step 4 (counting from 0), sending output 'y': TypeError: no" in emit.message
    assert Failure.from_json(emit.to_json()).field == "y"


@pytest.mark.parametrize("text", ['[]', '{"key": 1}', '{"step": "2", "reason": "x", "error_type": "E"}',
                                  '{"phase": "rm -rf", "reason": "x", "error_type": "E"}', "not json", '{"also": 3}'])
def test_malformed_failure_records_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Failure.from_json(text)


def test_merge_by_key_keeps_one_failure_per_key_without_repeats() -> None:
    a = Failure("k", "frag", 0, "construct", "ValueError", "cannot build")
    b = Failure("k", "w", 0, "destroy", "OSError", "x")
    merged = merge_by_key([a, a, b, Failure("j", "frag", 1, "step", "E", "r")])
    assert [f.key for f in merged] == ["j", "k"]
    assert merged[1].flat() == a and merged[1].also == (b,)


def test_failures_are_described_one_per_line_and_counted_past_a_limit() -> None:
    failures = [Failure(f"k{i}", "frag", i, "step", "RuntimeError", f"broke at {i}") for i in range(3)]
    assert describe_failures(failures) == "".join(f"\n  {f.describe()}" for f in failures)
    assert describe_failures(failures, 2) == "".join(f"\n  {f.describe()}" for f in failures[:2]) + "\n  ... and 1 more"
    assert describe_failures(failures, 3) == describe_failures(failures)


def test_local_process_drains_a_component_queued_behind_the_failed_one() -> None:
    """A source sends 64 values in one burst; the first consumer fails on its third value: the
    component queued behind it still consumes all 64 (SEMANTICS), then all are destroyed."""
    LOG.clear()
    sink, after = Sink(name="sink"), Sink(name="after")
    comps = [Counter(name="a", n=64), Boom(name="bomb"), after, sink]
    wires = [("a.v", "bomb.x"), ("bomb.y", "after.x"), ("a.v", "sink.x")]
    process = LocalProcess(components=comps,
                           connectors=[AsyncioConnector(spec=ConnectorSpec(source=s, target=t)) for s, t in wires])

    async def go() -> None:
        async with process:
            await process.run()

    with pytest.raises(StepError) as info:
        asyncio.run(go())
    assert (info.value.component, info.value.step) == ("bomb", 2)
    assert sink.rows == list(range(64))
    assert after.rows == [0, 1]
    assert LOG.count("destroy sink") == 1 and LOG.count("destroy bomb") == 1 and LOG.count("destroy after") == 1


# ------------------------------------------------------------------ the same failure on every engine
def model_dir(root: Path, fail_at: int) -> Path:
    root.mkdir(parents=True)
    (root / "fparts.py").write_text(SOURCE)
    model = yaml.safe_load(yaml.safe_dump(MODEL))
    model["plugboard"]["process"]["args"]["components"][1]["args"]["fail_at"] = fail_at
    (root / "m.yaml").write_text(yaml.safe_dump(model))
    (root / "out").mkdir()
    return root


def outputs(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / "out").iterdir())}


def via_local_process(root: Path) -> tuple[int, str, dict[str, str]]:
    """The same model built in Python and run with LocalProcess (paths relative to ``root``)."""
    spec = importlib.util.spec_from_file_location(f"fparts_{id(root)}", root / "fparts.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = MODEL["plugboard"]["process"]["args"]
    comps = []
    for c in yaml.safe_load((root / "m.yaml").read_text())["plugboard"]["process"]["args"]["components"]:
        kwargs = {k: (str(root / v.replace("{key}", "default")) if k in ("path", "marker") else v)
                  for k, v in c["args"].items()}
        comps.append(getattr(mod, c["type"].split(".")[1])(**kwargs))
    process = LocalProcess(components=comps, connectors=[
        AsyncioConnector(spec=ConnectorSpec(source=w["source"], target=w["target"])) for w in args["connectors"]])

    async def go() -> None:
        async with process:
            await process.run()

    try:
        asyncio.run(go())
    except StepError as err:
        return 1, err.message, outputs(root)
    return 0, "", outputs(root)


def via_cli(root: Path, *args: str) -> tuple[int, str, dict[str, str]]:
    proc = subprocess.run([*cli_command(), "process", "run", "m.yaml", *args], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert "Traceback" not in proc.stderr and "warning" not in proc.stderr.lower(), proc.stderr
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("component '")]
    return proc.returncode, "\n".join(lines), outputs(root)


ENGINES: dict[str, _t.Callable[[Path], tuple[int, str, dict[str, str]]]] = {
    "LocalProcess": via_local_process,
    "local": lambda root: via_cli(root, "--runner", "local"),
    "direct-fused": lambda root: via_cli(root),
    "direct-component": lambda root: via_cli(root, "--stages", "component"),
}


@pytest.mark.slow
@pytest.mark.parametrize("fail_at", [1, 40])
def test_a_failure_is_the_same_on_every_engine(tmp_path: Path, fail_at: int) -> None:
    results = {name: run(model_dir(tmp_path / name, fail_at)) for name, run in ENGINES.items()}
    code, message, files = results["local"]
    assert code == 1
    assert message == (f"component 'frag' failed in step {fail_at - 1} (counting from 0): "
                       f"RuntimeError: broke at {fail_at}")
    # what frag sent before failing reached w; the component beside it consumed all 64 values
    assert files["default-w.txt"].split() == [*map(str, range(1, fail_at)), "destroyed"]
    assert files["default-sib.txt"].split() == [*map(str, range(1, 65)), "destroyed"]
    assert files["default-frag.destroyed"] == "destroyed\n"
    for name, result in results.items():
        assert result == (code, message, files), name



def test_step_error_pickles_with_its_field_and_also() -> None:
    import pickle

    err = StepError("frag", "k5", 4, "emit", TypeError("no"), field="y")
    back = pickle.loads(pickle.dumps(err))
    assert (back.component, back.key, back.step, back.phase, back.field) == ("frag", "k5", 4, "emit", "y")
    assert str(back) == str(err) and back.also == []


def test_finish_is_the_one_ending_and_runs_once() -> None:
    from plugboard_beam.runtime.engine import Engine
    from plugboard_beam.runtime.failure import finish
    from plugboard_beam.spec.load import graph_from_components

    LOG.clear()
    comps = [Counter(name="a", n=64), Boom(name="bomb"), Sink(name="sink")]
    graph = graph_from_components(comps, [ConnectorSpec(source="a.v", target="bomb.x"),
                                          ConnectorSpec(source="a.v", target="sink.x")])
    engine = Engine(graph, {c.name: c for c in comps}, key="k")
    engine.init()
    with pytest.raises(StepError) as info:
        engine.run()
    errors = finish(engine, info.value)
    assert errors == [info.value] and engine.destroyed and engine.finished
    assert comps[2].rows == list(range(64))  # type: ignore[attr-defined]
    assert finish(engine) == [] and LOG.count("destroy sink") == 1 and LOG.count("destroy bomb") == 1
