"""Batch stages fed only by their keys' start elements run without Beam state (``StartDoFn``,
issue 19): a key has one element there and runs to its end in it. Stages fed by other stages
keep their runs in Beam state (``StageDoFn``). Duplicate keys, which only state could tell
apart, are refused before any key runs."""

from __future__ import annotations

import os
from pathlib import Path
import typing as _t

import apache_beam as beam
import pytest

from plugboard_beam.cli.registry import get_runner
from plugboard_beam.lowering.beam import StageDoFn, StartDoFn, build
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.lowering.plan import make_plan
from plugboard_beam.spec import ModelError, load_model
from plugboard_beam.spec.scenarios import Scenario

ROOT = Path(__file__).resolve().parent.parent
CHAIN = ROOT / "benchmarks" / "models" / "chain.yaml"


@pytest.fixture(autouse=True)
def bench_parts_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(CHAIN.parent))


def stage_dofns(partition: str, tmp_path: Path) -> dict[str, type]:
    """The DoFn class of each stage of the chain model's pipeline, by stage name."""
    model = load_model(CHAIN)
    plan = make_plan(model.graph, partition)
    pipeline = beam.Pipeline()
    build(pipeline, model, plan, [("k1", {}), ("k2", {"source.steps": 3})], None, str(tmp_path / "errors"))
    found: dict[str, type] = {}

    class Visitor(beam.pipeline.PipelineVisitor):  # type: ignore[misc]
        def visit_transform(self, node: _t.Any) -> None:
            fn = getattr(node.transform, "fn", None)
            if isinstance(fn, StageDoFn):
                found[fn.stage.name] = type(fn)

    pipeline.visit(Visitor())
    return found


def test_a_fused_batch_stage_runs_without_state(tmp_path: Path) -> None:
    assert list(stage_dofns("fused", tmp_path).values()) == [StartDoFn]


def test_only_the_first_of_several_stages_runs_without_state(tmp_path: Path) -> None:
    kinds = stage_dofns("component", tmp_path)
    assert len(kinds) == 4
    assert sorted(k.__name__ for k in kinds.values()) == ["StageDoFn", "StageDoFn", "StageDoFn", "StartDoFn"]


def test_start_dofn_declares_no_state() -> None:
    from apache_beam.transforms.userstate import get_dofn_specs

    assert get_dofn_specs(StartDoFn.__new__(StartDoFn)) == (set(), set())
    assert get_dofn_specs(StageDoFn.__new__(StageDoFn)) != (set(), set())


@pytest.mark.parametrize("partition", ["fused", "component"])
def test_stateless_and_stateful_stages_give_the_local_runners_totals(tmp_path: Path, partition: str) -> None:
    """Each key's Total writes ``count total`` in destroy(): the same on the DirectRunner (its
    first stage stateless) as on the local runner, key by key."""
    out: dict[str, dict[str, str]] = {}
    for runner, opts in (("local", {}), ("direct", {"partition": partition})):
        scenarios = [Scenario(f"k{i}", {"source.steps": 5 + i, "total.path": str(tmp_path / f"{runner}-{{key}}.txt")})
                     for i in range(6)]
        report = get_runner(runner).run(load_model(CHAIN), RunOptions(scenarios=scenarios, **opts))
        assert report.keys == 6 and not report.failures
        out[runner] = {f.name.split("-", 1)[1]: f.read_text() for f in tmp_path.glob(f"{runner}-*.txt")}
    assert len(out["local"]) == 6
    assert out["direct"] == out["local"]
    # source i sends 5+i values 0..4+i; total = sum(2v + 1)
    assert out["local"]["k2.txt"] == f"7 {float(sum(2 * v + 1 for v in range(7)))}\n"


@pytest.mark.parametrize("runner", ["local", "direct"])
def test_a_key_given_twice_in_code_is_refused_before_any_key_runs(runner: str, tmp_path: Path) -> None:
    path = tmp_path / "ran.txt"
    scenarios = [Scenario("a", {"total.path": str(path)}), Scenario("b", {}), Scenario("a", {"source.steps": 2})]
    with pytest.raises(ModelError) as err:
        get_runner(runner).run(load_model(CHAIN), RunOptions(scenarios=scenarios))
    assert "scenario 'a' (scenario 3 of 3): the key is given twice (first at scenario 1 of 3)" in str(err.value)
    assert not path.exists() and not os.listdir(tmp_path)
