"""plugboard 0.9.0 parity (issue 16 items 3, 5, 8, 9): schemas (``Resource``, job ids, the
``validate_*`` checks, ``parse_parameter_name``, mutable specs), ``process: other.yaml``, YAML
written for plugboard (``plugboard.X`` types, ``RayProcess``), the transports Beam replaces, and
components' resources on each engine (ignored once on local/direct, Beam hints on Dataflow)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
import re
import subprocess
import textwrap

import pydantic
import pytest

from conftest import cli_command
from parity_parts import Count
from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.exceptions import UserError
from plugboard_beam.lowering.hints import component_resources, stage_hints
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.schemas import (
    ConfigSpec,
    ConnectorSpec,
    Entity,
    ProcessSpec,
    Resource,
    StateBackendArgsSpec,
    override_parameter,
    parse_parameter_name,
    simple_cycles,
    validate_all_inputs_connected,
    validate_input_events,
    validate_no_unresolved_cycles,
    validate_process,
)
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import load_model
from plugboard_beam.utils.entities import EntityIdGen

HERE = Path(__file__).resolve().parent

COUNT_WRITE = """\
plugboard:
  process:
{head}    args:
      components:
      - type: {prefix}parity_parts.Count
        args:
          name: count
          n: 3
{count_extra}      - type: parity_parts.Write
        args:
          name: write
          path: out.txt
      connectors:
      - source: count.t
        target: write.v
"""


def model_text(head: str = "", count_extra: str = "", prefix: str = "") -> str:
    return COUNT_WRITE.format(head=head, count_extra=count_extra, prefix=prefix)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ModelError) as info:
        load_model(path)
    return [p.format(Path(info.value.filename).name) for p in info.value.problems]


def run_local(path: Path, **options: object) -> None:
    from plugboard_beam.cli.registry import get_runner

    get_runner("local").run(load_model(path), RunOptions(**options))  # type: ignore[arg-type]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.run([*cli_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


# ------------------------------------------------------------------ Resource
@pytest.mark.parametrize(("given", "cpu", "gpu", "memory"), [
    ({}, 0.001, 0.0, 0),
    ({"cpu": "500m", "gpu": "1", "memory": "1Gi"}, 0.5, 1.0, 1024**3),
    ({"cpu": 2, "memory": "1.5k"}, 2.0, 0.0, 1500),
    ({"cpu": "250m", "memory": "10Mi"}, 0.25, 0.0, 10 * 1024**2),
    ({"memory": 1024.7}, 0.001, 0.0, 1024),
])
def test_resource_parses_units_as_plugboard(given: dict[str, object], cpu: float, gpu: float, memory: int) -> None:
    res = Resource(**given)  # type: ignore[arg-type]
    assert (res.cpu, res.gpu, res.memory) == (cpu, gpu, memory)
    assert isinstance(res.memory, int)


@pytest.mark.parametrize("bad", ["250x", "10Xi", "-1", "1 Gi Gi", "abc", "", "9" * 80, True, [1], float("nan"), -2])
def test_resource_refuses_bad_values_naming_them(bad: object) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"(?i)resource value|suffix"):
        Resource(cpu=bad)  # type: ignore[arg-type]


def test_resource_is_mutable_and_validated_on_assignment() -> None:
    res = Resource()
    res.memory = "2Ki"  # type: ignore[assignment]
    assert res.memory == 2048
    with pytest.raises(pydantic.ValidationError):
        res.cpu = "lots"  # type: ignore[assignment]
    assert Resource(cpu="250m", resources={"x": "100m"}).to_ray_options() == {"num_cpus": 0.25, "resources": {"x": 0.1}}


class Declared(Component):
    io = IO(outputs=["x"])
    resources = Resource(cpu=2, memory="512Mi")


def test_component_resources_class_declaration_and_constructor() -> None:
    assert Declared(name="d").resources == Resource(cpu=2.0, memory=512 * 1024**2)
    given = Declared(name="e", resources={"gpu": 1})
    assert given.resources == Resource(gpu=1)
    assert Declared(name="f").resources.gpu == 0  # the class's declaration is not changed
    assert Count(name="c").resources == Resource()
    with pytest.raises(pydantic.ValidationError):
        Count(name="c", resources={"cpu": "many"})


def test_yaml_resources_are_validated_with_their_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "m.yaml", model_text(count_extra="          resources: {cpu: 2, memory: 10Qi}\n"))
    [msg] = problems(bad)
    assert msg.startswith("m.yaml:9: component 'count'") and "10Qi" in msg and "suffix" in msg, msg
    good = write(tmp_path, "g.yaml", model_text(count_extra="          resources: {cpu: 2, memory: 1Gi}\n"))
    built = load_model(good).build_components()
    assert built["count"].resources == Resource(cpu=2, memory="1Gi")
    assert built["write"].resources == Resource()


# ------------------------------------------------------------------ job ids
def test_job_ids_have_plugboards_format() -> None:
    ids = {EntityIdGen.job_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"Job_[A-Za-z0-9]{16}", i) for i in ids)
    assert EntityIdGen.parse("Job_abcdEFGH1234") == (Entity.Job, "abcdEFGH1234")
    for bad in ("Job_short", "job_abcdefgh", "Job_abcdefgh/..", "X_abcdefghij", "Job_" + "a" * 200):
        assert not EntityIdGen.is_job_id(bad), bad
    with pytest.raises(pydantic.ValidationError):
        StateBackendArgsSpec(job_id="Job_../../x")


def test_job_id_from_cli_then_yaml_then_generated(tmp_path: Path) -> None:
    from plugboard_beam.cli.job_id import resolve_job_id

    plain = load_model(write(tmp_path, "a.yaml", model_text()))
    generated = resolve_job_id(plain, None)
    assert EntityIdGen.is_job_id(generated)
    assert plain.config.plugboard.process.args.state.args.job_id == generated
    with_id = write(tmp_path, "b.yaml", model_text().replace("    args:\n", "    args:\n      state: {args: {job_id: "
                                                            "Job_fromyaml1234}}\n", 1))
    assert resolve_job_id(load_model(with_id), None) == "Job_fromyaml1234"
    assert resolve_job_id(load_model(with_id), "Job_fromcli12345") == "Job_fromcli12345"
    with pytest.raises(UserError, match="--job-id: invalid job id 'nope'"):
        resolve_job_id(plain, "nope")
    bad_yaml = write(tmp_path, "c.yaml", model_text().replace("    args:\n", "    args:\n      state: {args: {job_id: "
                                                             "oops}}\n", 1))
    [msg] = problems(bad_yaml)
    assert msg.startswith("c.yaml:4:") and "job_id" in msg, msg


def test_job_id_from_the_environment_after_cli_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugboard_beam.cli.job_id import resolve_job_id

    monkeypatch.setenv("PLUGBOARD_JOB_ID", "Job_fromtheenv123")
    plain = load_model(write(tmp_path, "a.yaml", model_text()))
    assert resolve_job_id(plain, None) == "Job_fromtheenv123"
    assert plain.config.plugboard.process.args.state.args.job_id == "Job_fromtheenv123"
    assert resolve_job_id(load_model(write(tmp_path, "a.yaml", model_text())), "Job_fromtheenv123") == \
        "Job_fromtheenv123"
    with pytest.raises(UserError, match="--job-id: Job ID Job_fromcli12345 does not match environment variable "
                                        "PLUGBOARD_JOB_ID=Job_fromtheenv123"):
        resolve_job_id(plain, "Job_fromcli12345")
    with_id = write(tmp_path, "b.yaml", model_text().replace("    args:\n", "    args:\n      state: {args: {job_id: "
                                                            "Job_fromyaml1234}}\n", 1))
    with pytest.raises(UserError, match="state: args: job_id: Job ID Job_fromyaml1234 does not match"):
        resolve_job_id(load_model(with_id), None)
    monkeypatch.setenv("PLUGBOARD_JOB_ID", "nope")
    with pytest.raises(UserError, match="PLUGBOARD_JOB_ID: invalid job id 'nope'"):
        resolve_job_id(load_model(write(tmp_path, "a.yaml", model_text())), None)


# ------------------------------------------------------------------ validate_*
def comp(name: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = (), seeds: tuple[str, ...] = (),
         input_events: tuple[str, ...] = (), output_events: tuple[str, ...] = (),
         coverage: dict[str, list[str]] | None = None) -> dict[str, object]:
    return {"name": name, "io": {"inputs": list(inputs), "outputs": list(outputs),
                                 "initial_values": {s: [0] for s in seeds}, "input_events": list(input_events),
                                 "output_events": list(output_events), "event_field_coverage": coverage or {}}}


def proc(components: list[dict[str, object]], wires: list[tuple[str, str]]) -> dict[str, object]:
    conns = {}
    for s, t in wires:
        spec = ConnectorSpec(source=s, target=t)
        conns[spec.id] = {"id": spec.id, "spec": spec.model_dump(mode="json")}
    return {"components": {c["name"]: c for c in components}, "connectors": conns}


def test_simple_cycles_finds_every_elementary_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": {"a", "c"}, "d": set()}
    found = sorted(tuple(sorted(c)) for c in simple_cycles(graph))
    assert found == [("a", "b"), ("a", "b", "c"), ("c",)]
    assert list(simple_cycles({})) == []


def test_validators_on_a_process_dict() -> None:
    loop = proc([comp("a", ("i",), ("o",)), comp("b", ("i",), ("o",))], [("a.o", "b.i"), ("b.o", "a.i")])
    [cycle] = validate_no_unresolved_cycles(loop)
    assert "Circular connection detected" in cycle and ("a -> b -> a" in cycle or "b -> a -> b" in cycle)
    seeded = proc([comp("a", ("i",), ("o",), seeds=("i",)), comp("b", ("i",), ("o",))],
                  [("a.o", "b.i"), ("b.o", "a.i")])
    assert validate_process(seeded) == []
    # the seed must be on an input inside the loop: b.j is fed from outside it
    outside = proc([comp("a", ("i",), ("o",)), comp("b", ("i", "j"), ("o",), seeds=("j",)), comp("c", (), ("o",))],
                   [("a.o", "b.i"), ("b.o", "a.i"), ("c.o", "b.j")])
    assert len(validate_no_unresolved_cycles(outside)) == 1
    open_input = proc([comp("a", (), ("o",)), comp("b", ("i", "j"))], [("a.o", "b.i")])
    assert validate_all_inputs_connected(open_input) == ["Component 'b' has unconnected inputs: ['j']"]
    covered = proc([comp("a", output_events=("tick",)), comp("b", ("j",), input_events=("tick",),
                                                              coverage={"tick": ["j"]})], [])
    assert validate_process(covered) == []
    orphan = proc([comp("b", input_events=("tick", "tock"), output_events=("tock",))], [])
    assert validate_input_events(orphan) == ["Component 'b' has input events with no producer: ['tick']"]


def test_validate_process_on_our_components_dict() -> None:
    """Our components' ``dict()`` is what the checks read."""
    a, b = Count(name="a"), Declared(name="b")
    pd = {"components": {c.name: c.dict() for c in (a, b)}, "connectors": {}}
    assert validate_process(pd) == []
    writer_io = comp("w", ("v",))
    pd["components"]["w"] = writer_io
    assert validate_process(pd) == ["Component 'w' has unconnected inputs: ['v']"]


# ------------------------------------------------------------------ parameter names, mutable specs
def test_parse_parameter_name_and_override(tmp_path: Path) -> None:
    spec = load_model(write(tmp_path, "m.yaml", model_text())).config.plugboard.process
    override_parameter(spec, parse_parameter_name("component.count.arg.n"), 7)
    override_parameter(spec, parse_parameter_name("component.write.initial_value.v"), [1])
    override_parameter(spec, parse_parameter_name("component.count.parameter.gain"), 2)
    override_parameter(spec, parse_parameter_name("speed"), 3)
    by_name = {c.args.name: c.args for c in spec.args.components}
    assert by_name["count"].extra_args()["n"] == 7 and by_name["count"].parameters == {"gain": 2}
    assert by_name["write"].initial_values == {"v": [1]} and spec.args.parameters == {"speed": 3}
    assert parse_parameter_name("speed") == parse_parameter_name("process.default.parameter.speed")
    for bad, why in [("", "must not be empty"), ("component.a", "must have the format"),
                     ("process.x.parameter.y", "process.default"), ("component.a.field.y", "overridable"),
                     ("connector.a.arg.b", "Unknown object type"), ("component.a" + ".b" * 400, "too long")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_parameter_name(bad)
    with pytest.raises(ValueError, match="Component nobody not found"):
        override_parameter(spec, parse_parameter_name("component.nobody.arg.x"), 1)


def test_specs_are_mutable_and_the_loaded_graph_does_not_follow(tmp_path: Path) -> None:
    loaded = load_model(write(tmp_path, "m.yaml", model_text()))
    conn = loaded.config.plugboard.process.args.connectors[0]
    conn.target = "count.t"  # type: ignore[assignment]  # validated on assignment, as plugboard's
    assert conn.target.entity == "count"
    with pytest.raises(pydantic.ValidationError):
        conn.source = "not a ref"  # type: ignore[assignment]
    loaded.config.plugboard.process.args.components[0].args.name = "renamed"
    assert [e.target for e in loaded.graph.edges] == ["write"]  # the graph copied what it needs
    assert [n.name for n in loaded.graph.nodes] == ["count", "write"]


# ------------------------------------------------------------------ process: other.yaml
def test_process_from_another_file_relative_to_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "models", "inner.yaml", model_text())
    outer = write(tmp_path / "runs", "outer.yaml", "plugboard:\n  process: ../models/inner.yaml\n"
                  "  tune: {args: {objective: {object_name: count, field_name: t}, num_samples: 2,\n"
                  "    parameters: [{object_name: count, field_name: n, lower: 1, upper: 4}]}}\n")
    monkeypatch.chdir(tmp_path)  # not the folder the path is relative to
    loaded = load_model(outer)
    assert loaded.path == (tmp_path / "models" / "inner.yaml").resolve()
    assert [c.args.name for c in loaded.config.plugboard.process.args.components] == ["count", "write"]
    assert loaded.config.plugboard.tune is not None and loaded.config.plugboard.tune.args.num_samples == 2
    run_local(outer)
    assert (tmp_path / "out.txt").read_text() == "0\n1\n2\n"  # the component's path: from the working directory


def test_process_file_problems_name_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "plugboard:\n  process: b.yaml\n")
    write(tmp_path, "b.yaml", "# b\nplugboard:\n  process: a.yaml\n")
    [msg] = problems(tmp_path / "a.yaml")
    assert msg.startswith("b.yaml:3: process:") and "cycle of model files (a.yaml -> b.yaml -> a.yaml)" in msg, msg
    write(tmp_path, "missing.yaml", "plugboard:\n\n  process: nowhere/x.yaml\n")
    [msg] = problems(tmp_path / "missing.yaml")
    assert msg.startswith("missing.yaml:3: process:") and "no such model file" in msg, msg
    write(tmp_path, "bad.yaml", "plugboard:\n  process: inner-bad.yaml\n")
    write(tmp_path, "inner-bad.yaml", model_text().replace("target: write.v", "target: write.nope"))
    msg, _unconnected = problems(tmp_path / "bad.yaml")
    assert msg.startswith("inner-bad.yaml:15: connector #1") and "'nope'" in msg, msg
    write(tmp_path, "self.yaml", "plugboard:\n  process: ./self.yaml\n")
    assert "cycle of model files" in problems(tmp_path / "self.yaml")[0]


def test_configspec_reads_a_process_path_like_plugboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "inner.yaml", model_text())
    monkeypatch.chdir(tmp_path)
    spec = ConfigSpec.model_validate({"plugboard": {"process": "inner.yaml"}})
    assert len(spec.plugboard.process.args.components) == 2
    with pytest.raises(pydantic.ValidationError, match="not a model file"):
        ConfigSpec.model_validate({"plugboard": {"process": "absent.yaml"}})


# ------------------------------------------------------------------ moving a model over
def test_plugboard_types_are_read_as_ours_with_one_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    text = model_text().replace("type: parity_parts.Write", "type: plugboard.library.FileWriter")
    ok = write(tmp_path, "ok.yaml", text
               .replace("path: out.txt", "path: out.csv\n          field_names: [v]"))
    with caplog.at_level(logging.WARNING, logger="plugboard_beam.spec"):
        loaded = load_model(ok)
    [notice] = [r.getMessage() for r in caplog.records]
    assert "plugboard.library.FileWriter (line 9)" in notice and "plugboard_beam" in notice
    assert loaded.classes["write"].__module__.startswith("plugboard_beam.library")
    run_local(ok)
    assert (tmp_path / "out.csv").read_text().split() == ["v", "0", "1", "2"]


@pytest.mark.parametrize("head", [
    '    type: plugboard.process.RayProcess\n    connector_builder: {type: plugboard.connector.RayConnector}\n',
    '    type: plugboard.process.ray_process.RayProcess\n',
])
def test_ray_process_runs_on_beam_with_a_note(tmp_path: Path, head: str, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "m.yaml", model_text(head=head))
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="plugboard_beam.spec"):
        loaded = load_model(path)
    [note] = [r.getMessage() for r in caplog.records]
    assert "RayProcess (line 3) runs on Beam" in note
    assert loaded.config.plugboard.process.is_ray
    run_local(path)
    assert (tmp_path / "out.txt").read_text() == "0\n1\n2\n"


@pytest.mark.parametrize(("head", "transport"), [
    ("    connector_builder: {type: plugboard.connector.ZMQConnector}\n", "ZMQConnector"),
    ("    connector_builder: {type: plugboard_beam.connector.RedisConnector}\n", "RedisConnector"),
    ("    connector_builder: {type: plugboard.connector.RayConnector}\n", "RayConnector"),  # without RayProcess
    ("    connector_builder: {type: plugboard.connector.RabbitMQConnector}\n", "RabbitMQConnector"),
])
def test_replaced_transports_in_yaml_say_what_to_use(tmp_path: Path, head: str, transport: str) -> None:
    [msg] = problems(write(tmp_path, "m.yaml", model_text(head=head)))
    assert msg.startswith("m.yaml:3:") and f"{transport} (connector_builder) is one of plugboard's transports" in msg
    assert "use" in msg.split("does not have:")[1]


def test_replaced_transport_as_a_component_type(tmp_path: Path) -> None:
    text = model_text().replace("type: parity_parts.Write", "type: plugboard.connector.RedisChannel")
    [msg] = problems(write(tmp_path, "m.yaml", text))
    assert msg.startswith("m.yaml:9: component 'write'") and "RedisChannel is one of plugboard's transports" in msg
    assert "PubSubReader / PubSubWriter" in msg
    from plugboard_beam.connector import ZMQConnector  # in Python the name exists; using it is refused

    with pytest.raises(UserError, match="ZMQConnector .* replaces"):
        ZMQConnector(spec=ConnectorSpec(source="a.x", target="b.y"))


def test_process_spec_type_keeps_plugboards_names() -> None:
    args = {"components": [{"type": "x.A", "args": {"name": "a"}}]}
    assert ProcessSpec.model_validate({"args": args}).type == "plugboard_beam.process.LocalProcess"
    local = ProcessSpec.model_validate({"args": args, "type": "plugboard.process.local_process.LocalProcess"})
    assert local.type == "plugboard.process.LocalProcess" and local.args.state.type.endswith("DictStateBackend")
    with pytest.raises(pydantic.ValidationError, match=r"unknown process type 'my\.Process'"):
        ProcessSpec.model_validate({"args": args, "type": "my.Process"})


# ------------------------------------------------------------------ resources on each engine
def test_stage_hints_merge_members_and_list_what_beam_ignores() -> None:
    res = {"a": Resource(cpu=2.5, memory="1Gi"), "b": Resource(gpu=0.5, memory="2Gi", resources={"nvidia-l4": 1}),
           "c": Resource(cpu="500m", resources={"fpga": 2})}
    h = stage_hints(res, ["a", "b", "c", "plain"])
    assert h.hints == {"min_ram": 2 * 1024**3, "cpu_count": "3",
                       "accelerator": "type:nvidia-l4;count:1;install-nvidia-driver"}
    assert h.ignored == ["c: cpu 0.5 (a worker has at least one CPU)",
                         "c: custom resource 'fpga'=2 (Ray's; Beam has none)"]
    assert stage_hints({"g": Resource(gpu=2)}, ["g"]).hints == {
        "accelerator": "type:nvidia-tesla-t4;count:2;install-nvidia-driver"}
    assert stage_hints(res, ["plain"]).hints == {}
    with pytest.raises(UserError, match=r"different GPUs.*nvidia-a100: d; nvidia-l4: b"):
        stage_hints({**res, "d": Resource(gpu=1, resources={"nvidia-a100": 1})}, ["b", "d"])


def test_class_declared_resources_count(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", model_text().replace("parity_parts.Count", "test_parity_schemas.Declared")
                 .replace("          n: 3\n", "").replace("count.t", "count.x"))
    assert component_resources(load_model(path)) == {"count": Resource(cpu=2, memory="512Mi")}


def test_local_run_reports_ignored_resources_once(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", model_text(count_extra="          resources: {cpu: 2, memory: 1Gi}\n"))
    done = cli(tmp_path, "process", "run", "m.yaml", "--runner", "local", "--job-id", "Job_testrun12345")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("component resources are ignored on --runner local") == 1, done.stderr
    assert "count (cpu=2.0, memory=1073741824)" in done.stderr
    assert (tmp_path / "out.txt").read_text() == "0\n1\n2\n"
    bad = cli(tmp_path, "process", "run", "m.yaml", "--runner", "local", "--job-id", "Job_no")
    assert bad.returncode == 2 and "--job-id: invalid job id 'Job_no'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_direct_run_reports_ignored_resources_once(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", model_text(count_extra="          resources: {gpu: 1}\n"))
    done = cli(tmp_path, "process", "run", "m.yaml", "--runner", "direct")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("component resources are ignored on --runner direct") == 1, done.stderr
    assert (tmp_path / "out.txt").read_text() == "0\n1\n2\n"


@pytest.mark.slow
@pytest.mark.parametrize("stages", ["fused", "component"])
def test_dataflow_dry_run_shows_resource_hints(tmp_path: Path, stages: str) -> None:
    extra = "          resources: {cpu: 3, memory: 1Gi, gpu: 1, resources: {nvidia-l4: 1, fpga: 1}}\n"
    write(tmp_path, "m.yaml", model_text(count_extra=extra))
    done = cli(tmp_path, "process", "run", "m.yaml", "--runner", "dataflow", "--dry-run", "--job-dir", "job",
               "--stages", stages, "--project=my-proj", "--region=us-central1", "--temp_location=gs://my-bucket/tmp")
    assert done.returncode == 0, done.stderr
    expected = {"accelerator": "type:nvidia-l4;count:1;install-nvidia-driver", "cpu_count": "3",
                "min_ram": str(1024**3)}
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    hinted = {name: hints for name, hints in summary["resource_hints"]}
    if stages == "fused":
        assert hinted == {"Run S0[count+write]/ParDo(StartDoFn)": expected}  # (no state: fed by its keys only)
    else:  # only the stage running 'count' asks for them
        assert list(hinted.values()) == [expected] and "count" in next(iter(hinted))
    assert "resource hints: 1" in done.stdout and "min_ram=1073741824" in done.stdout
    pipeline = json.loads((tmp_path / "job" / "pipeline.json").read_text())
    envs = [e for e in pipeline["components"]["environments"].values() if e.get("resourceHints")]
    assert len(envs) == 1 and "beam:resources:min_ram_bytes:v1" in envs[0]["resourceHints"]
    assert done.stderr.count("Dataflow has no hint for are ignored") == 1
    assert "custom resource 'fpga'=1" in done.stderr
