"""The Flex Template launcher: ``python pipelines/main.py --model=... [parameters] [Beam options]``.

Dataflow's launcher runs the template's Python file with the template parameters as
``--name=value`` flags, followed by the job's pipeline options (``--project``, ``--region``,
``--temp_location``, ``--staging_location``, ``--job_name``, ``--sdk_container_image``, ...).

Template parameters (``TEMPLATE_PARAMETERS``, declared in ``pipelines/metadata.json``):

* ``model``: the model YAML, a path in the image (``/template/specs/plant/plant.yaml``) or a
  ``gs://`` object; for ``gs://`` the YAML's folder (its component modules, requirements.txt)
  is downloaded first, then packaged for the workers like a local model folder;
* ``scenarios``: a scenarios file (path or ``gs://``): one row per key;
* ``record``: ``gs://`` folder for the Parquet recording of every connector message;
* ``stages``: ``fused`` (default) or ``component``;
* ``params``: ``;``-separated overrides ``comp.arg=VALUE`` (values are YAML);
* ``ship_code``: ``package`` (default) or ``container``;
* ``log_level``: the least level of the run's log records (``process run --log-level``; default
  ``warning``), on the launcher and on the workers (Dataflow: Cloud Logging);
* ``log_format``: the launcher's own records as ``json`` lines (default) or ``text``; workers'
  records go through Beam's handler (one JSON object a message) whatever it is.

``--runner`` (``DataflowRunner`` by default, or ``DirectRunner``) picks where it runs: the
same parameters run locally on the DirectRunner, which is how the template is tested.
On Dataflow the launcher returns once the job is submitted (it does not wait for the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path
import sys
import tempfile
import typing as _t

from plugboard_beam.exceptions import UserError
from plugboard_beam.logs import FORMATS, LEVELS, LogConfig, configure

log = logging.getLogger("plugboard_beam.launcher")

TEMPLATE_PARAMETERS = ("model", "scenarios", "record", "stages", "params", "ship_code", "log_level", "log_format")
RUNNER_NAMES = {"dataflowrunner": "dataflow", "dataflow": "dataflow", "directrunner": "direct", "direct": "direct"}
#: limits of a downloaded model folder
MAX_FILES = 500
MAX_BYTES = 50 * 1024 * 1024


def parser() -> argparse.ArgumentParser:
    """The launcher's own flags (every other flag is a pipeline option)."""
    p = argparse.ArgumentParser(prog="main.py", description="plugboard_beam Flex Template launcher",
                                allow_abbrev=False)
    p.add_argument("--model", required=True, help="model YAML: a path or gs://BUCKET/PATH/model.yaml")
    p.add_argument("--scenarios", default="", help="scenarios file (YAML/JSON/CSV/Parquet): a path or gs://")
    p.add_argument("--record", default="", help="gs:// folder for the Parquet recording of every message")
    p.add_argument("--stages", default="fused", choices=["fused", "component"], help="stage partitioning")
    p.add_argument("--params", default="", help="';'-separated comp.arg=VALUE overrides")
    p.add_argument("--ship_code", default="", choices=["", "package", "container"],
                   help="how the model's modules reach the workers")
    p.add_argument("--log_level", default="warning", choices=list(LEVELS),
                   help="least level of the run's log records, on the launcher and the workers")
    p.add_argument("--log_format", default="json", choices=list(FORMATS),
                   help="the launcher's own records: json lines or text")
    p.add_argument("--runner", default="DataflowRunner", help="DataflowRunner (default) or DirectRunner")
    p.add_argument("--wait", action="store_true", help="on Dataflow, wait for the job to end")
    return p


def is_remote(path: str) -> bool:
    """A URL Beam's file systems read (``gs://...``), as opposed to a local path."""
    return "://" in path and not path.startswith("file://")


def fetch(url: str, dest: Path) -> Path:
    """Copy one remote file to ``dest``."""
    from apache_beam.io.filesystems import FileSystems

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileSystems.open(url, compression_type="uncompressed") as src:
            dest.write_bytes(src.read())
    except Exception as exc:
        raise UserError(f"cannot read {url}: {type(exc).__name__}: {exc}") from None
    return dest


def fetch_model(url: str, dest: Path) -> Path:
    """Download a remote model YAML's folder (everything under its prefix, caches left out)
    into ``dest``; return the local path of the YAML."""
    from apache_beam.io.filesystems import FileSystems

    folder, _, name = url.rpartition("/")
    prefix = folder + "/"
    try:
        found = FileSystems.match([prefix + "**"])[0].metadata_list
    except Exception as exc:
        raise UserError(f"--model {url}: cannot list {prefix}: {type(exc).__name__}: {exc}") from None
    files = []
    for meta in found:
        rel = meta.path[len(prefix):] if meta.path.startswith(prefix) else ""
        parts = rel.split("/")
        if not rel or rel.endswith("/") or any(p in ("", "..", "__pycache__") or p.startswith(".") for p in parts):
            continue
        files.append((rel, meta.size_in_bytes))
    if name not in {rel for rel, _ in files}:
        raise UserError(f"--model {url} does not exist")
    if len(files) > MAX_FILES or sum(size for _, size in files) > MAX_BYTES:
        raise UserError(f"--model {url}: its folder holds {len(files)} files / {sum(s for _, s in files)} bytes; "
                        f"keep the model folder small (at most {MAX_FILES} files, {MAX_BYTES // 2**20} MB)")
    for rel, _ in files:
        fetch(prefix + rel, dest / rel)
    return dest / name


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(";") if item.strip()]


def launch(argv: _t.Sequence[str]) -> int:
    """Parse ``argv``, run the model; raise UserError / RunFailed on failure."""
    from plugboard_beam.cli.main import parse_params
    from plugboard_beam.cli.registry import get_runner
    from plugboard_beam.lowering.options import RunOptions
    from plugboard_beam.spec.load import load_model
    from plugboard_beam.spec.scenarios import load_scenarios

    args, rest = parser().parse_known_args(list(argv))
    config = LogConfig(level=args.log_level, format=args.log_format)
    configure(config)
    for noisy in ("apache_beam", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    runner = RUNNER_NAMES.get(args.runner.lower())
    if runner is None:
        raise UserError(f"--runner {args.runner!r}: use DataflowRunner or DirectRunner")
    from plugboard_beam.dataflow.options import split_known

    # The launcher's environment may hold options this Beam does not know: ignored, not fatal.
    rest, ignored = split_known(rest)
    if ignored:
        log.warning("ignoring unknown pipeline options: %s", " ".join(ignored))
    streaming = "--streaming" in rest
    pipeline_args = [a for a in rest if a != "--streaming"]
    if runner != "dataflow":
        # The template's environment always passes project, region, container image, ...:
        # the DirectRunner (a local check of the template) has no use for them.
        from plugboard_beam.runners.base import split_dataflow_only

        pipeline_args, dropped = split_dataflow_only(pipeline_args)
        if dropped:
            log.warning("ignoring Dataflow options on the DirectRunner: %s", " ".join(dropped))
    if runner == "dataflow":
        if args.ship_code:
            pipeline_args.append(f"--ship_code={args.ship_code}")
        if not args.wait:
            pipeline_args.append("--no_wait")
    with tempfile.TemporaryDirectory(prefix="plugboard-launcher-") as tmp:
        model_path = fetch_model(args.model, Path(tmp, "model")) if is_remote(args.model) else Path(args.model)
        scenarios = None
        if args.scenarios:
            local = args.scenarios
            if is_remote(local):
                local = str(fetch(local, Path(tmp, "scenarios", os.path.basename(local))))
            scenarios = load_scenarios(local)
        model = load_model(model_path, parse_params(_split(args.params)))
        from plugboard_beam.cli.job_id import resolve_job_id

        job_id = resolve_job_id(model, None)  # the model's state: args: job_id, else a new one
        options = RunOptions(job_id=job_id, scenarios=scenarios, record=args.record or None, partition=args.stages,
                             pipeline_args=pipeline_args, streaming=streaming,
                             log=dataclasses.replace(config, job_id=job_id))
        print(f"running {args.model} (job id {job_id}) on {runner} with {' '.join(pipeline_args)}", file=sys.stderr)
        report = get_runner(runner).run(model, options)
    print(f"done: {report.keys} key(s); steps {report.steps}", file=sys.stderr)
    return 0


def main(argv: _t.Optional[_t.Sequence[str]] = None) -> int:
    """The entry point: exit code 0, 1 (a key failed) or 2 (bad parameters / cannot submit)."""
    from plugboard_beam.runners.base import RunFailed

    try:
        return launch(sys.argv[1:] if argv is None else argv)
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


__all__: _t.Sequence[str] = ["TEMPLATE_PARAMETERS", "fetch", "fetch_model", "launch", "main", "parser"]
