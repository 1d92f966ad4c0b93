"""The Flex Template: cloudbuild.yaml, pipelines/{Dockerfile,metadata.json,main.py}.

cloudbuild.yaml and metadata.json are checked offline (every file they name exists, every
substitution is declared and used, parameters are typed and documented), and the launcher
runs locally on the DirectRunner with exactly the parameters the template run would pass:
the cloudbuild run step is executed by bash with a stand-in ``gcloud`` that records its
arguments, which are then turned into the launcher's command line as Dataflow's launcher does.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
import re
import socket
import stat
import subprocess
import sys
import typing as _t

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ROOT
from plugboard_beam.dataflow import launcher
from test_dataflow import TRIPWIRE, loopback_only  # noqa: F401 - the autouse tripwire fixture

CLOUDBUILD = ROOT / "cloudbuild.yaml"
PIPELINES = ROOT / "pipelines"
METADATA = PIPELINES / "metadata.json"
DOCKERFILE = PIPELINES / "Dockerfile"
IMAGE_ROOT = "/template"

#: Cloud Build's built-in substitutions
BUILTINS = {"PROJECT_ID", "PROJECT_NUMBER", "BUILD_ID", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA", "REVISION_ID",
            "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME", "REF_NAME",
            "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT"}
#: ParameterMetadata.paramType values (Dataflow v1b3)
PARAM_TYPES = {"DEFAULT", "TEXT", "GCS_READ_BUCKET", "GCS_WRITE_BUCKET", "GCS_READ_FILE", "GCS_WRITE_FILE",
               "GCS_READ_FOLDER", "GCS_WRITE_FOLDER", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "BIGQUERY_TABLE",
               "JAVASCRIPT_UDF_FILE", "SERVICE_ACCOUNT", "MACHINE_TYPE", "KMS_KEY_NAME", "WORKER_REGION",
               "WORKER_ZONE", "BOOLEAN", "ENUM", "NUMBER", "KAFKA_TOPIC", "KAFKA_READ_TOPIC", "KAFKA_WRITE_TOPIC"}
PARAM_FIELDS = {"name", "label", "helpText", "isOptional", "regexes", "paramType", "defaultValue", "enumOptions",
                "groupName", "parentName", "parentTriggerValues", "hiddenUi", "customMetadata"}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def cloudbuild() -> dict[str, _t.Any]:
    return _t.cast(dict[str, _t.Any], yaml.safe_load(CLOUDBUILD.read_text()))


def metadata() -> dict[str, _t.Any]:
    return _t.cast(dict[str, _t.Any], json.loads(METADATA.read_text()))


def substitutions_used(value: _t.Any) -> set[str]:
    text = json.dumps(value).replace("$$", "")
    return {m.group(1) or m.group(2) for m in _VAR.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """Cloud Build's substitution: ``$VAR`` / ``${VAR}`` replaced, ``$$`` -> ``$``."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"undeclared substitution {name}"
        return values[name]

    return "\x00".join(_VAR.sub(one, part) for part in text.split("$$")).replace("\x00", "$")


def resolved_substitutions(overrides: dict[str, str]) -> dict[str, str]:
    """Builtins + declared defaults (themselves substituted: dynamicSubstitutions) + overrides."""
    values = {"PROJECT_ID": "my-proj", "BUILD_ID": "b-123", "LOCATION": "us-central1"}
    for name, default in cloudbuild()["substitutions"].items():
        values[name] = substitute(str(default), values)
    values.update(overrides)
    return values


def dockerfile_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY without --from."""
    out = []
    for line in DOCKERFILE.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            out.append((parts[1:-1], parts[-1]))
    return out


def image_to_repo(path: str) -> Path:
    """A path in the image (``/template/...``) as the repository file the Dockerfile copies there."""
    assert path.startswith(IMAGE_ROOT + "/"), path
    rel = path[len(IMAGE_ROOT) + 1:]
    for sources, dest in dockerfile_copies():
        dest_rel = dest.removeprefix("./").rstrip("/")
        for src in sources:
            if dest_rel in (".", "") and rel.split("/")[0] == src.rstrip("/").split("/")[-1]:
                return ROOT / rel
            if dest_rel and (rel == dest_rel or rel.startswith(dest_rel + "/")):
                return ROOT / src.rstrip("/") / rel[len(dest_rel):].lstrip("/")
    raise AssertionError(f"{path} is not copied into the image by {DOCKERFILE}")


# ------------------------------------------------------------------ cloudbuild.yaml
def test_cloudbuild_substitutions_are_declared_and_used() -> None:
    doc = cloudbuild()
    declared = set(doc["substitutions"])
    used = substitutions_used({"steps": doc["steps"], "images": doc.get("images", []),
                               "substitutions": doc["substitutions"]})
    assert not used - declared - BUILTINS, f"undeclared: {used - declared - BUILTINS}"
    assert not declared - used, f"declared but never used: {declared - used}"
    assert all(name.startswith("_") for name in declared)
    assert doc["options"]["dynamicSubstitutions"] is True  # defaults use ${PROJECT_ID}
    for wanted in ("_REGION", "_REPOSITORY", "_TEMPLATE_PATH", "_MODEL_PATH"):
        assert wanted in declared
    assert "PROJECT_ID" in used


def test_cloudbuild_steps_and_referenced_files() -> None:
    doc = cloudbuild()
    steps = {s["id"]: s for s in doc["steps"]}
    assert list(steps) == ["build-image", "push-image", "build-template", "run-job"]
    build = steps["build-image"]["args"]
    assert build[0] == "build" and build[-1] == "."
    dockerfile = ROOT / build[build.index("-f") + 1]
    assert dockerfile == DOCKERFILE and dockerfile.exists()
    assert Path(str(dockerfile) + ".dockerignore").exists()
    image = build[build.index("-t") + 1]
    assert steps["push-image"]["args"] == ["push", image] and doc["images"] == [image]
    template = steps["build-template"]["args"]
    assert template[:4] == ["dataflow", "flex-template", "build", "${_TEMPLATE_PATH}"]
    assert f"--image={image}" in template and "--sdk-language=PYTHON" in template
    meta = next(a.split("=", 1)[1] for a in template if a.startswith("--metadata-file="))
    assert ROOT / meta == METADATA
    # every file the Dockerfile copies from the build context exists
    for sources, _ in dockerfile_copies():
        for src in sources:
            assert (ROOT / src).exists(), f"{DOCKERFILE} copies {src}, which does not exist"
    # the launcher the image runs, and the default model, are files the image holds
    env = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", DOCKERFILE.read_text())
    assert env is not None
    assert image_to_repo(env.group(1)) == PIPELINES / "main.py"
    model = resolved_substitutions({})["_MODEL_PATH"]
    assert image_to_repo(model).exists(), model


# ------------------------------------------------------------------ metadata.json
def test_metadata_parameters_are_typed_and_documented() -> None:
    meta = metadata()
    assert meta["name"] and meta["description"]
    params = meta["parameters"]
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    assert tuple(names) == launcher.TEMPLATE_PARAMETERS
    known = {a.dest for a in launcher.parser()._actions}
    for p in params:
        assert set(p) <= PARAM_FIELDS, f"{p['name']}: unknown fields {set(p) - PARAM_FIELDS}"
        assert p["name"] in known, f"the launcher does not accept --{p['name']}"
        assert p["label"].strip() and len(p["helpText"]) > 20, p["name"]
        assert p["paramType"] in PARAM_TYPES, p["name"]
        assert isinstance(p.get("isOptional", False), bool)
        for rx in p.get("regexes", []):
            re.compile(rx)
        if p["paramType"] == "ENUM":
            values = [o["value"] for o in p["enumOptions"]]
            assert all(o["label"] and o["description"] for o in p["enumOptions"])
            assert p["defaultValue"] in values
            choices = next(a.choices for a in launcher.parser()._actions if a.dest == p["name"])
            assert set(values) <= set(choices or [])
    required = [p["name"] for p in params if not p.get("isOptional")]
    assert required == ["model"]


def test_metadata_regexes_accept_what_the_template_is_given() -> None:
    by_name = {p["name"]: p for p in metadata()["parameters"]}

    def accepts(name: str, value: str) -> bool:
        return all(re.fullmatch(rx, value) for rx in by_name[name].get("regexes", []))

    assert accepts("model", resolved_substitutions({})["_MODEL_PATH"])
    assert accepts("model", "gs://my-bucket/models/plant/plant.yaml")
    assert not accepts("model", "plant.yaml") and not accepts("model", "gs://my-bucket/plant.txt")
    assert accepts("scenarios", "gs://my-bucket/s/scenarios.csv") and accepts("scenarios", "/template/s.parquet")
    assert accepts("record", "gs://my-bucket/records/plant") and not accepts("record", "/tmp/records")
    assert accepts("params", "feed.steps=100;separator.recovery=0.9") and not accepts("params", "feed.steps")


# ------------------------------------------------------------------ the launcher, as the template runs it
FAKE_GCLOUD = """#!/bin/sh
# records its arguments, one per line (a stand-in for gcloud: nothing is contacted)
for a in "$@"; do printf '%s\\n' "$a"; done > "$GCLOUD_ARGS"
"""


def run_step_gcloud_args(tmp_path: Path, overrides: dict[str, str]) -> list[str]:
    """Execute cloudbuild's run-job step (after substitution) with a recording gcloud."""
    step = next(s for s in cloudbuild()["steps"] if s["id"] == "run-job")
    assert step["entrypoint"] == "bash" and step["args"][0] == "-c"
    script = substitute(step["args"][1], resolved_substitutions(overrides))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD)
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "gcloud-args.txt"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GCLOUD_ARGS": str(record)}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return record.read_text().splitlines() if record.exists() else []


def launcher_argv(gcloud_args: list[str]) -> list[str]:
    """What Dataflow's launcher passes to the template's Python file for ``flex-template run``:
    each template parameter as --name=value, then the job's pipeline options."""
    assert gcloud_args[:3] == ["dataflow", "flex-template", "run"]
    job_name = gcloud_args[3]
    flags = dict(a[2:].split("=", 1) for a in gcloud_args[4:] if a.startswith("--") and "=" in a)
    raw = flags["parameters"]
    assert raw.startswith("^~^")
    params = dict(item.split("=", 1) for item in raw[3:].split("~"))
    return [*(f"--{k}={v}" for k, v in params.items()),
            f"--project={flags['project']}", f"--region={flags['region']}",
            f"--temp_location={flags['temp-location']}", f"--job_name={job_name}"]


def test_run_step_is_skipped_unless_asked(tmp_path: Path) -> None:
    assert run_step_gcloud_args(tmp_path, {}) == []


@pytest.mark.slow
def test_launcher_runs_the_template_parameters_on_the_direct_runner(tmp_path: Path) -> None:
    gcloud_args = run_step_gcloud_args(tmp_path, {
        "_RUN_JOB": "true", "_RECORD": "gs://my-bucket/records/plant",
        "_PARAMETERS": "scenarios=/template/specs/plant/scenarios.csv~stages=component~params=feed.rate=4.0",
    })
    assert gcloud_args[4:] == [
        "--template-file-gcs-location=gs://my-proj-dataflow/templates/plugboard-beam.json",
        "--region=us-central1", "--project=my-proj", "--temp-location=gs://my-proj-dataflow/tmp",
        "--parameters=^~^model=/template/specs/plant/plant.yaml"
        "~sdk_container_image=us-central1-docker.pkg.dev/my-proj/plugboard/plugboard-beam:b-123"
        "~record=gs://my-bucket/records/plant"
        "~scenarios=/template/specs/plant/scenarios.csv~stages=component~params=feed.rate=4.0",
    ]
    assert re.fullmatch(r"plugboard-\d{8}-\d{6}", gcloud_args[3])
    argv = launcher_argv(gcloud_args)
    # Offline stand-ins: the image's /template is this repository; the gs:// recording folder a local one.
    records = tmp_path / "records"
    local = []
    for arg in argv:
        name, _, value = arg.partition("=")
        if value.startswith(IMAGE_ROOT + "/"):
            value = str(image_to_repo(value))
        elif name == "--record":
            value = str(records)
        local.append(f"{name}={value}")
    code = TRIPWIRE + "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", code, str(PIPELINES / "main.py"), *local, "--runner=DirectRunner"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tripwire" not in proc.stderr
    rows = pq.read_table(glob.glob(str(records / "messages-*.parquet"))).to_pylist()
    keys = {r["key"] for r in rows}
    assert keys == {"low-recovery", "high-recovery", "long-run"}
    feed = [r["number"] for r in rows if r["source"] == "feed.flow"]
    assert set(feed) == {10.0, 5.0}  # the scenarios' rates win over params=feed.rate=4.0
    recycle = sorted((r["step"], r["number"]) for r in rows
                     if r["key"] == "high-recovery" and r["source"] == "separator.recycle")
    assert len(recycle) == 20 and recycle[0] == (0, pytest.approx(1.0))  # 10.0 * (1 - 0.9)
    assert "done: 3 key(s)" in proc.stderr


def test_launcher_params_and_bad_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant = str(ROOT / "specs" / "plant" / "plant.yaml")
    records = tmp_path / "rec"
    assert launcher.main([f"--model={plant}", "--params=feed.steps=3;separator.recovery=0.5",
                          f"--record={records}", "--runner=DirectRunner",
                          "--an_option_only_the_launcher_knows=1"]) == 0  # ignored with a warning
    rows = pq.read_table(glob.glob(str(records / "messages-*.parquet"))).to_pylist()
    assert sorted(r["number"] for r in rows if r["source"] == "separator.product") == [5.0, 7.5, 8.75]
    assert launcher.main([f"--model={plant}", "--runner=SparkRunner"]) == 2
    assert "--runner 'SparkRunner': use DataflowRunner or DirectRunner" in capsys.readouterr().err
    assert launcher.main([f"--model={tmp_path / 'none.yaml'}", "--runner=DirectRunner"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_launcher_on_dataflow_fails_fast_offline(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed)
    plant = str(ROOT / "specs" / "plant" / "plant.yaml")
    code = launcher.main([f"--model={plant}", "--project=my-proj", "--region=us-central1",
                          "--temp_location=gs://my-bucket/tmp", f"--dataflow_endpoint={closed}"])
    assert code == 2
    assert "cannot submit to Dataflow: Google Cloud is not reachable" in capsys.readouterr().err


# ------------------------------------------------------------------ model: gs://...
def _fake_gcs(root: Path) -> _t.Any:
    """A Beam file system for ``fakegs://`` backed by ``root`` (stands in for gs:// offline)."""
    from apache_beam.io.localfilesystem import LocalFileSystem

    class FakeGcsFileSystem(LocalFileSystem):
        @classmethod
        def scheme(cls) -> str:
            return "fakegs"

        def _local(self, path: str) -> str:
            return str(root / path[len("fakegs://"):])

        def match(self, patterns: list[str], limits: _t.Any = None) -> _t.Any:
            results = super().match([self._local(p) for p in patterns], limits)
            for result in results:
                for meta in result.metadata_list:
                    meta.path = "fakegs://" + str(Path(meta.path).relative_to(root))
            return results

        def open(self, path: str, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:
            return super().open(self._local(path), *args, **kwargs)

    return FakeGcsFileSystem


def test_launcher_fetches_a_remote_model_folder(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    folder = bucket / "models" / "plant"
    folder.mkdir(parents=True)
    for name in ("plant.yaml", "plant.py", "requirements.txt", "scenarios.csv"):
        (folder / name).write_bytes((ROOT / "specs" / "plant" / name).read_bytes())
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "plant.cpython-312.pyc").write_bytes(b"stale")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("a\n1\n")
    fs = _fake_gcs(bucket)  # kept referenced: Beam finds file systems among live subclasses
    local = launcher.fetch_model("fakegs://models/plant/plant.yaml", tmp_path / "dl")
    assert local == tmp_path / "dl" / "plant.yaml"
    got = sorted(str(p.relative_to(tmp_path / "dl")) for p in (tmp_path / "dl").rglob("*") if p.is_file())
    assert got == ["plant.py", "plant.yaml", "requirements.txt", "scenarios.csv", "sub/data.csv"]
    records = tmp_path / "rec"
    assert launcher.main(["--model=fakegs://models/plant/plant.yaml", "--scenarios=fakegs://models/plant/scenarios.csv",
                          f"--record={records}", "--runner=DirectRunner"]) == 0
    assert {r["key"] for r in pq.read_table(glob.glob(str(records / "*.parquet"))).to_pylist()} == {
        "low-recovery", "high-recovery", "long-run"}
    from plugboard_beam.exceptions import UserError

    with pytest.raises(UserError, match="does not exist"):
        launcher.fetch_model("fakegs://models/plant/other.yaml", tmp_path / "dl2")
    assert fs.scheme() == "fakegs"


# ------------------------------------------------------------------ log_level / log_format
LOGGING_PARTS = '''
from plugboard_beam.component import Component, IOController as IO


class Talk(Component):
    io = IO(outputs=["x"])

    async def init(self) -> None:
        self._n = 0

    async def step(self) -> None:
        if self._n == 2:
            await self.io.close()
            return
        self._logger.info("talked", n=self._n)
        self.x = self._n
        self._n += 1
'''


@pytest.mark.slow
def test_launcher_log_level_and_format_reach_the_run_and_its_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The template's log_level is the run's (its workers' records at that level), log_format
    the launcher's own records; by default (warning) the components' info records are not shown."""
    (tmp_path / "flex_log_parts.py").write_text(LOGGING_PARTS)
    (tmp_path / "model.yaml").write_text(
        "plugboard:\n  process:\n    args:\n      components:\n"
        "      - {type: flex_log_parts.Talk, args: {name: talk}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = f"--model={tmp_path / 'model.yaml'}"
    assert launcher.main([model, "--runner=DirectRunner", "--log_level=info"]) == 0
    err = capsys.readouterr().err
    talked = [json.loads(line) for line in err.splitlines() if line.startswith("{") and '"talked"' in line]
    assert [(r["component"], r["n"], r["level"]) for r in talked] == [("talk", 0, "info"), ("talk", 1, "info")], err
    job_id = re.search(r"\(job id (Job_\w+)\)", err)
    assert job_id and all(r["job_id"] == job_id.group(1) for r in talked), err
    assert "done: 1 key(s)" in err
    assert launcher.main([model, "--runner=DirectRunner"]) == 0
    err = capsys.readouterr().err
    assert "talked" not in err and "done: 1 key(s)" in err
    assert launcher.main([model, "--runner=DirectRunner", "--log_level=info", "--log_format=text"]) == 0
    err = capsys.readouterr().err
    assert "talked" in err and not [line for line in err.splitlines() if line.startswith("{")], err
    with pytest.raises(SystemExit):
        launcher.main([model, "--runner=DirectRunner", "--log_level=loud"])
    assert "invalid choice: 'loud'" in capsys.readouterr().err
