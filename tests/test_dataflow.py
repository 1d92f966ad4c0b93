"""Dataflow: validated options, the offline dry run, code shipping, fail-fast submission.

Nothing here leaves the machine: an autouse tripwire fails any connection or DNS lookup that
is not loopback, and the submission tests point every endpoint at 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import typing as _t
import zipfile

from click.testing import CliRunner, Result
import pytest

from conftest import ROOT
from plugboard_beam.cli.main import main
from plugboard_beam.dataflow import builders
from plugboard_beam.dataflow.options import DataflowConfig, default_job_name, resolve
from plugboard_beam.dataflow.preflight import PreflightError, bounded, preflight
from plugboard_beam.dataflow.wheels import build_wheel
from plugboard_beam.exceptions import UserError
from plugboard_beam.lowering.plan import make_plan
from plugboard_beam.spec.load import load_model

SPECS = ROOT / "specs"
HELLO = SPECS / "hello" / "my-model.yaml"
PLANT = SPECS / "plant" / "plant.yaml"
ARGS = ("--project=my-proj", "--region=us-central1", "--temp_location=gs://my-bucket/tmp")
DEFAULT_IMAGE = "gcr.io/cloud-dataflow/v1beta3/beam_python3.12_sdk:"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}

# A copy of the tripwire for subprocesses (python -c TRIPWIRE + the command's code).
TRIPWIRE = textwrap.dedent("""
    import socket, sys
    _connect, _gai = socket.socket.connect, socket.getaddrinfo
    def _loop(host):
        return str(host) in {"localhost", "127.0.0.1", "::1", "ip6-localhost"} or str(host).startswith("127.")
    def connect(self, address):
        if self.family == socket.AF_UNIX or _loop(address[0]):
            return _connect(self, address)
        print("tripwire: network access outside loopback: %r" % (address,), file=sys.stderr)
        raise OSError("tripwire: network access outside loopback: %r" % (address,))
    def getaddrinfo(host, *a, **k):
        if _loop(host):
            return _gai(host, *a, **k)
        print("tripwire: DNS lookup outside loopback: %r" % (host,), file=sys.stderr)
        raise OSError("tripwire: DNS lookup outside loopback: %r" % (host,))
    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
""")


def _is_loopback(host: object) -> bool:
    return str(host) in LOOPBACK_NAMES or str(host).startswith("127.")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test on any connection or DNS lookup outside loopback."""
    attempts: list[str] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guard(address: _t.Any, family: int) -> None:
        if family == getattr(socket, "AF_UNIX", -1) or _is_loopback(address[0]):
            return
        attempts.append(repr(address))
        raise AssertionError(f"network access outside loopback: {address!r}")

    def guarded_connect(self: socket.socket, address: _t.Any) -> None:
        guard(address, self.family)
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: _t.Any) -> int:
        guard(address, self.family)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: _t.Any, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:
        if not _is_loopback(host):
            attempts.append(f"DNS {host}")
            raise AssertionError(f"DNS lookup outside loopback: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["process", "run", *args])


def dry_run(model: Path, job_dir: Path, *args: str) -> tuple[Result, dict[str, _t.Any]]:
    """``process run MODEL --runner dataflow --dry-run``; the summary.json it wrote."""
    result = run_cli(str(model), "--runner", "dataflow", "--dry-run", "--job-dir", str(job_dir), *args)
    assert result.exit_code == 0, result.output
    return result, json.loads((job_dir / "summary.json").read_text())


def proto_of(job_dir: Path) -> _t.Any:
    from apache_beam.portability.api import beam_runner_api_pb2
    from google.protobuf import json_format

    return json_format.Parse((job_dir / "pipeline.json").read_text(), beam_runner_api_pb2.Pipeline())


def staged_names(job_dir: Path) -> list[str]:
    return [f["name"] for f in json.loads((job_dir / "staged.json").read_text())]


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the dry run of every example
def model_specs() -> list[Path]:
    """Every model YAML under specs/ (YAML files starting with 'plugboard:')."""
    out = []
    for path in sorted(SPECS.glob("*/*.y*ml")):
        text = path.read_text()
        if any(line.startswith("plugboard:") for line in text.splitlines()):
            out.append(path)
    return out


def test_specs_include_the_batch_examples() -> None:
    assert {HELLO, PLANT} <= set(model_specs())


@pytest.mark.slow
@pytest.mark.parametrize("partition", ["fused", "component"])
def test_dry_run_of_every_spec(tmp_path: Path, partition: str) -> None:
    """Each example builds offline into a job whose proto holds one stateful ParDo per stage,
    the Pub/Sub IO of its Pub/Sub components (and a feedback topic when a streaming model has a
    loop), with its component modules among the staged files."""
    for i, spec in enumerate(model_specs()):
        model = load_model(spec)
        modules = {cls.__module__ for cls in model.classes.values()}
        streaming = any("pubsub" in m for m in modules)
        job_dir = tmp_path / f"job{i}"
        secret = ["--control-secret", "projects/my-proj/secrets/pbb-control/versions/1"]
        _, summary = dry_run(spec, job_dir, *ARGS, "--stages", partition,
                             *(["--streaming", *secret] if streaming else []))
        proto = proto_of(job_dir)
        from plugboard_beam.dataflow.dryrun import pubsub_reads, pubsub_writes, stateful_steps

        steps = stateful_steps(proto)
        assert [s[0] for s in summary["stateful_steps"]] == [n for n, _ in steps]
        if streaming:
            n_read = sum(1 for c in model.classes.values() if "Reader" in c.__name__)
            n_write = sum(1 for c in model.classes.values() if "Writer" in c.__name__)
            assert len(pubsub_reads(proto)) >= n_read >= 1, spec
            assert len(pubsub_writes(proto)) >= n_write >= 1, spec
            if any(model.graph.is_cyclic(scc) for scc in model.graph.strongly_connected()):
                assert summary["feedback_topics"], spec
            assert summary["job_type"] == "JOB_TYPE_STREAMING"
        else:
            from plugboard_beam.lowering.dataio import DataIO  # keyed readers run outside the stages

            # stateful: the stages fed by other stages or by keyed data (a stage fed only by its
            # keys' start elements has one element a key, and no state: StartDoFn)
            io = DataIO.of(model, make_plan(model.graph, partition), 1)
            assert len(steps) == len([s for s in io.plan.stages if s.in_edges or io.reads]), spec
            assert all(names == ["run"] for _, names in steps)
            assert not pubsub_reads(proto) and not pubsub_writes(proto) and not summary["feedback_topics"]
            assert summary["job_type"] == "JOB_TYPE_BATCH"
        local = {m.split(".")[0] for m in modules} - {"plugboard_beam"}
        assert local <= set(summary["modules"]), spec
        wheel = next(job_dir.glob("staged/plugboard_model_*.whl"))
        shipped = wheel_files(wheel)
        for mod in local:
            assert f"{mod}.py" in shipped or any(n.startswith(f"{mod}/") for n in shipped), (spec, mod)
        assert any(n.startswith("plugboard_beam-") for n in staged_names(job_dir))


def test_dry_run_hello_writes_the_complete_job(tmp_path: Path, loopback_only: list[str]) -> None:
    job_dir = tmp_path / "job"
    start = time.monotonic()
    result, summary = dry_run(HELLO, job_dir, *ARGS, "--job_name=hello-job")
    assert time.monotonic() - start < 30
    assert loopback_only == []
    # the proto: one step running the whole model, without state (one element a key: StartDoFn)
    assert summary["stateful_steps"] == []
    assert "Run S0[component-a+component-b+component-pow2]/ParDo(StartDoFn)" in json.dumps(
        json.loads((job_dir / "pipeline.json").read_text()))
    assert summary["stages"] == ["S0[component-a+component-b+component-pow2]: component-a, component-b, component-pow2"]
    # the CreateJob request, complete (environment, worker pool, packages, options)
    body = json.loads((job_dir / "job.json").read_text())
    assert body["name"] == "hello-job" and body["type"] == "JOB_TYPE_BATCH"
    pool = body["environment"]["workerPools"][0]
    assert pool["workerHarnessContainerImage"].startswith(DEFAULT_IMAGE)
    assert {p["name"] for p in pool["packages"]} >= {"plugboard_model_hello-0.0.0-py3-none-any.whl",
                                                    "plugboard_beam-0.1.0-py3-none-any.whl", "extra_packages.txt"}
    opts = body["environment"]["sdkPipelineOptions"]["options"]
    assert opts["project"] == "my-proj" and opts["dry_run"] is False and opts["save_main_session"] is False
    # the staged files, copied, with the component module inside the model's wheel
    staged = json.loads((job_dir / "staged.json").read_text())
    names = [f["name"] for f in staged]
    assert "pipeline.pb" in names and "submission_environment_dependencies.txt" in names
    for f in staged:
        copy = job_dir / f["copy"]
        assert copy.stat().st_size == f["size"], f
        assert f["destination"].startswith("gs://my-bucket/tmp/")
    model_wheel = wheel_files(job_dir / "staged" / "plugboard_model_hello-0.0.0-py3-none-any.whl")
    assert model_wheel["hello_world.py"] == (SPECS / "hello" / "hello_world.py").read_bytes()
    pb_wheel = wheel_files(job_dir / "staged" / "plugboard_beam-0.1.0-py3-none-any.whl")
    assert "plugboard_beam/lowering/beam.py" in pb_wheel
    metadata = pb_wheel["plugboard_beam-0.1.0.dist-info/METADATA"].decode()
    assert "Requires-Dist: apache-beam[gcp]" in metadata and "pytest" not in metadata
    extra = (job_dir / "staged" / "extra_packages.txt").read_text().split()
    assert set(extra) == {"plugboard_model_hello-0.0.0-py3-none-any.whl", "plugboard_beam-0.1.0-py3-none-any.whl"}
    # the printed summary
    for line in ("stages: 1", "stateful steps: 0", "Pub/Sub reads: 0", "Pub/Sub writes: 0", "feedback topics: 0",
                 f"worker image: {DEFAULT_IMAGE}", "code shipped: package (model modules: hello_world)"):
        assert line in result.output, line
    assert (job_dir / "summary.txt").read_text().strip() == result.stdout.strip()
    # the run's summary (stderr): nothing ran; the job and where its outputs will go
    assert "summary: 1 key in a Dataflow job; none has run here" in result.stderr
    assert f"  Dataflow job hello-job: built offline into {job_dir}, nothing submitted" in result.stderr


def test_dry_run_plant_per_component_with_scenarios(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    _, summary = dry_run(PLANT, job_dir, *ARGS, "--stages", "component",
                         "--scenarios", str(SPECS / "plant" / "scenarios.csv"),
                         "--record", "gs://my-bucket/records/plant")
    names = [n for n, _ in summary["stateful_steps"]]
    assert names == ["Run S1[mixer+separator]/ParDo(StageDoFn)", "Run S2[tank]/ParDo(StageDoFn)"]  # S0: StartDoFn
    assert "fused loop mixer -> separator -> mixer" in summary["stages"][1]
    staged = staged_names(job_dir)
    assert "requirements.txt" in staged and "plugboard_model_plant-0.0.0-py3-none-any.whl" in staged
    proto = proto_of(job_dir)
    transform_names = {t.unique_name for t in proto.components.transforms.values()}
    assert "Write records" in transform_names and "Instances" in transform_names
    # the stage that starts the keys reads each key's overrides from its start element (the
    # "Instances" elements); a stage fed by others carries every key's overrides
    from apache_beam.internal import pickler
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    stage_steps = ["Run S0[feed]/ParDo(StartDoFn)", *names]
    held = {}
    for t in proto.components.transforms.values():
        if t.unique_name in stage_steps:
            dofn = pickler.loads(pb.ParDoPayload.FromString(t.spec.payload).do_fn.payload)[0]
            held[t.unique_name] = dofn.overrides
            assert dofn.record is True
    keys = {"low-recovery", "high-recovery", "long-run"}
    assert held[stage_steps[0]] == {}
    assert all(set(held[name]) == keys for name in names if held[name]), held
    assert any(held[name] for name in names), held


@pytest.mark.slow
def test_a_worker_imports_the_components_from_the_shipped_wheel(tmp_path: Path) -> None:
    """What a worker does: unpickle a stage's DoFn and set it up, with the model folder gone
    and only the staged model wheel installed."""
    folder = tmp_path / "plant-copy"
    shutil.copytree(SPECS / "plant", folder, ignore=shutil.ignore_patterns("__pycache__"))
    job_dir = tmp_path / "job"
    dry_run(folder / "plant.yaml", job_dir, *ARGS, "--stages", "component")
    shutil.rmtree(folder)
    site = tmp_path / "site"
    with zipfile.ZipFile(next(job_dir.glob("staged/plugboard_model_*.whl"))) as zf:
        zf.extractall(site)  # what pip install does for a pure wheel
    worker = textwrap.dedent("""
        import sys
        from apache_beam.internal import pickler
        from apache_beam.portability.api import beam_runner_api_pb2 as pb
        proto = pb.Pipeline.FromString(open(sys.argv[1], "rb").read())
        for t in proto.components.transforms.values():
            if t.spec.urn == "beam:transform:pardo:v1":
                payload = pb.ParDoPayload.FromString(t.spec.payload)
                if t.unique_name.startswith("Run S"):  # a stage's step (StartDoFn or StageDoFn)
                    dofn = pickler.loads(payload.do_fn.payload)[0]
                    dofn.setup()
                    cls = dofn.model.classes["separator"]
                    print(t.unique_name, cls.__module__, sys.modules[cls.__module__].__file__)
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", TRIPWIRE + worker, str(job_dir / "staged" / "pipeline.pb")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.split()[-2] == "plant" and line.split()[-1] == str(site / "plant.py") for line in lines)


def test_container_shipping_stages_no_code(tmp_path: Path) -> None:
    image = "us-central1-docker.pkg.dev/my-proj/plugboard/plugboard-beam:1"
    job_dir = tmp_path / "job"
    result, summary = dry_run(PLANT, job_dir, *ARGS, "--ship_code=container", f"--sdk_container_image={image}")
    staged = staged_names(job_dir)
    assert not [n for n in staged if n.endswith(".whl") or n == "requirements.txt"], staged
    assert summary["ship_code"] == "container" and summary["worker_image"] == image
    body = json.loads((job_dir / "job.json").read_text())
    assert body["environment"]["workerPools"][0]["workerHarnessContainerImage"] == image
    from plugboard_beam.dataflow.dryrun import worker_images

    assert worker_images(proto_of(job_dir)) == [image]
    assert f"worker image: {image}" in result.output and "code shipped: container" in result.output


@pytest.mark.slow
def test_a_model_folder_with_its_own_setup_py_is_built_by_beam(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    from plugboard_beam.dataflow import shipping

    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(SPECS / "plant" / "plant.yaml", folder / "plant.yaml")
    shutil.copy(SPECS / "plant" / "plant.py", folder / "plant.py")
    (folder / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='plant-parts', version='1.2.0', py_modules=['plant'])\n")
    job_dir = tmp_path / "job"
    _, summary = dry_run(folder / "plant.yaml", job_dir, *ARGS)
    staged = staged_names(job_dir)
    assert "workflow.tar.gz" in staged and not [n for n in staged if n.startswith("plugboard_model_")]
    assert "plugboard_beam-0.1.0-py3-none-any.whl" in staged and summary["modules"] == ["plant"]
    with tarfile.open(job_dir / "staged" / "workflow.tar.gz") as tf:
        assert "plant_parts-1.2.0/plant.py" in tf.getnames()
    monkeypatch.setattr(shipping, "_setuptools_available", lambda: False)
    result = run_cli(str(folder / "plant.yaml"), "--runner", "dataflow", "--dry-run", "--job-dir", str(job_dir), *ARGS)
    assert result.exit_code == 2 and "has setup.py, which Beam builds with setuptools" in result.output


@pytest.mark.slow
def test_a_second_dry_run_replaces_the_first(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    dry_run(PLANT, job_dir, *ARGS)
    (job_dir / "notes.md").write_text("mine")
    dry_run(PLANT, job_dir, *ARGS, "--ship_code=container", "--sdk_container_image=img:1")
    assert not list(job_dir.glob("staged/*.whl"))
    assert (job_dir / "notes.md").read_text() == "mine"


# ------------------------------------------------------------------ options and profiles
def test_profile_and_flags_in_every_spelling(tmp_path: Path) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text(textwrap.dedent("""
        project: my-proj
        region: europe-west4
        temp-location: gs://my-bucket/tmp
        staging_location: gs://my-bucket/staging
        max_num_workers: 7
        machine_type: n2-standard-2
        network: my-vpc
        use_public_ips: true
        labels: {team: sim, model: plant}
        job_name: from-profile
    """))
    job_dir = tmp_path / "job"
    _, summary = dry_run(PLANT, job_dir, "--profile", str(profile), "--region", "us-central1",
                         "--job-name=from-cli", "--max-workers=3", "--worker-machine-type=n2-standard-4",
                         "--service-account=runner@my-proj.iam.gserviceaccount.com",
                         "--subnetwork=regions/us-central1/subnetworks/sim", "--labels=owner=ops",
                         "--use_public_ips=false")
    assert summary["region"] == "us-central1" and summary["job_name"] == "from-cli"
    body = json.loads((job_dir / "job.json").read_text())
    pool = body["environment"]["workerPools"][0]
    assert pool["machineType"] == "n2-standard-4"
    assert pool["autoscalingSettings"]["maxNumWorkers"] == 3
    assert pool["network"] == "my-vpc" and pool["subnetwork"] == "regions/us-central1/subnetworks/sim"
    assert pool["ipConfiguration"] == "WORKER_IP_PRIVATE"
    assert body["environment"]["serviceAccountEmail"] == "runner@my-proj.iam.gserviceaccount.com"
    assert body["labels"] == {"team": "sim", "model": "plant", "owner": "ops"}
    staged = json.loads((job_dir / "staged.json").read_text())
    assert all(f["destination"].startswith("gs://my-bucket/staging/") for f in staged)


def test_the_example_profile_is_valid(tmp_path: Path) -> None:
    _, summary = dry_run(PLANT, tmp_path / "job", "--profile", str(SPECS / "plant" / "dataflow-profile.yaml"))
    assert summary["project"] == "my-project"


BAD_OPTIONS = [
    (("--region=us-central1", "--temp_location=gs://my-bucket/tmp"), "--project is required"),
    (("--project=my-proj", "--temp_location=gs://my-bucket/tmp"), "--region is required"),
    (("--project=my-proj", "--region=us-central1"), "--temp_location is required"),
    (("--project=my-proj", "--region=us-central1", "--temp_location=/tmp/x"),
     "--temp_location '/tmp/x' is not a Cloud Storage path"),
    (("--project=my-proj", "--region=us-central1", "--temp_location=gs://my-bucket"),
     "--temp_location 'gs://my-bucket' has no path inside the bucket"),
    (("--project=my-proj", "--region=us-central1", "--temp_location=gs://My_Bucket/tmp"),
     "is not a valid bucket name"),
    ((*ARGS, "--staging_location=s3://b/stage"), "--staging_location 's3://b/stage' is not a Cloud Storage path"),
    ((*ARGS, "--job_name=Bad_Name"), "--job_name 'Bad_Name' is invalid"),
    ((*ARGS, "--job_name=" + "a" * 64), "--job_name is 64 characters long"),
    (("--project=123456789", "--region=us-central1", "--temp_location=gs://my-bucket/tmp"), "is a project number"),
    (("--project=my-proj", "--region=uscentral", "--temp_location=gs://my-bucket/tmp"), "--region 'uscentral'"),
    ((*ARGS, "--max_num_workers=0"), "--max_num_workers must be at least 1"),
    ((*ARGS, "--max_num_workers=lots"), "--max_num_workers: invalid int value"),
    ((*ARGS, "--num_workers=5", "--max_num_workers=2"), "--num_workers (5) is more than --max_num_workers (2)"),
    ((*ARGS, "--service_account_email=runner"), "--service_account_email 'runner' is not an email"),
    ((*ARGS, "--machine_type=n2 standard"), "--machine_type 'n2 standard'"),
    ((*ARGS, "--labels=Team=sim"), "--labels: key 'Team'"),
    ((*ARGS, "--labels=team"), "--labels 'team': expected KEY=VALUE"),
    ((*ARGS, "--network=My VPC"), "--network 'My VPC'"),
    ((*ARGS, "--record=/tmp/records"), "--record '/tmp/records': Dataflow workers cannot write"),
    ((*ARGS, "--ship_code=container"), "--ship_code container needs --sdk_container_image"),
    ((*ARGS, "--ship_code=zip"), "--ship_code: invalid choice: 'zip'"),
    ((*ARGS, "--projcet=x"), "did you mean 'project'"),
    ((*ARGS, "--update"), "--update"),
    ((*ARGS, "--dry_run=False"), "--dry_run: use plugboard-beam's --dry-run"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[m.split()[0] + str(i) for i, (_, m) in
                                                            enumerate(BAD_OPTIONS)])
def test_bad_options_fail_fast_naming_the_option(tmp_path: Path, args: tuple[str, ...], message: str,
                                                 loopback_only: list[str]) -> None:
    record = [a for a in args if a.startswith("--record")]
    rest = [a for a in args if not a.startswith("--record")]
    extra = ["--record", record[0].split("=", 1)[1]] if record else []
    for dry in (True, False):  # validation comes before any submission step
        start = time.monotonic()
        result = run_cli(str(PLANT), "--runner", "dataflow",
                         *(["--dry-run", "--job-dir", str(tmp_path / "job")] if dry else []), *extra, *rest)
        assert time.monotonic() - start < 5
        assert result.exit_code == 2, result.output
        assert message in result.output, result.output
        assert "Traceback" not in result.output
    assert loopback_only == [] and not (tmp_path / "job").exists()


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(UserError) as err:
        resolve(["--temp_location=/tmp", "--job_name=X"], profile=None, model_name="m")
    text = str(err.value)
    for option in ("--project is required", "--region is required", "--temp_location '/tmp'", "--job_name 'X'"):
        assert option in text


def test_bad_profiles(tmp_path: Path) -> None:
    missing = run_cli(str(PLANT), "--runner", "dataflow", "--dry-run", "--profile", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml: file does not exist" in missing.output
    cases = {
        "projcet: my-proj\n": "unknown option 'projcet' (did you mean 'project'?)",
        "- project\n": "expected a mapping of options",
        "project: [a, b]\n": "option 'project' takes a single value, not a list",
        "streaming: maybe\n": "option 'streaming' is a flag: give true or false",
        "project: {a: b}\n": "option 'project' takes a single value, not a mapping",
        "project: [unclosed\n": "not valid YAML",
    }
    for text, message in cases.items():
        profile = tmp_path / "p.yaml"
        profile.write_text(text)
        result = run_cli(str(PLANT), "--runner", "dataflow", "--dry-run", "--profile", str(profile), *ARGS)
        assert result.exit_code == 2 and message in result.output, (text, result.output)


def test_default_job_name_is_valid() -> None:
    import datetime as dt

    name = default_job_name("My Very_Long model name " * 5, dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    assert name.endswith("-20300102-030405") and len(name) <= 63 and name.startswith("plugboard-my-very-long")
    config = resolve(list(ARGS), profile=None, model_name="plant")
    assert config.job_name.startswith("plugboard-plant-") and f"--job_name={config.job_name}" in config.beam_args
    assert "--no_save_main_session" in config.beam_args and config.wait and config.ship_code == "package"


# ------------------------------------------------------------------ submission fails fast
class _Handler(http.server.BaseHTTPRequestHandler):
    """Google's endpoints, faked: a token endpoint (``/token``, answering per ``token_ok``)
    and 404 for everything else (so buckets do not exist)."""

    seen: _t.ClassVar[list[str]] = []
    token_ok: _t.ClassVar[bool] = False

    def _reply(self, status: int, body: dict[str, _t.Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        if self.command == "POST" and self.path.startswith("/token"):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.token_ok:
                self._reply(200, {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"})
            else:
                self._reply(400, {"error": "invalid_grant", "error_description": "Bad Request"})
            return
        self._reply(404, {"error": {"code": 404, "message": "Not Found"}})

    do_GET = do_POST = do_HEAD

    def log_message(self, *args: _t.Any) -> None:
        pass


@pytest.fixture
def fake_google() -> _t.Iterator[str]:
    """A loopback HTTP server standing in for Google's endpoints (answers 404 to everything)."""
    _Handler.seen = []
    _Handler.token_ok = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_submission_without_network_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               loopback_only: list[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed)
    start = time.monotonic()
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS, f"--dataflow_endpoint={closed}")
    elapsed = time.monotonic() - start
    assert result.exit_code == 2, result.output
    assert "cannot submit to Dataflow: Google Cloud is not reachable from here" in result.output
    assert "Connection refused" in result.output and "--dry-run builds the job offline" in result.output
    assert elapsed < 30 and loopback_only == []


def test_submission_without_credentials_fails_within_30s(tmp_path: Path, fake_google: str) -> None:
    """The real command in a subprocess: the network answers (loopback), credentials are absent."""
    closed = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")}
    env.update({
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),  # no gcloud ADC file
        "NO_GCE_CHECK": "true", "GCE_METADATA_HOST": closed, "GCE_METADATA_IP": closed,
        "STORAGE_EMULATOR_HOST": fake_google, "HOME": str(tmp_path),
    })
    code = TRIPWIRE + "import sys; from plugboard_beam.cli import main; sys.argv[0] = 'plugboard-beam'; main()"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, "process", "run", str(PLANT), "--runner", "dataflow", *ARGS,
         f"--dataflow_endpoint={fake_google}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert "cannot submit to Dataflow: no Google Cloud credentials found" in proc.stderr
    assert "gcloud auth application-default login" in proc.stderr and "Traceback" not in proc.stderr
    assert "tripwire" not in proc.stderr
    assert "HEAD /" in _Handler.seen  # the network check reached the (fake) endpoints
    assert elapsed < 30


def _service_account(tmp_path: Path, token_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Application Default Credentials: a service-account key whose token endpoint is ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    creds = tmp_path / "key.json"
    creds.write_text(json.dumps({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "k1", "private_key": pem,
        "client_email": "runner@my-proj.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))


def test_rejected_credentials_fail_fast(tmp_path: Path, fake_google: str, monkeypatch: pytest.MonkeyPatch,
                                        loopback_only: list[str]) -> None:
    _service_account(tmp_path, f"{fake_google}/token", monkeypatch)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_google)
    start = time.monotonic()
    with pytest.raises(PreflightError) as err:
        preflight(_config(dataflow_endpoint=fake_google))
    assert time.monotonic() - start < 10 and loopback_only == []
    assert err.value.status == "invalid_credentials" and "the credentials were rejected" in str(err.value)
    assert "POST /token" in _Handler.seen


def test_a_missing_temp_bucket_fails_fast(tmp_path: Path, fake_google: str, monkeypatch: pytest.MonkeyPatch,
                                          loopback_only: list[str]) -> None:
    _Handler.token_ok = True
    _service_account(tmp_path, f"{fake_google}/token", monkeypatch)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_google)
    with pytest.raises(PreflightError) as err:
        preflight(_config(dataflow_endpoint=fake_google))
    assert err.value.status == "no_bucket", err.value
    assert "the bucket gs://my-bucket of --temp_location does not exist" in str(err.value)
    assert "gcloud storage buckets create gs://my-bucket --project=my-proj --location=us-central1" in str(err.value)
    assert any(s.startswith("GET /storage/v1/b/my-bucket") for s in _Handler.seen) and loopback_only == []


def _config(**kw: _t.Any) -> DataflowConfig:
    return resolve([*ARGS, *(f"--{k}={v}" for k, v in kw.items())], profile=None, model_name="m")


def test_preflight_gives_up_on_a_black_holed_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections and never answers cannot hold the command."""
    with socket.socket() as tarpit:
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(8)
        url = f"http://127.0.0.1:{tarpit.getsockname()[1]}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        start = time.monotonic()
        with pytest.raises(PreflightError) as err:
            preflight(_config(dataflow_endpoint=url), deadlines=(1.0, 1.0, 1.0))
        assert time.monotonic() - start < 3
    assert err.value.status == "no_network" and "no answer within 1 s" in str(err.value)


def test_bounded_abandons_a_hung_call() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        bounded(lambda: time.sleep(30), 0.2)
    assert time.monotonic() - start < 1
    assert bounded(lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        bounded(lambda: 1 / 0, 1.0)


class FakeResult:
    """What DataflowRunner's ``pipeline.run()`` returns, minus the Dataflow service."""

    def __init__(self, has_job: bool = True, fails: bool = False) -> None:
        self.has_job, self.fails, self.waited = has_job, fails, False

    def job_id(self) -> str:
        return "2030-01-02_03_04_05-123"

    def wait_until_finish(self) -> str:
        self.waited = True
        if self.fails:
            raise RuntimeError("Dataflow pipeline failed. State: FAILED")
        return "DONE"

    def metrics(self) -> _t.Any:
        raise NotImplementedError


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> dict[str, _t.Any]:
    """Submission with the service replaced: preflight passes, ``Pipeline.run`` returns ``state['result']``."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from plugboard_beam.dataflow import preflight as preflight_mod
    from plugboard_beam.runners import dataflow as runner_mod

    state: dict[str, _t.Any] = {"result": FakeResult(), "failures": []}

    def run(pipeline: _t.Any, *args: _t.Any, **kwargs: _t.Any) -> FakeResult:
        state["pipeline"] = pipeline
        return _t.cast(FakeResult, state["result"])

    def read_failures(prefix: str) -> list[dict[str, _t.Any]]:
        state["prefix"] = prefix
        return list(state["failures"])

    monkeypatch.setattr(preflight_mod, "preflight", lambda config: 0.0)
    # Beam's option validation asks GCS about the bucket's soft-delete policy (network)
    monkeypatch.setattr(GoogleCloudOptions, "_warn_if_soft_delete_policy_enabled", lambda self, arg: None)
    monkeypatch.setattr(beam.Pipeline, "run", run)
    monkeypatch.setattr(runner_mod, "read_failures", read_failures)
    return state


def test_submission_reports_the_job_and_waits(submitted: dict[str, _t.Any], loopback_only: list[str]) -> None:
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS, "--job_name=plant-x")
    assert result.exit_code == 0, result.output
    assert "submitted Dataflow job plant-x (id 2030-01-02_03_04_05-123)" in result.output
    assert ("https://console.cloud.google.com/dataflow/jobs/us-central1/2030-01-02_03_04_05-123?project=my-proj"
            in result.output)
    assert submitted["result"].waited and submitted["prefix"] == "gs://my-bucket/tmp/plugboard-errors/plant-x/errors"
    options = submitted["pipeline"].options.get_all_options()
    assert options["runner"] == "DataflowRunner" and options["job_name"] == "plant-x"
    assert sorted(Path(p).name for p in options["extra_packages"]) == [
        "plugboard_beam-0.1.0-py3-none-any.whl", "plugboard_model_plant-0.0.0-py3-none-any.whl"]
    assert options["requirements_file"] == str(SPECS / "plant" / "requirements.txt")
    assert loopback_only == []
    # waited for: the summary of what the job did (its keys, its failures: none) and its page
    lines = result.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    assert lines[start].startswith("summary: 1 key: 1 ok, 0 failed; elapsed "), result.stderr
    assert "  Dataflow job plant-x (id 2030-01-02_03_04_05-123): https://console.cloud.google.com/" in (
        result.stderr)


def test_submission_failures_exit_1(submitted: dict[str, _t.Any]) -> None:
    submitted["failures"] = [{"key": "k1", "component": "mixer", "step": 3,
                              "message": "component 'mixer' (key 'k1') failed in step 3: ValueError: bad"}]
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS)
    assert result.exit_code == 1 and "component 'mixer' (key 'k1') failed in step 3" in result.output
    assert "summary: 1 key: 0 ok, 1 failed" in result.stderr and "failures: 1 (each one below)" in result.stderr
    submitted["failures"], submitted["result"] = [], FakeResult(fails=True)
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS)
    assert result.exit_code == 1
    assert "Dataflow job 2030-01-02_03_04_05-123 did not succeed: Dataflow pipeline failed. State: FAILED" in (
        result.output)


def test_submission_without_waiting_and_to_a_template(submitted: dict[str, _t.Any]) -> None:
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS, "--no_wait", "--job_name=plant-y",
                     "--record", "gs://my-bucket/rec")
    assert result.exit_code == 0 and "submitted Dataflow job" in result.output
    assert not submitted["result"].waited and "prefix" not in submitted
    # not waited for: the summary says so (no keys ok / failed), and where failures and outputs go
    summary = result.stderr[result.stderr.index("summary:"):].splitlines()
    assert summary[0] == "summary: 1 key in a Dataflow job; none has run here", result.stderr
    assert summary[1].startswith("  Dataflow job plant-y (id 2030-01-02_03_04_05-123): submitted, not waited for")
    assert summary[2] == "  failures: the workers write them under gs://my-bucket/tmp/plugboard-errors/plant-y/errors"
    assert summary[3:] == ["  outputs (the job's):", "    recording: gs://my-bucket/rec (Parquet)"]
    submitted["result"] = FakeResult(has_job=False)
    result = run_cli(str(PLANT), "--runner", "dataflow", *ARGS, "--template_location=gs://my-bucket/t/job.json")
    assert result.exit_code == 0 and "written to the template location" in result.output
    assert not submitted["result"].waited
    assert "written to the template location, not created" in result.stderr[result.stderr.index("summary:"):]


def test_read_failures_reads_every_shard(tmp_path: Path) -> None:
    from plugboard_beam.runners.dataflow import read_failures

    (tmp_path / "errors-00000-of-00002.jsonl").write_text('{"key": "a", "message": "x"}\n')
    (tmp_path / "errors-00001-of-00002.jsonl").write_text('{"key": "b", "message": "y"}\n\n')
    assert [r.key for r in read_failures(str(tmp_path / "errors"))] == ["a", "b"]
    assert read_failures(str(tmp_path / "none")) == []


# ------------------------------------------------------------------ the builder hook (streaming plugs in here)
def fake_streaming_builder(pipeline: _t.Any, model: _t.Any, request: builders.BuildRequest) -> list[str]:
    """A stand-in for the streaming lowering: Pub/Sub in, a stateful step, Pub/Sub out, and a
    loop through a feedback topic."""
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

    class Count(beam.DoFn):
        COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())

        def process(self, kv: _t.Any, count: _t.Any = beam.DoFn.StateParam(COUNT)) -> _t.Iterator[bytes]:  # noqa: B008
            n = (count.read() or 0) + 1
            count.write(n)
            yield f"{kv[0]}:{n}".encode()

    project = request.project
    feedback = f"projects/{project}/topics/{request.job_name}-feedback"
    events = pipeline | "Read events" >> beam.io.ReadFromPubSub(subscription=f"projects/{project}/subscriptions/in")
    loop = pipeline | "Read feedback" >> beam.io.ReadFromPubSub(topic=feedback)
    out = ((events, loop) | beam.Flatten() | beam.Map(lambda b: (b[:1], 1)) | "Run S0" >> beam.ParDo(Count()))
    out | "Write out" >> beam.io.WriteToPubSub(topic=f"projects/{project}/topics/out")
    out | "Write feedback" >> beam.io.WriteToPubSub(topic=feedback)
    return ["S0[...]: streaming stand-in"]


def test_a_streaming_builder_plugs_in_and_the_summary_counts_pubsub(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(builders._BUILDERS, "streaming", fake_streaming_builder)
    job_dir = tmp_path / "job"
    result, summary = dry_run(PLANT, job_dir, *ARGS, "--streaming", "--job_name=plant-stream",
                              "--control-secret", "projects/my-proj/secrets/pbb-control/versions/1")
    assert summary["job_type"] == "JOB_TYPE_STREAMING"
    assert summary["pubsub_reads"] == [["Read events/Read", "projects/my-proj/subscriptions/in"],
                                       ["Read feedback/Read", "projects/my-proj/topics/plant-stream-feedback"]]
    assert sorted(t for _, t in summary["pubsub_writes"]) == ["projects/my-proj/topics/out",
                                                             "projects/my-proj/topics/plant-stream-feedback"]
    assert summary["feedback_topics"] == ["projects/my-proj/topics/plant-stream-feedback"]
    assert summary["stateful_steps"] == [["Run S0", ["count"]]]
    assert "Pub/Sub reads: 2" in result.output and "feedback topics: 1" in result.output
    body = json.loads((job_dir / "job.json").read_text())
    assert "enable_streaming_engine" in body["environment"]["experiments"]


def test_streaming_without_a_streaming_lowering_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(builders._BUILDERS, "streaming", raising=False)
    monkeypatch.setitem(builders._LAZY, "streaming", ("plugboard_beam.no_such_streaming", "build_pipeline"))
    result = run_cli(str(PLANT), "--runner", "dataflow", "--dry-run", "--streaming", *ARGS,
                     "--control-secret", "projects/my-proj/secrets/pbb-control/versions/1")
    assert result.exit_code == 2 and "--streaming on Dataflow needs a streaming lowering" in result.output


def test_wheels_are_reproducible(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"", "mod.py": b"X = 1\n"}
    a = build_wheel(tmp_path / "a", "my-dist", "1.0", files, ["pyyaml>=6"])
    b = build_wheel(tmp_path / "b", "my-dist", "1.0", files, ["pyyaml>=6"])
    assert a.name == "my_dist-1.0-py3-none-any.whl" and a.read_bytes() == b.read_bytes()
    record = wheel_files(a)["my_dist-1.0.dist-info/RECORD"].decode()
    assert "mod.py,sha256=" in record and "my_dist-1.0.dist-info/RECORD,," in record
