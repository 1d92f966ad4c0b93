"""Issue 15.7: the streaming run's feedback/control key never reaches a job graph, a staged file,
a template or a log; on Dataflow it comes from Secret Manager; credentials are masked whatever
characters they hold."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
import json
import os
from pathlib import Path
import pickle
import re
import shutil
import stat
import subprocess
import time
from types import SimpleNamespace
import typing as _t
import zlib

from click.testing import CliRunner
import pytest
import yaml

from conftest import ROOT, cli_command
from plugboard_beam.streaming.codec import Codec
from plugboard_beam.streaming.secrets import KeyFile, KeyUnavailable, SecretManagerKey, private_key_file

SECRET_NAME = "projects/my-proj/secrets/pbb-control/versions/3"
DATAFLOW_ARGS = ("--project=my-proj", "--region=us-central1", "--temp_location=gs://my-bucket/tmp")
#: a recognisable secret: whatever the run would have drawn from os.urandom
SENTINEL = bytes(range(7, 39))


def forms(secret: bytes) -> list[bytes]:
    """The secret as raw bytes, hex (both cases) and base64 (standard and URL-safe)."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


_B64 = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")


def expanded(data: bytes, depth: int = 0) -> bytes:
    """``data`` plus every base64 run in it decoded, and zlib/bz2 streams decompressed, recursively
    (Beam stores a pickled DoFn as base64 of zlib of the pickle, and the JSON proto as base64 again)."""
    out = [data]
    if depth < 4:
        for blob in [data, *(m.group(0) for m in _B64.finditer(data))]:
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    raw = decode(blob + b"=" * (-len(blob) % 4)) if blob is not data else data
                except (binascii.Error, ValueError):
                    continue
                for unpack in (zlib.decompress, __import__("bz2").decompress):
                    try:
                        out.append(expanded(unpack(raw), depth + 1))
                    except Exception:
                        pass
                if blob is not data:
                    out.append(expanded(raw, depth + 1) if len(raw) < len(data) else raw)
    return b"\n".join(out)


def assert_absent(secret: bytes, where: str, data: bytes) -> None:
    every = expanded(data)
    for form in forms(secret):
        assert form not in every, f"the secret ({form[:12]!r}...) is in {where}"


# ------------------------------------------------------------------ a fake Secret Manager
@dataclass(frozen=True)
class FakeSecretManager:
    """A client factory (``SecretManagerKey(client=...)``) serving the secrets kept in ``store``
    (one file per secret name), so that pickling it (as Beam pickles a DoFn) copies no secret;
    every access is appended to ``store/calls``."""

    store: str

    @staticmethod
    def with_secrets(folder: Path, secrets: dict[str, bytes]) -> FakeSecretManager:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in secrets.items():
            (folder / name.replace("/", "_")).write_bytes(data)
        return FakeSecretManager(str(folder))

    @property
    def calls(self) -> list[str]:
        path = Path(self.store, "calls")
        return path.read_text().split() if path.exists() else []

    def __call__(self) -> FakeSecretManager:
        return self

    def access_secret_version(self, request: dict[str, str]) -> _t.Any:
        import google_crc32c

        name = request["name"]
        with open(Path(self.store, "calls"), "a") as f:
            f.write(name + "\n")
        path = Path(self.store, name.replace("/", "_"))
        if not path.exists():
            raise PermissionError(f"403 Permission 'secretmanager.versions.access' denied for {name}")
        data = path.read_bytes()
        return SimpleNamespace(payload=SimpleNamespace(data=data, data_crc32c=int(google_crc32c.value(data))))


def test_secret_manager_key_loads_on_the_worker_from_the_client_it_is_given(tmp_path: Path) -> None:
    fake = FakeSecretManager.with_secrets(tmp_path / "sm", {SECRET_NAME: SENTINEL})
    assert SecretManagerKey(SECRET_NAME, client=fake).load() == SENTINEL
    assert fake.calls == [SECRET_NAME]
    with pytest.raises(KeyUnavailable, match=r"pbb-control/versions/9: cannot access it .*403.*secretAccessor"):
        SecretManagerKey(SECRET_NAME.replace("/3", "/9"), client=fake).load()
    short = FakeSecretManager.with_secrets(tmp_path / "short", {SECRET_NAME: b"tiny"})
    with pytest.raises(KeyUnavailable, match="has 4 bytes, at least 16"):
        SecretManagerKey(SECRET_NAME, client=short).load()

    class Corrupt(FakeSecretManager):
        def access_secret_version(self, request: dict[str, str]) -> _t.Any:
            reply = super().access_secret_version(request)
            reply.payload.data_crc32c += 1
            return reply

    with pytest.raises(KeyUnavailable, match="checksum"):
        SecretManagerKey(SECRET_NAME, client=Corrupt(fake.store)).load()


def test_a_codec_pickles_to_its_reference_and_never_to_its_key(tmp_path: Path) -> None:
    """What Beam does to a DoFn's codec: pickle it. With the key itself, that refuses; with a
    reference, the pickle holds the reference only, also after the key was loaded."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Codec("run", SENTINEL))
    fake = FakeSecretManager.with_secrets(tmp_path / "sm", {SECRET_NAME: SENTINEL})
    codec = Codec("run", SecretManagerKey(SECRET_NAME, client=fake))
    assert codec.load() == SENTINEL  # loaded (a DoFn's setup), then pickled again
    blob = pickle.dumps(codec)
    assert_absent(SENTINEL, "the pickled codec", blob)
    assert SECRET_NAME.encode() in blob
    again = pickle.loads(blob)
    assert "_key" not in again.__dict__ and again.secret == codec.secret
    # the reference works where it is unpickled: seal there, open here
    data, attrs = again.seal("done", {"key": "k"})
    assert codec.open(data, attrs, "done") == {"run": "run", "kind": "done", "key": "k"}


def test_key_file_is_private_and_removed_at_the_end(tmp_path: Path) -> None:
    with private_key_file(SENTINEL, parent=str(tmp_path)) as ref:
        path = Path(ref.path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert ref.load() == SENTINEL
        assert_absent(SENTINEL, "the pickled key reference", pickle.dumps(Codec("r", ref)))
        os.chmod(path, 0o644)
        with pytest.raises(KeyUnavailable, match="readable by no one else"):
            ref.load()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyUnavailable, match="cannot open it"):
        KeyFile(str(path)).load()


def test_forged_feedback_and_done_under_a_wrong_key_are_rejected(tmp_path: Path) -> None:
    """The DoFns, set up from a key reference as on a worker (a Beam pickle round trip), accept
    messages sealed under the run's key and reject the same messages sealed under another."""
    from apache_beam.internal import pickler
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.pvalue import TaggedOutput

    from plugboard_beam.runners.streaming import Watch
    from plugboard_beam.streaming.pipeline import ControlDoFn, FeedbackDoFn

    fake = FakeSecretManager.with_secrets(tmp_path / "sm", {SECRET_NAME: SENTINEL})
    for source in (SecretManagerKey(SECRET_NAME, client=fake), None):
        with private_key_file(SENTINEL, parent=str(tmp_path)) as key_file:
            ref = source or key_file
            feedback = pickler.loads(pickler.dumps(FeedbackDoFn(Codec("run1", ref), {0: 1})))
            control = pickler.loads(pickler.dumps(ControlDoFn(Codec("run1", ref), 1)))
            feedback.setup()
            control.setup()
            real, forger = Codec("run1", SENTINEL), Codec("run1", os.urandom(32))
            good = PubsubMessage(*real.seal_chunk("k", (0, 0, [1.5], False)))
            forged = PubsubMessage(*forger.seal_chunk("k", (0, 0, [99.0], True)))
            assert [o.value for o in feedback.process(good) if isinstance(o, TaggedOutput)] == [
                ("k", (0, 0, [1.5], False))]
            assert list(feedback.process(forged)) == []
            # the driver's watch: a forged "done" (wrong key) ends nothing; the real one does
            sealed = next(iter(control.process(("k", 1, "", {}))))
            watch = Watch(SimpleNamespace(), real, ["k"], [1], [])
            forged_done = forger.seal("done", {"key": "k", "stage": 1, "published": {}, "failure": None})
            watch._handle("control", forged_done[1], forged_done[0])
            assert watch.rejected == 1 and not watch.complete
            watch._handle("control", dict(sealed.attributes), sealed.data)
            assert watch.complete
    assert fake.calls == [SECRET_NAME, SECRET_NAME]  # once per DoFn setup


def test_a_missing_secret_fails_the_dofn_setup_clearly(tmp_path: Path) -> None:
    from plugboard_beam.streaming.pipeline import FeedbackDoFn

    empty = FakeSecretManager.with_secrets(tmp_path / "sm", {})
    dofn = FeedbackDoFn(Codec("run1", SecretManagerKey(SECRET_NAME, client=empty)), {})
    with pytest.raises(KeyUnavailable, match=r"Secret Manager secret .*pbb-control.*cannot access"):
        dofn.setup()


# ------------------------------------------------------------------ Dataflow: the dry run's artefacts
def _dry_run(tmp_path: Path, *extra: str) -> _t.Any:
    from plugboard_beam.cli.main import main

    return CliRunner().invoke(main, ["process", "run", str(ROOT / "specs" / "tank" / "tank.yaml"),
                                             "--runner", "dataflow", "--dry-run", "--streaming", "--job-dir",
                                             str(tmp_path / "job"), *DATAFLOW_ARGS, *extra])


@pytest.mark.slow
def test_a_streaming_dry_run_holds_the_secret_name_never_the_key(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack: pipeline.pb (uploaded to --temp_location) held the run's HMAC key. Now the
    job holds the Secret Manager name; the key the run would have drawn is nowhere."""
    from plugboard_beam.streaming import codec as codec_module

    monkeypatch.setattr(codec_module, "new_secret", lambda: SENTINEL)
    monkeypatch.setattr(os, "urandom", lambda n: (SENTINEL * (n // len(SENTINEL) + 1))[:n])
    result = _dry_run(tmp_path, "--control-secret", SECRET_NAME)
    assert result.exit_code == 0, result.output
    job = tmp_path / "job"
    files = [p for p in job.rglob("*") if p.is_file()]
    assert {"pipeline.pb", "pipeline.json", "job.json"} <= {p.name for p in files}
    everything = b""
    for p in files:
        if p.suffix == ".whl":
            continue  # our own code, built before the run
        assert_absent(SENTINEL, str(p.relative_to(job)), p.read_bytes())
        everything += p.read_bytes()
    assert_absent(SENTINEL, "the dry run's output", result.output.encode())
    # positive control: what the DoFns carry is found by the same search (the name of the secret)
    assert SECRET_NAME.encode() in expanded((job / "staged" / "pipeline.pb").read_bytes())
    # the DoFns of the staged pipeline resolve the reference on the worker, here with a fake client
    from apache_beam.internal import pickler
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    proto = pb.Pipeline.FromString((job / "staged" / "pipeline.pb").read_bytes())
    refs = []
    for t in proto.components.transforms.values():
        if t.spec.urn == "beam:transform:pardo:v1":
            payload = pb.ParDoPayload.FromString(t.spec.payload)
            if payload.do_fn.urn == "beam:dofn:pickled_python_info:v1":
                fn = pickler.loads(payload.do_fn.payload)[0]
                if hasattr(fn, "codec"):
                    refs.append(fn.codec.secret)
    assert refs and all(r == SecretManagerKey(SECRET_NAME) for r in refs), refs


@pytest.mark.slow
def test_a_streaming_dataflow_job_without_a_control_secret_is_refused(tmp_path: Path) -> None:
    result = _dry_run(tmp_path)
    assert result.exit_code != 0
    assert "a streaming job needs --control_secret projects/PROJECT/secrets/NAME/versions/NUMBER" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "job" / "pipeline.json").exists()
    bad = _dry_run(tmp_path, "--control-secret", "projects/my-proj/secrets/pbb-control/versions/latest")
    assert bad.exit_code != 0 and "is not a Secret Manager secret version" in bad.output
    assert "a fixed version, not 'latest'" in bad.output


# ------------------------------------------------------------------ the DirectRunner
def test_the_direct_runner_pipeline_holds_the_key_file_path_not_the_key(tmp_path: Path) -> None:
    """The pipeline proto the DirectRunner runs (every DoFn pickled) has the key file's path only."""
    import apache_beam as beam

    from plugboard_beam.events.codec import event_classes
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec import load_model
    from plugboard_beam.streaming.pipeline import build_streaming
    from plugboard_beam.streaming.plan import streaming_plan
    from plugboard_beam.streaming.resources import Resources

    model = load_model(str(ROOT / "specs" / "tank" / "tank.yaml"))
    plan = streaming_plan(model, RunOptions(streaming=True))
    assert plan.cut  # the tank's loop goes through the feedback topic: sealed messages
    res = Resources.plan(model, plan.cut, "my-proj", "run1")
    with private_key_file(SENTINEL, parent=str(tmp_path)) as ref:
        pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(streaming=True))
        build_streaming(pipeline, model, plan, [("k", {})], res,
                        Codec("run1", ref, event_classes(model.classes.values())), None)
        blob = pipeline.to_runner_api().SerializeToString()
        assert_absent(SENTINEL, "the pipeline proto", blob)
        assert ref.path.encode() in expanded(blob)
        # the key itself cannot be pickled into a pipeline by mistake
        with pytest.raises(Exception, match="cannot be pickled"):
            build_streaming(beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(streaming=True)),
                            model, plan, [("k", {})], res, Codec("run1", SENTINEL), None)


# ------------------------------------------------------------------ a real streaming run's logs
@pytest.fixture(scope="module")
def emulator() -> Iterator[_t.Any]:
    from plugboard_beam.testing.emulator import Emulator

    with Emulator(project="plugboard-beam-secrets") as emu:
        yield emu


def _key_files(folder: Path) -> list[Path]:
    return list(folder.glob("plugboard-key-*/key"))


@pytest.mark.slow
def test_streaming_run_key_stays_out_of_logs_and_is_removed(emulator: _t.Any, tmp_path: Path) -> None:
    """The tank twin with 3 keys on the emulator, --debug: the key is in a private file while the
    run lasts (the test reads it, as only this user can), never in any output, and gone after;
    forged "done" messages under another key, published before any input, end nothing."""
    from google.cloud import pubsub_v1

    project = "plugboard-beam-secrets"
    env = dict(os.environ, PUBSUB_EMULATOR_HOST=emulator.host, PUBSUB_PROJECT_ID=project,
               TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "tank"
    shutil.copytree(ROOT / "specs" / "tank", work)
    keys = ["k-0", "k-1", "k-2"]
    (work / "keys.yaml").write_text(yaml.safe_dump([{"key": k} for k in keys]))
    pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    t_in, t_out = f"projects/{project}/topics/sec-in", f"projects/{project}/topics/sec-out"
    for t in (t_in, t_out):
        pub.create_topic(name=t)
    sub.create_subscription(name=f"projects/{project}/subscriptions/sec-in-sub", topic=t_in)
    sub.create_subscription(name=f"projects/{project}/subscriptions/sec-out-sub", topic=t_out)
    before = {t.name for t in pub.list_topics(project=f"projects/{project}")}
    proc = subprocess.Popen([*cli_command(), "--debug", "process", "run", "tank.yaml", "--streaming", "--scenarios",
                             "keys.yaml", "-p", "sensor.subscription=sec-in-sub", "-p", "report.topic=sec-out"],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _key_files(tmp_path / "tmp") and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        (key_path,) = _key_files(tmp_path / "tmp")
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
        secret = key_path.read_bytes()
        assert len(secret) == 32
        control = None
        while control is None and time.monotonic() < deadline:
            control = next((t.name for t in pub.list_topics(project=f"projects/{project}")
                            if t.name not in before and t.name.endswith("-control")), None)
            time.sleep(0.1)
        assert control is not None
        run_id = control.rsplit("/", 1)[-1].removesuffix("-control").rsplit("-", 1)[-1]
        forger = Codec(run_id, os.urandom(32))
        for k in keys:
            for stage in range(4):
                data, attrs = forger.seal("done", {"key": k, "stage": stage, "published": {"report": 0},
                                                   "failure": None})
                pub.publish(control, data, **attrs).result()
        time.sleep(3)
        assert proc.poll() is None  # the forged ends ended nothing
        inflows = {k: [1.0 + i, 2.0, 3.0 * i] for i, k in enumerate(keys)}
        for k, values in inflows.items():
            for seq, v in enumerate(values):
                pub.publish(t_in, json.dumps({"inflow": v}).encode(), key=k, seq=str(seq)).result()
            pub.publish(t_in, b"", key=k, seq=str(len(values)), eos="true").result()
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "failed authentication" in text  # the forged messages were counted
    assert _key_files(tmp_path / "tmp") == [] and not list((tmp_path / "tmp").glob("plugboard-key-*"))
    for name, blob in (("stdout", out), ("stderr", err)):
        assert_absent(secret, name, blob)
    published = sub.pull(subscription=f"projects/{project}/subscriptions/sec-out-sub", max_messages=100, timeout=10)
    got: dict[str, int] = {}
    for m in published.received_messages:
        if m.message.attributes.get("eos") != "true":
            got[m.message.attributes["key"]] = got.get(m.message.attributes["key"], 0) + 1
    assert got == {k: 3 for k in keys}


def test_control_secret_from_a_profile_or_flag_is_checked_offline(tmp_path: Path) -> None:
    from plugboard_beam.dataflow.options import resolve
    from plugboard_beam.exceptions import UserError

    profile = tmp_path / "dataflow.yaml"
    profile.write_text(yaml.safe_dump({"project": "my-proj", "region": "us-central1",
                                       "temp_location": "gs://my-bucket/tmp", "control_secret": SECRET_NAME}))
    config = resolve([], profile=str(profile), model_name="tank", streaming=True)
    assert config.control_secret == SECRET_NAME
    assert not any("control_secret" in a for a in config.beam_args)  # plugboard's own: not a Beam option
    regional = "projects/my-proj/locations/europe-west4/secrets/pbb/versions/12"
    assert resolve([*DATAFLOW_ARGS, f"--control-secret={regional}"], profile=None, model_name="tank",
                   streaming=True).control_secret == regional
    with pytest.raises(UserError, match="--control_secret is for streaming jobs"):
        resolve([*DATAFLOW_ARGS, f"--control_secret={SECRET_NAME}"], profile=None, model_name="tank")
    with pytest.raises(UserError, match="is not a Secret Manager secret version"):
        resolve([*DATAFLOW_ARGS, "--control_secret=my-secret"], profile=None, model_name="tank", streaming=True)
