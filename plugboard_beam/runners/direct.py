"""``--runner direct`` (default): the model lowered to Beam, on the DirectRunner's batch engine."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import typing as _t

from plugboard_beam.exceptions import Interrupted, UserError
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.lowering.patches import isolate_worker_signals, tune_direct_runner
from plugboard_beam.runners.base import BASE_FLAGS, Instances, Runner, RunReport, pipeline_options
from plugboard_beam.runtime import finals
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.spec.load import LoadedModel

if _t.TYPE_CHECKING:
    from plugboard_beam.lowering.dataio import Wave

log = logging.getLogger("plugboard_beam")


class BeamRunner(Runner):
    """Lower to Beam and run on ``beam_runner`` (the DirectRunner by default)."""

    name = "direct"
    writes_state = True

    def __init__(self, beam_runner: str = "FnApiRunner") -> None:
        # Beam's "DirectRunner" first tries to download the Prism runner from the internet;
        # FnApiRunner is the DirectRunner's portable batch engine and honours --direct_* options.
        self.beam_runner = beam_runner

    def accepts(self, options: RunOptions) -> frozenset[str]:
        return BASE_FLAGS | {"--progress", "--stages", "--record", "--rows-per-wave"}

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        self.options = pipeline_options(options.pipeline_args, {"runner": self.beam_runner}, dataflow_only=self.name)
        if options.record:
            check_record_destination(options.record)
        if "--rows-per-wave" in options.given and not _keyed_reads(model):
            raise UserError("--rows-per-wave: the model has no data reader with key_column (FileReader or "
                            "SQLReader); waves only split the keys found in keyed data")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        from plugboard_beam.lowering.plan import make_plan

        plan = make_plan(model.graph, options.partition)
        overrides = [(sc.key, dict(sc.overrides)) for sc, _ in insts]
        waves, report = self.waves(model, options)
        tracker = options.tracker
        if tracker is not None:
            if _keyed_reads(model):  # the keys come from the data: counted by ``waves`` (or not known)
                tracker.expect(report.keys or None)
        with tempfile.TemporaryDirectory(prefix="plugboard-beam-") as tmp:
            for wave in waves:
                self.run_wave(model, plan, overrides, options, wave, os.path.join(tmp, f"errors-{wave.index:05d}"),
                              report)
                if wave.count > 1:
                    release_memory()
        return report

    def waves(self, model: LoadedModel, options: RunOptions) -> tuple[list[Wave], RunReport]:
        """The waves of keys to run one after the other (one of all keys unless the model has keyed
        reads with more rows than ``--rows-per-wave``), and the report to fill (keys counted)."""
        from plugboard_beam.library.data import DataError
        from plugboard_beam.lowering.dataio import ALL_KEYS, key_counts, plan_waves

        report = RunReport()
        if not options.rows_per_wave or not _keyed_reads(model):
            return [ALL_KEYS], report
        try:
            counts = key_counts(model)
        except DataError:
            return [ALL_KEYS], report  # the pipeline's read reports it, naming reader and source
        assert counts is not None
        report.keys = len(counts)
        waves = plan_waves(counts, options.rows_per_wave)
        if len(waves) > 1:
            report.notes.append(f"{len(waves)} waves of at most {options.rows_per_wave} rows "
                                f"({len(counts)} keys, {sum(counts.values())} rows of keyed data; --rows-per-wave)")
        return waves, report

    def run_wave(self, model: LoadedModel, plan: _t.Any, overrides: list[tuple[str, dict[str, _t.Any]]],
                 options: RunOptions, wave: Wave, prefix: str, report: RunReport) -> None:
        """Run one pipeline (the keys of ``wave``); add its steps and failures to ``report``."""
        import apache_beam as beam

        from plugboard_beam.lowering.beam import build
        from plugboard_beam.runtime.context import RunContext

        if wave.count > 1:
            log.info("wave %d of %d: %s keys, %d rows", wave.index + 1, wave.count,
                     len(wave.keys) if wave.keys is not None else "the other", wave.rows)
        tune_direct_runner()  # (before the pipeline: options views, and building asks for DoFn specs)
        pipeline = beam.Pipeline(options=self.options)
        finals_prefix = os.path.join(os.path.dirname(prefix), f"finals-{wave.index:05d}")
        # the DoFns running in this process find the run's context (progress, live runs) by its id;
        # those in multi_processing workers write the keys that end to files in the run's folder
        folder = (tempfile.mkdtemp(prefix="plugboard-beam-progress-")
                  if options.tracker is not None and _workers(self.options) else "")
        context = RunContext.open(options.tracker, folder=folder)
        interrupted = False
        try:
            build(pipeline, model, plan, overrides, options.record, prefix, wave, options.final_fields,
                  finals_prefix, state=self.state, context=context,
                  log=options.log.on_local_workers() if options.log else None,
                  spread_starts=_many_workers(self.options), local_rows=True,
                  one_process=not _workers(self.options))
            isolate_worker_signals()
            result = pipeline.run()
            result.wait_until_finish()
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:
            if not _interrupted(exc):
                raise
            interrupted = True
        finally:
            live = context.close()  # destroy() on every component of this run still running here
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        if interrupted:
            workers = " here; worker processes destroy theirs as they exit" if _workers(self.options) else ""
            waves = f" (in wave {wave.index + 1} of {wave.count})" if wave.count > 1 else ""
            # the keys that had failed: as this process's DoFns saw them, and in the files of the
            # bundles that were finished (the only record of those run by worker processes)
            failed = dict.fromkeys([*context.failed_rows, *_rows(prefix)])
            raise Interrupted(f"stopped{waves}: destroy() was called on the components of {live} running key "
                              f"stage(s){workers}", [*report.failures, *(Failure.from_json(r) for r in failed)])
        report.failures += [Failure.from_json(row) for row in _rows(prefix)]
        if options.final_fields:
            report.finals.update(finals.merge([finals.from_json(row) for row in _rows(finals_prefix)]))
        for name, n in _step_counters(result).items():
            report.steps[name] = report.steps.get(name, 0) + n


def release_memory() -> None:
    """Between waves: collect the finished pipeline's reference cycles and hand freed memory back
    to the system (Arrow's pool; glibc's ``malloc_trim`` where there is one), so that the next
    wave starts where the first did (without it peak memory crept up by ~1-2 MB per wave)."""
    import ctypes
    import ctypes.util
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)


def _keyed_reads(model: LoadedModel) -> bool:
    """Whether the model has data readers with ``key_column`` (read by the Beam lowering)."""
    from plugboard_beam.lowering.dataio import DataIO
    from plugboard_beam.lowering.plan import make_plan

    return bool(DataIO.of(model, make_plan(model.graph), 1).reads)


def _step_counters(result: _t.Any) -> dict[str, int]:
    try:
        from apache_beam.metrics.metric import MetricsFilter

        counters = result.metrics().query(MetricsFilter().with_namespace("plugboard_beam"))["counters"]
    except Exception:
        logging.getLogger("plugboard_beam").debug("no metrics", exc_info=True)
        return {}
    steps: dict[str, int] = {}
    for c in counters:
        name = c.key.metric.name
        if name.startswith("steps/"):
            comp = name[len("steps/"):]
            steps[comp] = steps.get(comp, 0) + int(c.committed or c.attempted or 0)
    return steps


def _interrupted(exc: BaseException) -> bool:
    """Beam re-raises a ``KeyboardInterrupt`` that hit a DoFn as ``RuntimeError('KeyboardInterrupt')``."""
    seen: set[int] = set()
    err: _t.Optional[BaseException] = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, KeyboardInterrupt) or str(err).strip().endswith("KeyboardInterrupt"):
            return True
        err = err.__cause__ or err.__context__
    return False


def _rows(prefix: str) -> list[str]:
    """The rows of the complete files ``prefix*`` (``lowering/rows.py``: a file being written has
    a hidden name until it is complete)."""
    rows = []
    for path in sorted(glob.glob(prefix + "*")):
        with open(path) as f:
            rows += [line.rstrip("\n") for line in f if line.strip()]
    return rows


def _workers(options: _t.Any) -> bool:
    from apache_beam.options.pipeline_options import DirectOptions

    return str(options.view_as(DirectOptions).direct_running_mode) == "multi_processing"


def _many_workers(options: _t.Any) -> bool:
    """Whether the DirectRunner may run the keys on more than one worker (then the keys' start
    elements are spread over them)."""
    from apache_beam.options.pipeline_options import DirectOptions

    direct = options.view_as(DirectOptions)
    return _workers(options) or (direct.direct_num_workers or 1) != 1


#: seconds the ``gs://`` check of ``--record`` may take in all (credentials, then the bucket)
RECORD_CHECK_DEADLINE = 30.0


def check_record_destination(record: str, deadline: float = RECORD_CHECK_DEADLINE) -> None:
    """Before anything runs: a local ``--record`` folder can be written to; a ``gs://`` one has
    credentials and a reachable bucket (within ``deadline`` seconds). ``UserError`` otherwise."""
    if record.startswith("gs://"):
        _check_gcs(record, deadline)
        return
    if "://" in record:
        raise UserError(f"--record {record}: give a local folder or gs://BUCKET/PATH")
    try:
        os.makedirs(record, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=record, prefix=".plugboard-write-check-"):
            pass
    except OSError as exc:
        raise UserError(f"--record {record}: cannot write there ({exc.strerror or exc})") from None


def _check_gcs(record: str, deadline: float) -> None:
    import time

    from plugboard_beam.dataflow.preflight import bounded

    bucket = record[len("gs://"):].split("/", 1)[0]
    if not bucket:
        raise UserError(f"--record {record}: no bucket name (gs://BUCKET/PATH)")
    start = time.monotonic()

    def credentials() -> _t.Any:
        import google.auth
        import google.auth.exceptions

        try:
            creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
        except google.auth.exceptions.DefaultCredentialsError:
            raise UserError(f"--record {record}: no Google Cloud credentials found (run `gcloud auth "
                            "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS)") from None
        return creds

    try:
        creds = bounded(credentials, deadline)
    except TimeoutError:
        raise UserError(f"--record {record}: looking up Google Cloud credentials did not finish within "
                        f"{deadline:.0f} s") from None

    def reach_bucket() -> None:
        import importlib

        storage = importlib.import_module("google.cloud.storage")
        try:
            storage.Client(credentials=creds, project="-").get_bucket(bucket, timeout=10, retry=None)
        except Exception as exc:
            raise UserError(f"--record {record}: the bucket gs://{bucket} cannot be reached: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

    left = max(1.0, deadline - (time.monotonic() - start))
    try:
        bounded(reach_bucket, left)
    except TimeoutError:
        raise UserError(f"--record {record}: Cloud Storage did not answer within {deadline:.0f} s") from None
