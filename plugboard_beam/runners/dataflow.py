"""``DataflowRunner``: ``process run MODEL --runner dataflow``.

check: options validated offline (``options.resolve``), and a builder exists for the job kind.
execute:

* ship the code (wheels built into a temporary folder, see ``shipping``);
* ``--dry-run``: build the complete job offline into ``--job-dir`` and print its summary;
* otherwise: preflight (network, credentials, bucket; bounded in time), then build the
  pipeline, submit it, print the job id and console URL, and (unless ``--no_wait``, or when
  Beam writes a template instead of creating a job) wait for the end, read the per-key
  failures back from Cloud Storage and report steps per component.
"""

from __future__ import annotations

import logging
from pathlib import Path
import tempfile
import typing as _t

import click

from plugboard_beam.dataflow.builders import BuildRequest, get_builder
from plugboard_beam.dataflow.options import DataflowConfig, resolve
from plugboard_beam.exceptions import UserError
from plugboard_beam.runners.base import BASE_FLAGS, Instances, RunOptions, RunReport, pipeline_options
from plugboard_beam.runners.direct import BeamRunner
from plugboard_beam.runtime import finals
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.spec.load import LoadedModel

if _t.TYPE_CHECKING:
    from plugboard_beam.dataflow.dryrun import JobSummary
    from plugboard_beam.dataflow.shipping import Shipment

log = logging.getLogger("plugboard_beam")
#: (key, overrides) per model instance
InstanceOverrides = tuple[tuple[str, dict[str, _t.Any]], ...]


def console_url(config: DataflowConfig, job_id: str) -> str:
    """The job's page in the Cloud console."""
    return f"https://console.cloud.google.com/dataflow/jobs/{config.region}/{job_id}?project={config.project}"


class DataflowRunner(BeamRunner):
    """Submit the model's pipeline to Google Cloud Dataflow (or build it offline with --dry-run)."""

    name = "dataflow"
    writes_state = False  # the job is built from a request (dataflow/builders.py): not wired yet

    def __init__(self) -> None:
        super().__init__("DataflowRunner")
        self.config: _t.Optional[DataflowConfig] = None
        #: the last dry run's summary (for callers and tests)
        self.summary: _t.Optional[JobSummary] = None
        #: the last run waited for its job's end: its report holds the job's steps and failures
        #: (otherwise its ``notes`` say what became of the job, and nothing has run yet)
        self.waited = False

    def accepts(self, options: RunOptions) -> frozenset[str]:
        flags = BASE_FLAGS | {"--stages", "--record", "--streaming", "--profile", "--dry-run"}
        if options.dry_run:
            flags |= {"--job-dir"}
        if options.streaming:
            flags |= {"--loops", "--feedback-topic"}
        return flags

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        self.config = resolve(options.pipeline_args, profile=options.profile, model_name=model.graph.name,
                              streaming=options.streaming, dry_run=options.dry_run, record=options.record)
        get_builder(self.kind)

    def report_resources(self, model: LoadedModel, options: RunOptions) -> None:
        """Resources become Beam resource hints (``lowering/hints.py``); say once what of them
        Beam cannot express (fractions of a CPU, Ray's custom resources)."""
        from plugboard_beam.lowering.hints import component_resources, stage_hints

        resources = component_resources(model)
        ignored = [i for name in resources for i in stage_hints(resources, [name]).ignored]
        if ignored:
            log.warning("component resources Dataflow has no hint for are ignored: %s", "; ".join(ignored))

    @property
    def kind(self) -> str:
        """``streaming`` or ``batch``."""
        return "streaming" if self.config is not None and self.config.streaming else "batch"

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        from plugboard_beam.dataflow.shipping import ship

        config = self.config
        assert config is not None, "check() runs first"
        instances = tuple((sc.key, dict(sc.overrides)) for sc, _ in insts)
        with tempfile.TemporaryDirectory(prefix="plugboard-dataflow-") as tmp:
            shipment = ship(config, model, Path(tmp), dry_run=options.dry_run)
            args = [*config.beam_args, *shipment.beam_args]
            if options.dry_run:
                return self._dry_run(model, instances, options, args, shipment)
            from plugboard_beam.dataflow.preflight import preflight

            preflight(config)
            return self._submit(model, instances, options, args)

    def _request(self, instances: InstanceOverrides, options: RunOptions, beam_options: _t.Any) -> BuildRequest:
        config = self.config
        assert config is not None
        return BuildRequest(instances=instances, options=options, beam_options=beam_options,
                            errors_prefix=config.errors_prefix, project=config.project, region=config.region,
                            job_name=config.job_name, temp_location=config.temp_location,
                            control_secret=config.control_secret,
                            finals_prefix=finals_prefix(config) if options.final_fields else "")

    def _dry_run(self, model: LoadedModel, instances: InstanceOverrides, options: RunOptions, args: list[str],
                 shipment: Shipment) -> RunReport:
        from plugboard_beam.dataflow.dryrun import build_offline, clear_job_dir, summarize, write_job_dir

        config = self.config
        assert config is not None
        job_dir = Path(options.job_dir)
        clear_job_dir(job_dir)
        beam_options = pipeline_options(args, {"runner": "DataflowRunner", "dry_run": True})
        builder = get_builder(self.kind)
        request = self._request(instances, options, beam_options)
        try:
            job, stages = build_offline(lambda p: builder(p, model, request), beam_options, job_dir / "staged")
        except UserError:
            raise
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"building the Dataflow job failed: {exc}") from None
        summary = summarize(job, project=config.project, region=config.region, stages=stages,
                            ship_code=shipment.mode, modules=shipment.modules, notes=shipment.notes,
                            job_dir=str(job_dir))
        write_job_dir(job_dir, job, summary)
        click.echo(summary.render())
        self.summary = summary
        return RunReport(notes=[f"Dataflow job {config.job_name}: built offline into {job_dir}, nothing submitted"])

    def _submit(self, model: LoadedModel, instances: InstanceOverrides, options: RunOptions,
                args: list[str]) -> RunReport:
        import apache_beam as beam

        from plugboard_beam.runners.direct import _step_counters

        config = self.config
        assert config is not None
        beam_options = pipeline_options(args, {"runner": "DataflowRunner"})
        try:
            pipeline = beam.Pipeline(options=beam_options)
            get_builder(self.kind)(pipeline, model, self._request(instances, options, beam_options))
            result: _t.Any = pipeline.run()
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"submitting the Dataflow job failed: {type(exc).__name__}: {exc}") from None
        if config.template or not getattr(result, "has_job", False):
            click.echo(f"Dataflow job {config.job_name} written to the template location (not created)", err=True)
            return RunReport(notes=[f"Dataflow job {config.job_name}: written to the template location, not created"])
        job_id = result.job_id()
        url = console_url(config, job_id)
        click.echo(f"submitted Dataflow job {config.job_name} (id {job_id})\n  {url}", err=True)
        report = RunReport()
        if not config.wait:
            report.notes += [f"Dataflow job {config.job_name} (id {job_id}): submitted, not waited for (--no_wait); "
                             f"see {url}", f"failures: the workers write them under {config.errors_prefix}"]
            return report
        self.waited = True
        report.notes.append(f"Dataflow job {config.job_name} (id {job_id}): {url}")
        try:
            result.wait_until_finish()
        except Exception as exc:
            report.failures.append(Failure(key="", component="", step=-1, phase="run", error_type="JobFailed",
                                           reason=f"Dataflow job {job_id} did not succeed: {exc}\n  see {url}"))
        report.failures += read_failures(config.errors_prefix)
        if options.final_fields:
            report.finals.update(finals.merge(read_rows(finals_prefix(config), finals.from_json, "final values")))
        report.steps = _step_counters(result)
        return report


def finals_prefix(config: DataflowConfig) -> str:
    """Where workers write each key's final values (tuning objectives), next to the failures."""
    return config.errors_prefix.rsplit("/", 1)[0] + "/finals"


def read_failures(prefix: str) -> list[Failure]:
    """The per-key failure records the workers wrote under ``prefix`` (JSON lines)."""
    return read_rows(prefix, Failure.from_json, "failure rows")


Row = _t.TypeVar("Row")


def read_rows[Row](prefix: str, parse: _t.Callable[[str], Row], what: str) -> list[Row]:
    """The JSON lines the workers wrote under ``prefix``, parsed."""
    from apache_beam.io.filesystems import FileSystems

    rows: list[Row] = []
    try:
        matches = FileSystems.match([prefix + "*"])[0].metadata_list
        for meta in sorted(matches, key=lambda m: m.path):
            with FileSystems.open(meta.path) as f:
                rows += [parse(line) for line in f.read().decode().splitlines() if line.strip()]
    except Exception:
        log.warning("could not read the job's %s under %s", what, prefix, exc_info=True)
    return rows


__all__: _t.Sequence[str] = ["DataflowRunner", "console_url", "read_failures"]
