"""Tuning: the tune: spec and its errors, seeded studies, failed and infeasible trials,
multi-objective, resume from storage, Ctrl-C, and trials as keys of a Beam pipeline."""

from __future__ import annotations

import csv
import math
from pathlib import Path
import textwrap
import typing as _t

from click.testing import CliRunner
import pytest

from conftest import ROOT
from plugboard_beam.cli.main import main
from plugboard_beam.schemas import FloatParameterSpec, ObjectiveSpec, OptunaSpec
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.spec.scenarios import Scenario
from plugboard_beam.tune import Tuner
from plugboard_beam.tune.local import InProcessExecutor
from plugboard_beam.tune.setup import load_tune_file
from plugboard_beam.tune.study import KeyOutcome, TrialResult
from tune_parts import peak_of

STEPS = 20
ANGLE = "component.height.arg.angle"
SPEED = "component.height.arg.speed"
PEAK = "component.peak.field.peak"

TUNE = """\
    objective:
      object_name: peak
      field_type: field
      field_name: peak
    parameters:
    - type: ray.tune.uniform
      object_type: component
      object_name: height
      field_type: arg
      field_name: angle
      lower: 5
      upper: 85
    - type: ray.tune.uniform
      object_name: height
      field_name: speed
      lower: 5
      upper: 40
    num_samples: 12
    mode: max
    max_concurrent: 4
"""


def write_model(folder: Path, tune: str = TUNE, height: str = "", peak: str = "", name: str = "model.yaml") -> Path:
    text = textwrap.dedent(f"""\
        plugboard:
          process:
            args:
              components:
              - type: tune_parts.Xs
                args: {{name: xs, steps: {STEPS}}}
              - type: tune_parts.Height
                args: {{name: height{', ' + height if height else ''}}}
              - type: tune_parts.Peak
                args: {{name: peak{', ' + peak if peak else ''}}}
              connectors:
              - {{source: xs.x, target: height.x}}
              - {{source: height.y, target: peak.y}}
          tune:
            args:
        """) + textwrap.indent(textwrap.dedent(tune), "      ")
    path = folder / name
    path.write_text(text)
    return path


def tuner_of(path: Path, **changes: _t.Any) -> tuple[Tuner, LoadedModel]:
    spec = load_tune_file(path)
    a = spec.args
    kwargs: dict[str, _t.Any] = dict(objective=a.objective, parameters=a.parameters, num_samples=a.num_samples,
                                     mode=a.mode, max_concurrent=a.max_concurrent, algorithm=a.algorithm)
    kwargs.update(changes)
    return Tuner(**kwargs), spec.model


def cli(*args: str) -> _t.Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ------------------------------------------------------------------ the spec
def test_tune_section_parses_with_plugboard_names(tmp_path: Path) -> None:
    spec = load_tune_file(write_model(tmp_path))
    a = spec.args
    assert isinstance(a.objective, ObjectiveSpec) and a.objective.full_name == PEAK
    assert [p.full_name for p in a.parameters] == [ANGLE, SPEED]
    assert [(p.lower, p.upper) for p in a.parameters if isinstance(p, FloatParameterSpec)] == [(5, 85), (5, 40)]
    assert (a.num_samples, a.mode, a.max_concurrent, a.algorithm.type) == (
        12, "max", 4, "ray.tune.search.optuna.OptunaSearch")
    assert [n.name for n in spec.model.graph.nodes] == ["xs", "height", "peak"]


def test_process_may_name_another_model_file(tmp_path: Path) -> None:
    write_model(tmp_path)
    (tmp_path / "study.yaml").write_text("plugboard:\n  process: model.yaml\n  tune:\n    args:\n"
                                         + textwrap.indent(textwrap.dedent(TUNE), "      "))
    spec = load_tune_file(tmp_path / "study.yaml")
    assert spec.model.path == tmp_path / "model.yaml" and spec.args.num_samples == 12


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    ("object_name: peak", "object_name: peek", 17, "no component 'peek' in the model (did you mean 'peak'?)"),
    ("field_name: peak\n", "field_name: top\n", 19, "Peak) has no field 'top'"),
    ("field_name: speed", "field_name: sped", 30, "Height has no argument 'sped' (did you mean 'speed'?)"),
    ("lower: 5\n      upper: 40", "lower: 50\n      upper: 40", 31, "bounds reversed: lower 50.0 > upper 40.0"),
    ("type: ray.tune.uniform\n      object_name", "type: ray.tune.uniformm\n      object_name", 28,
     "unknown parameter type 'ray.tune.uniformm' (did you mean 'ray.tune.uniform'?)"),
    ("max_concurrent: 4", "max_concurrent: 4\n    algorithm: {space: nowhere.space}", 36,
     "space 'nowhere.space': importing 'nowhere' failed"),
])
def test_bad_tune_section_is_one_error_with_its_line(tmp_path: Path, old: str, new: str, line: int,
                                                      message: str) -> None:
    assert old in TUNE
    path = write_model(tmp_path, TUNE.replace(old, new, 1))
    with pytest.raises(ModelError) as info:
        load_tune_file(path)
    assert len(info.value.problems) == 1, info.value
    problem = info.value.problems[0]
    assert message in problem.message and problem.line == line, (problem, path.read_text().splitlines()[line - 1])
    result = cli("process", "tune", str(path))
    assert result.exit_code == 2
    assert f"model.yaml:{line}:" in result.output and message in result.output and "Traceback" not in result.output


def test_a_bound_the_argument_cannot_take_is_refused(tmp_path: Path) -> None:
    (tmp_path / "typed.py").write_text(textwrap.dedent("""\
        from tune_parts import Height

        class IntHeight(Height):
            def __init__(self, angle: int = 30, **kwargs):
                super().__init__(angle=angle, **kwargs)
        """))
    path = write_model(tmp_path)
    path.write_text(path.read_text().replace("tune_parts.Height", "typed.IntHeight"))
    with pytest.raises(ModelError, match=r"lower = 5.0 cannot be given: argument 'angle'.*not a valid int"):
        load_tune_file(path)


# ----------------------------------------------------------------- studies
def test_seeded_study_gives_the_same_trials_and_reads_each_objective(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    runs = []
    for _ in range(2):
        tuner, model = tuner_of(path)
        best = tuner.run(model, seed=7)
        runs.append((best, list(tuner.result_grid)))
    (best, trials), (best2, trials2) = runs
    assert [t.config for t in trials] == [t.config for t in trials2]
    assert [t.metrics for t in trials] == [t.metrics for t in trials2]
    assert len(trials) == 12 and {t.state for t in trials} == {"complete"}
    assert len({(t.config[ANGLE], t.config[SPEED]) for t in trials}) == 12
    for t in trials:  # the objective is the model's end value for that trial's parameters
        assert 5 <= t.config[ANGLE] <= 85 and 5 <= t.config[SPEED] <= 40
        assert t.metrics[PEAK] == pytest.approx(peak_of(t.config[ANGLE], t.config[SPEED], STEPS))
    assert isinstance(best, TrialResult) and best == best2
    assert best.metrics[PEAK] == max(t.metrics[PEAK] for t in trials)
    other, model = tuner_of(path)
    other.run(model, seed=8)
    assert [t.config for t in other.result_grid] != [t.config for t in trials]


def test_failed_trials_are_reported_and_the_study_goes_on(tmp_path: Path) -> None:
    tuner, model = tuner_of(write_model(tmp_path, height="fail_above: 45"))
    seen: list[TrialResult] = []
    best = tuner.run(model, seed=1, on_trial=lambda r, b, done, total: seen.append(r))
    assert [r.number for r in seen] == list(range(12))
    failed = [r for r in seen if r.state == "failed"]
    assert failed and all(r.config[ANGLE] > 45 for r in failed)
    assert all(r.config[ANGLE] <= 45 for r in seen if r.state == "complete")
    assert failed[0].failure == (f"component 'height' (key '{failed[0].key}') failed in step 3 (counting from 0): "
                                 f"ValueError: angle {failed[0].config[ANGLE]:.1f} is too steep")
    assert failed[0].metrics == {}
    assert isinstance(best, TrialResult) and best.state == "complete"


def test_constraint_error_makes_a_trial_infeasible(tmp_path: Path) -> None:
    tuner, model = tuner_of(write_model(tmp_path, peak="ceiling: 8"))
    tuner.run(model, seed=2)
    grid = list(tuner.result_grid)
    infeasible = [r for r in grid if r.state == "infeasible"]
    assert infeasible and len(infeasible) < len(grid)
    for r in infeasible:
        assert r.metrics[PEAK] == -math.inf and "above 8" in r.failure
        assert peak_of(r.config[ANGLE], r.config[SPEED], STEPS) > 8
    for r in grid:
        if r.state == "complete":
            assert r.metrics[PEAK] <= 8
    # with objective_value, that value
    tuner, model = tuner_of(write_model(tmp_path, peak="ceiling: 8, penalty: -5.5", name="m2.yaml"))
    tuner.run(model, seed=2)
    assert {r.metrics[PEAK] for r in tuner.result_grid if r.state == "infeasible"} == {-5.5}


def test_multi_objective_gives_best_per_objective_and_a_pareto_front(tmp_path: Path) -> None:
    tune = textwrap.dedent(TUNE).replace("""objective:
  object_name: peak
  field_type: field
  field_name: peak""", """objective:
- {object_name: peak, field_name: peak}
- {object_name: height, field_name: launch_speed}""").replace("mode: max", "mode: [max, min]")
    tune = tune.replace("num_samples: 12", "num_samples: 16")
    assert "mode: [max, min]" in tune and "launch_speed" in tune
    tuner, model = tuner_of(write_model(tmp_path, tune))
    best = tuner.run(model, seed=3)
    assert isinstance(best, list) and len(best) == 2
    grid = list(tuner.result_grid)
    speed = "component.height.field.launch_speed"
    assert best[0].metrics[PEAK] == max(r.metrics[PEAK] for r in grid)
    assert best[1].metrics[speed] == min(r.metrics[speed] for r in grid)
    for r in grid:
        assert r.metrics[speed] == r.config[SPEED]

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        return (a.metrics[PEAK] >= b.metrics[PEAK] and a.metrics[speed] <= b.metrics[speed]
                and (a.metrics[PEAK], a.metrics[speed]) != (b.metrics[PEAK], b.metrics[speed]))

    front = {r.number for r in tuner.pareto_front}
    assert front == {r.number for r in grid if not any(dominates(o, r) for o in grid)}
    assert 1 < len(front) < len(grid)


def test_resume_from_storage_continues_the_study(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tuner, model = tuner_of(path, num_samples=5, algorithm=OptunaSpec(storage=storage))
    tuner.run(model, seed=4)
    first = list(tuner.result_grid)
    assert len(first) == 5
    tuner, model = tuner_of(path, num_samples=9, algorithm=OptunaSpec(storage=storage))
    tuner.run(model, seed=4)
    second = list(tuner.result_grid)
    assert len(second) == 9 and second[:5] == first
    assert len({(r.config[ANGLE], r.config[SPEED]) for r in second}) == 9


def test_ctrl_c_keeps_the_trials_done_and_fails_the_running_batch(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    batches: list[int] = []
    inner = InProcessExecutor()

    def executor(model: LoadedModel, scenarios: list[Scenario], fields: tuple[str, ...]) -> dict[str, KeyOutcome]:
        batches.append(len(scenarios))
        if len(batches) == 2:
            raise KeyboardInterrupt
        return inner(model, scenarios, fields)

    tuner, model = tuner_of(path, algorithm=OptunaSpec(storage=storage))
    with pytest.raises(KeyboardInterrupt):
        tuner.run(model, seed=5, executor=executor)
    assert [r.state for r in tuner.result_grid] == ["complete"] * 4 + ["interrupted"] * 4
    tuner, model = tuner_of(path, algorithm=OptunaSpec(storage=storage))
    tuner.run(model, seed=5)
    states = [r.state for r in tuner.result_grid]
    assert len(states) == 12 and states.count("complete") == 8 and states.count("interrupted") == 4


def test_cli_writes_the_trials_table(tmp_path: Path) -> None:
    out = tmp_path / "trials.csv"
    result = cli("process", "tune", str(write_model(tmp_path, height="fail_above: 60")), "--seed", "1",
                 "--out", str(out), "--num-samples", "6")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["trial"] for r in rows] == [str(i) for i in range(6)]
    assert list(rows[0]) == ["trial", "key", "state", ANGLE, SPEED, PEAK, "failure"]
    for r in rows:
        if r["state"] == "complete":
            assert float(r[PEAK]) == pytest.approx(peak_of(float(r[ANGLE]), float(r[SPEED]), STEPS))
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r[PEAK]))
    assert f"best: trial {best['trial']} ({best['key']}, complete)" in result.output
    bad = cli("process", "tune", str(tmp_path / "model.yaml"), "--out", str(tmp_path / "t.txt"))
    assert bad.exit_code == 2 and "give a .csv or .parquet file" in bad.output


def test_example_model_in_specs(tmp_path: Path) -> None:
    spec = load_tune_file(ROOT / "specs" / "tune" / "projectile.yaml")
    tuner, model = tuner_of(ROOT / "specs" / "tune" / "projectile.yaml", num_samples=8)
    best = tuner.run(model, seed=1)
    assert isinstance(best, TrialResult) and best.metrics["component.peak.field.peak"] > 0
    assert spec.args.num_samples == 40


# ------------------------------------------------------------- Beam (slow)
@pytest.mark.slow
def test_trials_as_keys_of_a_beam_pipeline_match_local(tmp_path: Path) -> None:
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.runners.direct import BeamRunner
    from plugboard_beam.runners.local import LocalRunner
    from plugboard_beam.runners.trials import RunnerExecutor

    path = write_model(tmp_path, height="fail_above: 60", peak="ceiling: 12, penalty: -1")
    results = {}
    for name, executor in [("here", InProcessExecutor()), ("local", RunnerExecutor(LocalRunner())),
                           ("direct", RunnerExecutor(BeamRunner(), RunOptions(pipeline_args=[])))]:
        tuner, model = tuner_of(path, num_samples=8, max_concurrent=8)
        tuner.run(model, seed=6, executor=executor)
        results[name] = [(r.state, r.config, r.metrics, r.failure) for r in tuner.result_grid]
    assert results["direct"] == results["here"] == results["local"]
    states = {s for s, *_ in results["direct"]}
    assert "complete" in states and len(states) > 1, states


def test_python_api_as_plugboard_with_a_process_spec() -> None:
    from plugboard_beam.process import LocalProcess, ProcessBuilder
    from plugboard_beam.schemas import IntParameterSpec, ProcessArgsSpec, ProcessSpec

    spec = ProcessSpec(args=ProcessArgsSpec(
        components=[{"type": "tune_parts.Xs", "args": {"name": "xs", "steps": STEPS}},
                    {"type": "tune_parts.Height", "args": {"name": "height"}},
                    {"type": "tune_parts.Peak", "args": {"name": "peak"}}],
        connectors=[{"source": "xs.x", "target": "height.x"}, {"source": "height.y", "target": "peak.y"}],
    ), type="plugboard.process.LocalProcess")
    assert isinstance(ProcessBuilder.build(spec=spec), LocalProcess)
    tuner = Tuner(
        objective=ObjectiveSpec(object_type="component", object_name="peak", field_type="field", field_name="peak"),
        parameters=[IntParameterSpec(object_type="component", object_name="height", field_type="arg",
                                     field_name="angle", lower=10, upper=13),
                    FloatParameterSpec(object_name="height", field_name="speed", lower=10, upper=30)],
        num_samples=6, max_concurrent=3, mode="max")
    result = tuner.run(spec=spec, seed=9)
    assert isinstance(result, TrialResult)
    assert {r.config[ANGLE] for r in tuner.result_grid} <= {10, 11, 12}  # randint: upper excluded
    assert result.metrics[PEAK] == pytest.approx(peak_of(result.config[ANGLE], result.config[SPEED], STEPS))
    assert result.metrics[PEAK] == max(r.metrics[PEAK] for r in tuner.result_grid)


def test_plot_writes_a_png_for_one_and_two_objectives(tmp_path: Path) -> None:
    png = tmp_path / "study.png"
    result = cli("process", "tune", str(write_model(tmp_path, peak="ceiling: 8")), "--seed", "1",
                 "--num-samples", "8", "--plot", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    tune = textwrap.dedent(TUNE).replace("""objective:
  object_name: peak
  field_type: field
  field_name: peak""", """objective:
- {object_name: peak, field_name: peak}
- {object_name: height, field_name: launch_speed}""").replace("mode: max", "mode: [max, min]")
    two = tmp_path / "two.png"
    result = cli("process", "tune", str(write_model(tmp_path, tune, name="two.yaml")), "--seed", "1",
                 "--num-samples", "8", "--plot", str(two))
    assert result.exit_code == 0, result.output
    assert "Pareto front:" in result.output and two.read_bytes()[:4] == b"\x89PNG"
    bad = cli("process", "tune", str(tmp_path / "two.yaml"), "--plot", str(tmp_path / "x.jpg"))
    assert bad.exit_code == 2 and "--plot" in bad.output and "give a .png file" in bad.output


@pytest.mark.slow
def test_ctrl_c_stops_the_command_and_keeps_the_trials(tmp_path: Path) -> None:
    from contextlib import closing
    import shutil
    import signal
    import sqlite3
    import subprocess
    import time

    from conftest import cli_command

    shutil.copy(ROOT / "tests" / "tune_parts.py", tmp_path / "tune_parts.py")
    # 20 steps of 50 ms: about a second per trial, four trials per batch
    path = write_model(tmp_path)
    path.write_text(path.read_text().replace("steps: 20}", "steps: 20, delay: 0.05}"))
    db, out = tmp_path / "study.db", tmp_path / "trials.csv"
    proc = subprocess.Popen([*cli_command(), "process", "tune", str(path), "--seed", "1", "--out", str(out),
                             "--storage", f"sqlite:///{db}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    done = running = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with closing(sqlite3.connect(db)) as con:  # closed: no lock held while the study writes
                    done, running = (con.execute(f"SELECT count(*) FROM trials WHERE state = '{s}'").fetchone()[0]
                                     for s in ("COMPLETE", "RUNNING"))
            except sqlite3.Error:
                done = running = 0
        if done >= 4 and running == 4:  # the second batch is running
            break
        time.sleep(0.1)
    assert done >= 4 and running == 4 and proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped:" in stderr and "Traceback" not in stderr
    rows = list(csv.DictReader(out.open()))
    states = [r["state"] for r in rows]
    assert states.count("complete") >= 4 and "interrupted" in states and len(rows) < 12, states
    with closing(sqlite3.connect(db)) as con:
        stored = con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    assert [(n, s) for n, s in stored if s not in ("COMPLETE", "FAIL")] == [], (len(stored), states)


def test_custom_space_and_a_trial_whose_values_the_model_refuses(tmp_path: Path) -> None:
    from plugboard_beam.runners.local import LocalRunner
    from plugboard_beam.runners.trials import RunnerExecutor

    (tmp_path / "spaces.py").write_text(textwrap.dedent("""\
        def space(trial):
            trial.suggest_categorical("height.angle", [30.0, 60.0, "steep"])
            trial.suggest_float("component.height.arg.speed", 10, 30)
        """))
    path = write_model(tmp_path, TUNE.replace("max_concurrent: 4",
                                              "max_concurrent: 4\n    algorithm: {space: spaces.space}"))
    results = []
    for executor in (InProcessExecutor(), RunnerExecutor(LocalRunner())):
        tuner, model = tuner_of(path, num_samples=10)
        tuner.run(model, seed=11, executor=executor)
        grid = list(tuner.result_grid)
        results.append([(r.state, r.config, r.metrics, r.failure) for r in grid])
        refused = [r for r in grid if r.config["height.angle"] == "steep"]
        assert refused and all(r.state == "failed" and "argument 'angle'" in r.failure for r in refused)
        for r in grid:
            if r.state == "complete":
                assert r.metrics[PEAK] == pytest.approx(
                    peak_of(r.config["height.angle"], r.config["component.height.arg.speed"], STEPS))
        assert {r.state for r in grid} == {"complete", "failed"}
    assert results[0] == results[1]


def test_points_to_evaluate_run_first(tmp_path: Path) -> None:
    points = [{ANGLE: 45.0, SPEED: 30.0}, {ANGLE: 10.0, SPEED: 12.5}]
    tuner, model = tuner_of(write_model(tmp_path), num_samples=5, algorithm=OptunaSpec(points_to_evaluate=points))
    tuner.run(model, seed=1)
    grid = list(tuner.result_grid)
    assert [r.config for r in grid[:2]] == points and len(grid) == 5
    assert grid[0].metrics[PEAK] == pytest.approx(peak_of(45.0, 30.0, STEPS))


# ------------------------------------------------------------- Dataflow
DATAFLOW_ARGS = ("--project=my-proj", "--region=us-central1", "--temp_location=gs://my-bucket/tmp")


@pytest.mark.slow
def test_dataflow_dry_run_builds_the_first_batch_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from plugboard_beam.dataflow import builders

    seen: list[builders.BuildRequest] = []

    def spy(pipeline: _t.Any, model: LoadedModel, request: builders.BuildRequest) -> list[str]:
        seen.append(request)
        return builders.build_batch(pipeline, model, request)

    monkeypatch.setitem(builders._BUILDERS, "batch", spy)
    path = write_model(tmp_path)
    job_dir = tmp_path / "job"
    result = cli("process", "tune", str(path), "--runner", "dataflow", "--dry-run", "--job-dir", str(job_dir),
                 "--seed", "3", "--log-level", "info", *DATAFLOW_ARGS)
    assert result.exit_code == 0, result.output
    assert seen[0].options.log is not None and seen[0].options.log.level == "info"  # the job's workers log so
    named = cli("process", "tune", str(path), "--runner", "dataflow", "--dry-run", "--job-dir", str(tmp_path / "j2"),
                "--seed", "3", "--job_name=my-study", *DATAFLOW_ARGS)
    assert named.exit_code == 0, named.output
    assert json.loads((tmp_path / "j2" / "job.json").read_text())["name"] == "my-study-b001"
    assert "dry run: batch 1 of 3 (4 of 12 trials: keys trial-00000 .. trial-00003)" in result.output
    # the job: named for its batch, its keys the seeded study's first batch, each reporting its objective
    body = json.loads((job_dir / "job.json").read_text())
    assert body["name"].startswith("plugboard-model-") and body["name"].endswith("-b001")
    request = seen[0]
    tuner, model = tuner_of(path)
    tuner.run(model, seed=3)
    assert [k for k, _ in request.instances] == [f"trial-{i:05d}" for i in range(4)]
    assert [o for _, o in request.instances] == [r.config for r in tuner.result_grid[:4]]
    assert request.options.final_fields == ("peak.peak",)
    assert request.finals_prefix == request.errors_prefix.rsplit("/", 1)[0] + "/finals"
    pipeline = (job_dir / "pipeline.json").read_text()
    assert "Write finals" in pipeline and "Write errors" in pipeline


def test_dataflow_tune_options_are_checked_before_any_job(tmp_path: Path) -> None:
    path = write_model(tmp_path)
    for args, message in [
        (("--dry-run",), "--dry-run: Dataflow options (with --runner dataflow), not for --runner local"),
        (("--runner", "direct", "--profile", "p.yaml"), "--profile: Dataflow options"),
        (("--runner", "dataflow", "--job-dir", "j", *DATAFLOW_ARGS), "--job-dir is where --dry-run writes"),
        (("--runner", "dataflow", "--dry-run", "--out", "t.csv", *DATAFLOW_ARGS), "--out: a dry run runs no trial"),
        (("--runner", "dataflow", "--no_wait", *DATAFLOW_ARGS), "drop --no_wait"),
        (("--runner", "dataflow", "--project=my-proj"), "invalid Dataflow option"),
    ]:
        result = cli("process", "tune", str(path), *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_dataflow_executor_runs_one_named_job_per_batch(tmp_path: Path) -> None:
    from plugboard_beam.runners.base import RunReport
    from plugboard_beam.runners.trials import DataflowExecutor, batch_job_name
    from plugboard_beam.runtime import finals

    jobs: list[tuple[str, list[str]]] = []

    class FakeDataflow:
        """Stands in for DataflowRunner.run: records each job, answers with the keys' finals."""

        def run(self, model: LoadedModel, options: _t.Any) -> RunReport:
            name = [a for a in options.pipeline_args if a.startswith("--job_name=")][-1].split("=", 1)[1]
            jobs.append((name, [sc.key for sc in options.scenarios]))
            report = RunReport()
            for sc in options.scenarios:
                value = peak_of(sc.overrides[ANGLE], sc.overrides[SPEED], STEPS)
                row = finals.from_json(finals.to_json({"key": sc.key, "values": {"peak.peak": value},
                                                       "constraint": None}))
                report.finals.update(finals.merge([row]))
            return report

    executor = DataflowExecutor([*DATAFLOW_ARGS, "--job_name=my-study"])
    executor.runner = FakeDataflow()  # type: ignore[assignment]
    tuner, model = tuner_of(write_model(tmp_path), num_samples=10, max_concurrent=4)
    best = tuner.run(model, seed=2, executor=executor)
    assert [n for n, _ in jobs] == ["my-study-b001", "my-study-b002", "my-study-b003"]
    assert [len(keys) for _, keys in jobs] == [4, 4, 2]
    local, model2 = tuner_of(write_model(tmp_path), num_samples=10, max_concurrent=4)
    assert isinstance(best, TrialResult)
    assert best.config == local.run(model2, seed=2).config  # type: ignore[union-attr]
    assert batch_job_name("x" * 70, 12) == "x" * 58 + "-b012"


def test_dataflow_trials_jobs_get_the_log_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``process tune --runner dataflow --log-level debug``: every batch's job runs with the
    command's logging (its workers log at that level), as ``process run`` does."""
    from plugboard_beam.runners.base import RunReport
    from plugboard_beam.runners.dataflow import DataflowRunner

    levels: list[_t.Optional[str]] = []

    def run(self: DataflowRunner, model: LoadedModel, options: _t.Any) -> RunReport:
        levels.append(options.log.level if options.log is not None else None)
        return RunReport()  # no finals: the trials fail, the study goes on

    monkeypatch.setattr(DataflowRunner, "run", run)
    path = write_model(tmp_path)
    cli("process", "tune", str(path), "--runner", "dataflow", "--log-level", "debug", "--num-samples", "2",
        "--no-progress", *DATAFLOW_ARGS)
    assert levels and set(levels) == {"debug"}


def test_dataflow_finals_are_read_back_from_the_temp_location(tmp_path: Path) -> None:
    from plugboard_beam.dataflow.options import resolve
    from plugboard_beam.runners.dataflow import finals_prefix, read_rows
    from plugboard_beam.runtime import finals

    config = resolve([*DATAFLOW_ARGS, "--job_name=j-b001"], profile=None, model_name="m", streaming=False,
                     dry_run=True, record=None)
    assert finals_prefix(config) == "gs://my-bucket/tmp/plugboard-errors/j-b001/finals"
    prefix = str(tmp_path / "finals")
    (tmp_path / "finals-00000-of-00002.jsonl").write_text(
        finals.to_json({"key": "trial-00001", "values": {"peak.peak": float("inf")}, "constraint": None}) + "\n")
    (tmp_path / "finals-00001-of-00002.jsonl").write_text(
        finals.to_json({"key": "trial-00000", "values": {"peak.peak": 2.5}, "constraint": None}) + "\n\n")
    rows = finals.merge(read_rows(prefix, finals.from_json, "final values"))
    assert rows["trial-00000"]["values"] == {"peak.peak": 2.5}
    assert math.isinf(rows["trial-00001"]["values"]["peak.peak"])
