"""The complete Dataflow job, built offline: pipeline proto, CreateJob request, staged files.

Beam's own ``--dry_run`` stops after translating the pipeline: its job holds only a name and
a type. The environment part of the request (worker pool, packages, image, experiments,
options) is built by ``DataflowApplicationClient.create_job_description``, which also stages
the files. Here that runs too, with ``no_auth`` (no credential lookup) and with the two upload
methods replaced by ones that copy the file into the job folder instead: the request is the
one a real submission sends, and nothing is contacted.

The summary reads the pipeline proto, so whatever built the pipeline (batch or streaming
lowering) it counts stateful steps, Pub/Sub reads and writes, and feedback topics (topics the
job both writes and reads) by URN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import hashlib
import io
import json
from pathlib import Path
import shutil
import typing as _t
from unittest import mock

PUBSUB_READ_URNS = ("beam:transform:pubsub_read:v1",)
PUBSUB_WRITE_URNS = ("beam:transform:pubsub_write:v1", "beam:transform:pubsub_write:v2")
PARDO_URN = "beam:transform:pardo:v1"
DOCKER_ENV_URN = "beam:env:docker:v1"
#: what a dry run writes into the job folder (and replaces on the next one)
OUTPUTS = ("pipeline.json", "job.json", "staged.json", "summary.json", "summary.txt", "staged")


@dataclass(frozen=True)
class StagedFile:
    """One file a submission uploads."""

    name: str
    #: the Cloud Storage object it would be uploaded to
    destination: str
    #: where it comes from on this machine ("<in-memory>" for pipeline.pb)
    source: str
    size: int
    sha256: str


@dataclass
class OfflineJob:
    """A job built offline: Beam's Job (``.proto``, ``.proto_pipeline``) and what it stages."""

    job: _t.Any
    staged: list[StagedFile] = field(default_factory=list)

    @property
    def proto_pipeline(self) -> _t.Any:
        """The Runner API pipeline proto (after Dataflow's rewrites, as staged in pipeline.pb)."""
        return self.job.proto_pipeline

    @property
    def request(self) -> dict[str, _t.Any]:
        """The body of ``projects.locations.jobs.create``."""
        return _t.cast(dict[str, _t.Any], json.loads(self.job.json()))


def build_offline(
    build: _t.Callable[[_t.Any], _t.Any], beam_options: _t.Any, copy_dir: Path
) -> tuple[OfflineJob, _t.Any]:
    """Run ``build(pipeline)`` on a DataflowRunner pipeline in dry-run mode and complete the job
    request; every file that would be uploaded is copied into ``copy_dir``. Returns the job
    and what ``build`` returned. ``beam_options`` must have ``dry_run=True``."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import GoogleCloudOptions, TestOptions
    from apache_beam.runners.dataflow.internal import apiclient

    pipeline = beam.Pipeline(options=beam_options)
    built = build(pipeline)
    result: _t.Any = pipeline.run()
    job = result.job
    copy_dir.mkdir(parents=True, exist_ok=True)
    offline = OfflineJob(job)

    def record(folder: str, name: str, data: bytes, source: str) -> None:
        (copy_dir / name).write_bytes(data)
        offline.staged.append(StagedFile(name, f"{folder.rstrip('/')}/{name}", source, len(data),
                                         hashlib.sha256(data).hexdigest()))

    def stage_file_with_retry(self: _t.Any, folder: str, name: str, stream_or_path: _t.Any,
                              *args: _t.Any, **kwargs: _t.Any) -> None:
        if isinstance(stream_or_path, str):
            record(folder, name, Path(stream_or_path).read_bytes(), stream_or_path)
        else:
            data = stream_or_path.read()
            record(folder, name, data if isinstance(data, bytes) else str(data).encode(), "<in-memory>")
            if isinstance(stream_or_path, io.IOBase) and stream_or_path.seekable():
                stream_or_path.seek(0)

    def gcs_file_copy(self: _t.Any, from_path: str, to_path: str, sha256: _t.Any) -> None:
        folder, name = to_path.rsplit("/", 1)
        record(folder, name, Path(from_path).read_bytes(), from_path)

    gco = job.options.view_as(GoogleCloudOptions)
    # dry_run and no_auth must not leak into the request's sdkPipelineOptions
    job.options.view_as(TestOptions).dry_run = False
    saved_no_auth, gco.no_auth = gco.no_auth, True
    try:
        with mock.patch.object(apiclient.DataflowApplicationClient, "stage_file_with_retry", stage_file_with_retry), \
                mock.patch.object(apiclient.DataflowApplicationClient, "_gcs_file_copy", gcs_file_copy):
            client = apiclient.DataflowApplicationClient(job.options, job.root_staging_location)
            gco.no_auth = saved_no_auth
            client.create_job_description(job)
    finally:
        gco.no_auth = saved_no_auth
    return offline, built


# ------------------------------------------------------------------ reading the proto
def _parents(proto: _t.Any) -> dict[str, str]:
    return {child: tid for tid, t in proto.components.transforms.items() for child in t.subtransforms}


def _outermost(proto: _t.Any, urns: _t.Sequence[str]) -> list[tuple[str, _t.Any]]:
    """Transforms with one of ``urns`` whose parent does not have one (no double counting)."""
    parents = _parents(proto)
    transforms = proto.components.transforms
    out = []
    for tid, t in transforms.items():
        parent = parents.get(tid)
        if t.spec.urn in urns and (parent is None or transforms[parent].spec.urn not in urns):
            out.append((tid, t))
    return sorted(out, key=lambda p: p[1].unique_name)


def stateful_steps(proto: _t.Any) -> list[tuple[str, list[str]]]:
    """(transform name, state and timer names) of every ParDo keeping per-key state."""
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    out = []
    for _, t in _outermost(proto, (PARDO_URN,)):
        payload = pb.ParDoPayload.FromString(t.spec.payload)
        names = sorted([*payload.state_specs, *payload.timer_family_specs])
        if names:
            out.append((t.unique_name, names))
    return out


#: Beam's resource hint URNs -> the names ``with_resource_hints`` takes
HINT_NAMES = {"beam:resources:min_ram_bytes:v1": "min_ram", "beam:resources:accelerator:v1": "accelerator",
              "beam:resources:cpu_count:v1": "cpu_count"}


def resource_hints(proto: _t.Any) -> list[tuple[str, dict[str, str]]]:
    """(transform name, its resource hints by name) of every ParDo that has hints (from
    components' ``resources``; they are on the transform's environment)."""
    envs = proto.components.environments
    out = []
    for _, t in _outermost(proto, (PARDO_URN,)):
        env = envs.get(t.environment_id) if t.environment_id else None
        if env is not None and env.resource_hints:
            out.append((t.unique_name, {HINT_NAMES.get(urn, urn): value.decode("utf-8", "replace")
                                        for urn, value in sorted(env.resource_hints.items())}))
    return out


def pubsub_reads(proto: _t.Any) -> list[tuple[str, str]]:
    """(transform name, topic or subscription) of every Pub/Sub read."""
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    out = []
    for _, t in _outermost(proto, PUBSUB_READ_URNS):
        try:
            p = pb.PubSubReadPayload.FromString(t.spec.payload)
            source = p.subscription or p.topic or "?"
        except Exception:
            source = "?"
        out.append((t.unique_name, source))
    return out


def pubsub_writes(proto: _t.Any) -> list[tuple[str, str]]:
    """(transform name, topic) of every Pub/Sub write."""
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    out = []
    for _, t in _outermost(proto, PUBSUB_WRITE_URNS):
        try:
            topic = pb.PubSubWritePayload.FromString(t.spec.payload).topic or "?"
        except Exception:
            topic = "?"
        out.append((t.unique_name, topic))
    return out


def _short(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def feedback_topics(reads: _t.Sequence[tuple[str, str]], writes: _t.Sequence[tuple[str, str]]) -> list[str]:
    """Topics the job writes and reads back: read as the topic itself, through a subscription
    named after it (``<topic>...``), or written by a transform / to a topic named 'feedback'
    (or a topic named ``...-fb-...``, the streaming lowering's feedback topics)."""
    written = {topic for _, topic in writes if topic != "?"}
    found: set[str] = set()
    for _, source in reads:
        if source in written:
            found.add(source)
        elif "/subscriptions/" in source:
            found |= {t for t in written if _short(source).startswith(_short(t))}
    found |= {topic for name, topic in writes
              if topic != "?" and ("feedback" in f"{name} {_short(topic)}".lower() or "-fb-" in _short(topic))}
    return sorted(found)


def worker_images(proto: _t.Any) -> list[str]:
    """Container images of the pipeline's environments."""
    from apache_beam.portability.api import beam_runner_api_pb2 as pb

    images = []
    for env in proto.components.environments.values():
        if env.urn == DOCKER_ENV_URN:
            images.append(pb.DockerPayload.FromString(env.payload).container_image)
    return sorted(set(images))


@dataclass
class JobSummary:
    """What ``--dry-run`` prints (and writes as summary.json)."""

    job_name: str
    job_type: str
    project: str
    region: str
    stages: list[str]
    stateful_steps: list[tuple[str, list[str]]]
    pubsub_reads: list[tuple[str, str]]
    pubsub_writes: list[tuple[str, str]]
    feedback_topics: list[str]
    worker_image: str
    ship_code: str
    modules: list[str]
    staged: list[str]
    notes: list[str]
    job_dir: str
    #: (transform, hints) of the transforms with Beam resource hints (components' ``resources``)
    resource_hints: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def to_json(self) -> dict[str, _t.Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def render(self) -> str:
        """The text summary."""
        kind = "streaming" if "STREAMING" in self.job_type else "batch"

        def section(title: str, rows: _t.Sequence[str]) -> list[str]:
            return [f"{title}: {len(rows)}", *(f"  {r}" for r in rows)]

        out = [f"Dataflow job {self.job_name} ({kind}, {self.job_type}) for project {self.project}, region "
               f"{self.region}: built offline, nothing submitted"]
        out += section("stages", self.stages)
        out += section("stateful steps", [f"{n} (state: {', '.join(s)})" for n, s in self.stateful_steps])
        out += section("Pub/Sub reads", [f"{n} <- {s}" for n, s in self.pubsub_reads])
        out += section("Pub/Sub writes", [f"{n} -> {t}" for n, t in self.pubsub_writes])
        out += section("feedback topics", self.feedback_topics)
        if self.resource_hints:
            out += section("resource hints", [f"{n}: {', '.join(f'{k}={v}' for k, v in h.items())}"
                                              for n, h in self.resource_hints])
        out.append(f"worker image: {self.worker_image}")
        out.append(f"code shipped: {self.ship_code} (model modules: {', '.join(self.modules) or 'none'})")
        out += section("staged files", self.staged)
        out += [f"note: {n}" for n in self.notes]
        out.append(f"written to {self.job_dir}: pipeline.json (pipeline proto), job.json (CreateJob request), "
                   "staged.json and staged/ (files a submission uploads), summary.json")
        return "\n".join(out)


def summarize(job: OfflineJob, *, project: str, region: str, stages: _t.Optional[_t.Sequence[str]],
              ship_code: str, modules: _t.Sequence[str], notes: _t.Sequence[str], job_dir: str) -> JobSummary:
    """Summarise an offline job from its proto and request."""
    proto = job.proto_pipeline
    body = job.request
    steps = stateful_steps(proto)
    reads, writes = pubsub_reads(proto), pubsub_writes(proto)
    pools = body.get("environment", {}).get("workerPools", [{}])
    image = pools[0].get("workerHarnessContainerImage") if pools else None
    return JobSummary(
        job_name=body.get("name", ""),
        job_type=body.get("type", ""),
        project=project,
        region=region,
        stages=list(stages) if stages is not None else [name for name, _ in steps],
        stateful_steps=steps,
        pubsub_reads=reads,
        pubsub_writes=writes,
        feedback_topics=feedback_topics(reads, writes),
        worker_image=image or ", ".join(worker_images(proto)) or "?",
        ship_code=ship_code,
        modules=list(modules),
        staged=[f.name for f in job.staged],
        notes=list(notes),
        job_dir=job_dir,
        resource_hints=resource_hints(proto),
    )


def clear_job_dir(job_dir: Path) -> None:
    """Remove a previous dry run's outputs (and nothing else) from ``job_dir``."""
    for name in OUTPUTS:
        p = job_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def write_job_dir(job_dir: Path, job: OfflineJob, summary: JobSummary) -> None:
    """pipeline.json, job.json, staged.json, summary.json and summary.txt (staged/ is filled while building)."""
    from google.protobuf import json_format

    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "pipeline.json").write_text(json_format.MessageToJson(job.proto_pipeline, indent=1) + "\n")
    (job_dir / "job.json").write_text(json.dumps(job.request, indent=2) + "\n")
    staged = [{**asdict(f), "copy": f"staged/{f.name}"} for f in job.staged]
    (job_dir / "staged.json").write_text(json.dumps(staged, indent=2) + "\n")
    (job_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    (job_dir / "summary.txt").write_text(summary.render() + "\n")


__all__: _t.Sequence[str] = [
    "JobSummary", "OfflineJob", "StagedFile", "build_offline", "clear_job_dir", "feedback_topics", "pubsub_reads",
    "pubsub_writes", "resource_hints", "stateful_steps", "summarize", "worker_images", "write_job_dir",
]
