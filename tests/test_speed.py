"""Issue 19: what a key costs before its first step. Scenario overrides are checked per key
without validating the whole model again (sharing its graph), ``--runner local`` never imports
Beam, and a streaming FileWriter's temporary folder is removed."""

from __future__ import annotations

import logging
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from plugboard_beam.spec import ModelError, load_model
from test_spec import PARTS, write

MODEL = """
    plugboard:
      process:
        args:
          components:
          - {type: specparts.Emit, args: {name: e, iters: 2}}
          - {type: specparts.Relay, args: {name: r}}
          connectors:
          - {source: e.x, target: r.x}
"""


def test_scenario_overrides_share_the_graph_and_check_only_their_values(tmp_path: Path) -> None:
    model = load_model(write(tmp_path, MODEL, PARTS))
    inst = model.with_overrides({"e.iters": 5})
    assert inst.graph is model.graph and inst.classes is model.classes  # not validated again
    assert inst.component_specs()["e"].args.extra_args() == {"iters": 5}
    assert inst.build_components("k")["e"]._left == 5  # type: ignore[attr-defined]
    assert inst.raw["plugboard"]["process"]["args"]["components"][0]["args"]["iters"] == 5
    # the model it came from is unchanged
    assert model.component_specs()["e"].args.extra_args() == {"iters": 2}
    assert model.raw["plugboard"]["process"]["args"]["components"][0]["args"]["iters"] == 2
    assert inst.with_overrides({"e.iters": 7}).build_components()["e"]._left == 7  # type: ignore[attr-defined]
    assert inst.overrides == {"e.iters": 5}
    # what the quick check cannot take goes through the whole validation, with its messages
    with pytest.raises(ModelError, match=r"'iters' \(set by override 'e.iters'\) = 'ten' is not a valid int"):
        model.with_overrides({"e.iters": "ten"})
    with pytest.raises(ModelError, match="unknown argument 'itres'"):
        model.with_overrides({"e.itres": 1})
    with pytest.raises(ModelError, match="greater than 0"):  # a field the schema checks
        model.with_overrides({"e.step_timeout": -1})
    seeded = model.with_overrides({"component.r.initial_value.x": [4]})
    assert seeded.build_components()["r"].io.initial_values == {"x": [4]}


def test_keys_apply_their_arguments_to_the_shared_model_and_stay_apart(tmp_path: Path) -> None:
    from plugboard_beam.spec.scenarios import Instances, Scenario

    model = load_model(write(tmp_path, MODEL, PARTS))
    insts = Instances(model, [Scenario(k, {"e.iters": n}) for k, n in (("a", 3), ("b", 5), ("c", 7))])
    built = {sc.key: inst.build_components(sc.key) for sc, inst in insts}
    assert {k: c["e"]._left for k, c in built.items()} == {"a": 3, "b": 5, "c": 7}  # type: ignore[attr-defined]
    assert all(inst.model is model and inst.graph is model.graph for _, inst in insts)  # no copy
    # built again, in another order: the same values; the model itself is unchanged
    assert insts[2][1].build_components("c")["e"]._left == 7  # type: ignore[attr-defined]
    assert insts[0][1].build_components("a")["e"]._left == 3  # type: ignore[attr-defined]
    assert model.component_specs()["e"].args.extra_args() == {"iters": 2}
    assert model.build_components("d")["e"]._left == 2  # type: ignore[attr-defined]
    # a seed is not an argument: that key keeps the model validated with it, the others share
    seeded = Instances(model, [Scenario("s", {"component.r.initial_value.x": [4]}), Scenario("t", {})])
    assert seeded[0][1].model is not model and seeded[1][1].model is model
    assert seeded[0][1].build_components("s")["r"].io.initial_values == {"x": [4]}


def test_a_bad_override_is_reported_for_its_key_alone_with_the_same_message(tmp_path: Path) -> None:
    from plugboard_beam.spec.scenarios import Instances, Scenario

    model = load_model(write(tmp_path, MODEL, PARTS))
    with pytest.raises(ModelError) as alone:
        model.with_overrides({"e.iters": "ten"})
    scenarios = [Scenario("ok", {"e.iters": 4}, "sc.csv line 2"), Scenario("bad", {"e.iters": "ten"}, "sc.csv line 3"),
                 Scenario("fine", {"e.iters": 6}, "sc.csv line 4")]
    with pytest.raises(ModelError) as info:
        Instances(model, scenarios)
    [problem] = info.value.problems
    [expected] = alone.value.problems
    assert problem.message == f"scenario 'bad' (sc.csv line 3): {expected.message}"
    assert problem.line == expected.line


@pytest.mark.parametrize("runner,partition", [("local", "fused"), ("direct", "fused"), ("direct", "component")])
def test_a_key_set_up_copies_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: str,
                                      partition: str) -> None:
    """Neither the runner (up front) nor the stage DoFn (per key) makes a model per scenario:
    keys apply their arguments to the one model as their components are built."""
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load as spec_load
    from plugboard_beam.spec.scenarios import Scenario

    model = load_model(write(tmp_path, MODEL, PARTS))
    scenarios = [Scenario(k, {"e.iters": n}) for k, n in (("a", 3), ("b", 5), ("c", 7))]
    single = {}
    for sc in scenarios:
        single[sc.key] = get_runner("local").run(model, RunOptions(scenarios=[sc])).steps
    calls: list[str] = []
    for name in ("with_overrides", "_with_arg_values"):
        real = getattr(spec_load.LoadedModel, name)
        monkeypatch.setattr(spec_load.LoadedModel, name,
                            lambda self, o, _real=real, _name=name: calls.append(_name) or _real(self, o))
    real_copy = spec_load._raw_path_copy
    monkeypatch.setattr(spec_load, "_raw_path_copy", lambda raw: calls.append("raw copy") or real_copy(raw))
    options = RunOptions(scenarios=scenarios, partition=partition,
                         **({"pipeline_args": []} if runner == "direct" else {}))
    report = get_runner(runner).run(model, options)
    assert calls == []
    # and the keys ran with their own arguments: their steps are those of each key run alone
    assert report.steps == {c: sum(s[c] for s in single.values()) for c in report.steps}
    assert report.steps["e"] != 3 * single["a"]["e"]


def test_local_runner_does_not_import_beam_or_networkx(tmp_path: Path) -> None:
    """A local run imports neither Beam nor networkx (~0.1 s of every CLI start; only
    plugboard's ``validate_no_unresolved_cycles`` needs it)."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "benchmarks" / "models")!r})
        from plugboard_beam.cli.registry import get_runner
        from plugboard_beam.lowering.options import RunOptions
        from plugboard_beam.spec import load_model
        from plugboard_beam.spec.scenarios import Scenario

        model = load_model({str(ROOT / "benchmarks" / "models" / "chain.yaml")!r})
        scenarios = [Scenario(f"k{{i}}", {{"source.steps": 5}}) for i in range(3)]
        report = get_runner("local").run(model, RunOptions(scenarios=scenarios))
        print(sum(report.steps.values()), "apache_beam" in sys.modules, "networkx" in sys.modules)
        from plugboard_beam.schemas import simple_cycles
        print(sorted(map(sorted, simple_cycles({{"a": {{"b"}}, "b": {{"a"}}, "c": set()}}))), "networkx" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["63 False False", "[['a', 'b']] True"]


def test_cli_local_run_does_not_import_beam(tmp_path: Path) -> None:
    """``process run --runner local`` through the CLI: no Beam either (checking options for typos
    imported it, ~0.9 s of a 1.2 s run of a tiny model), unless options are given to check."""
    code = textwrap.dedent("""
        import atexit, sys
        atexit.register(lambda: print("beam imported:", "apache_beam" in sys.modules))
        from plugboard_beam.cli import main
        sys.argv = ["plugboard-beam", *sys.argv[1:]]
        main()
    """)
    model = str(ROOT / "benchmarks" / "models" / "chain.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks" / "models")}
    for extra, imported in [([], False), (["--direct_num_workrs", "2"], True)]:
        proc = subprocess.run([sys.executable, "-c", code, "process", "run", model, "-p", "source.steps=5",
                               "--runner", "local", *extra], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)
        assert f"beam imported: {imported}" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
        if not extra:
            assert proc.returncode == 0, proc.stderr[-2000:]
        else:  # the option was checked (and refused: a Beam option on the local runner)
            assert proc.returncode != 0 and "direct_num_workrs" in proc.stderr


def test_window_temp_folder_is_removed_and_leftovers_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from plugboard_beam.lowering.dataio import WindowedWrite, remove_temp_folders

    w = WindowedWrite("levels", ("level",), str(tmp_path / "out" / "levels.csv"), 10.0, "run1")
    other = WindowedWrite("levels", ("level",), str(tmp_path / "out" / "levels.csv"), 10.0, "run2")
    assert w.temp_folder != other.temp_folder  # two runs writing to one folder do not share it
    folder = Path(w.temp_folder)
    folder.mkdir(parents=True)
    (folder / "123_abc").write_text("key,step,level\n")
    Path(other.temp_folder).mkdir()
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        remove_temp_folders([w])
    assert not folder.exists() and Path(other.temp_folder).exists()
    assert "1 file(s) of a window that had not closed" in caplog.text
    remove_temp_folders([w])  # nothing there: nothing to do
