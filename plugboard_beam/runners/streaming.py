"""Streaming runs on the DirectRunner: create topics, run, watch for the end, stop cleanly.

A run whose keys are known (``--scenarios``, or the one default key of a model without
Pub/Sub readers) ends by itself: every stage reports on the control topic when a key has
ended there (after ``destroy()``), every writer publishes an end-of-stream message per key, and
once all have been seen the pipeline is cancelled and the command exits (1 if a key failed).
A model keyed by its incoming messages runs until Ctrl-C, which cancels the pipeline, calls
``destroy()`` on every live component and deletes the run's subscriptions.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
import typing as _t
import uuid

from plugboard_beam.exceptions import Interrupted, UserError
from plugboard_beam.library.pubsub import PubSubReader, project_id
from plugboard_beam.runners.base import Instances, Runner, RunOptions, RunReport, pipeline_options
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.streaming.plan import components_of, streaming_plan

log = logging.getLogger("plugboard_beam")


class StreamingRunner(Runner):
    """``process run --streaming`` on the DirectRunner."""

    name = "direct-streaming"

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        if options.record:
            raise UserError("--record is for batch runs; in streaming, publish results with a PubSubWriter")
        readers = components_of(model, PubSubReader)
        sources = [n.name for n in model.graph.nodes if n.is_source and n.name not in readers]
        if readers and not options.scenarios and sources:
            raise UserError(
                f"the keys of this model come from its Pub/Sub messages, so its other sources "
                f"({', '.join(sources)}) would not know when to start: give --scenarios with the keys")
        self.options = pipeline_options(
            list(options.pipeline_args), {"runner": "BundleBasedDirectRunner", "streaming": True})
        if not os.environ.get("PUBSUB_EMULATOR_HOST"):
            log.warning("PUBSUB_EMULATOR_HOST is not set: using the real Pub/Sub service")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        from plugboard_beam.lowering import beam as lowering_beam
        from plugboard_beam.lowering.patches import tune_pubsub_reads
        from plugboard_beam.streaming.pipeline import build_streaming
        from plugboard_beam.streaming.resources import Resources

        plan = streaming_plan(model, options)
        readers = components_of(model, PubSubReader)
        finite = bool(options.scenarios) or not readers
        keys = [sc.key for sc, _ in insts] if finite else []
        scenarios = [(sc.key, dict(sc.overrides)) for sc, _ in insts] if finite else []
        project = project_id(self.options.view_as(GoogleCloudOptions).project)
        if not re.fullmatch(r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]", project):
            raise UserError(f"Pub/Sub project {project!r} (from --project, PUBSUB_PROJECT_ID or "
                            "GOOGLE_CLOUD_PROJECT) is not a valid project id: 6 to 63 characters, lower-case "
                            "letters, digits and hyphens, starting with a letter")
        # The DirectRunner reads one subscription well: feedback rides on the input topic unless
        # the user names a feedback topic.
        res = Resources.plan(model, plan.cut, project, uuid.uuid4().hex[:8], multiplex=not options.feedback_topic,
                             feedback_override=options.feedback_topic)
        try:
            res.create(timeout=15)
        except Exception as exc:
            where = os.environ.get("PUBSUB_EMULATOR_HOST") or "the Pub/Sub service"
            raise UserError(f"cannot set up Pub/Sub topics at {where}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        watch = Watch(res, keys, [st.id for st in plan.stages], list(res.writers) if finite else [])
        tune_pubsub_reads()
        pipeline = beam.Pipeline(options=self.options)
        build_streaming(pipeline, model, plan, scenarios, res)
        report = RunReport()
        result = None
        interrupted = False
        try:
            watch.start()
            result = pipeline.run()
            if not finite:
                log.warning("streaming until Ctrl-C (keys come from the messages)")
            watch.wait(PipelineWatch(result), forever=not finite)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            watch.stop()
            if result is not None:
                _cancel(result)
                dead = _counter(result, "dead_letters")
                if dead:
                    log.warning("%d malformed message(s) went to the dead-letter topic(s): %s", dead,
                                ", ".join(sorted({r.dead_letter_topic for r in res.readers})))
            still_running = lowering_beam.close_live_runs()  # destroy() for every live component
            res.delete_run_subscriptions()
        if interrupted:
            raise Interrupted(
                f"stopped by Ctrl-C: {len(watch.ended_keys)} key(s) had ended; destroy() was called on the "
                f"components of {still_running} stage instance(s) still running")
        report.failures = list(watch.failures)
        return report


class PipelineWatch:
    """Waits for the pipeline on a thread, so its failure is noticed while we watch topics."""

    def __init__(self, result: _t.Any) -> None:
        self.error: _t.Optional[BaseException] = None
        self.finished = False
        self._thread = threading.Thread(target=self._wait, args=(result,), daemon=True, name="pipeline-wait")
        self._thread.start()

    def _wait(self, result: _t.Any) -> None:
        try:
            result.wait_until_finish()
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished = True

    def check(self) -> None:
        """Raise if the pipeline failed or stopped early."""
        if self.error is not None:
            first = str(self.error).strip().splitlines()[0] if str(self.error).strip() else ""
            raise RuntimeError(f"the streaming pipeline failed: {type(self.error).__name__}: {first}")
        if self.finished:
            raise RuntimeError("the streaming pipeline stopped before every key ended")


def _counter(result: _t.Any, name: str) -> int:
    """A plugboard_beam counter of a (finished) pipeline, 0 when the runner has none."""
    try:
        from apache_beam.metrics.metric import MetricsFilter

        query = result.metrics().query(MetricsFilter().with_namespace("plugboard_beam").with_name(name))
        return sum(int(c.committed or c.attempted or 0) for c in query["counters"])
    except Exception:  # metrics are informative only
        return 0


def _cancel(result: _t.Any) -> None:
    try:
        result.cancel()
    except Exception:
        log.debug("cancel failed", exc_info=True)


class Watch:
    """Follows the control topic (and writers' end-of-stream messages) until every key has ended."""

    def __init__(self, res: _t.Any, keys: list[str], stages: list[int], writers: list[str]) -> None:
        self.res = res
        self.pending_stages = {(k, s) for k in keys for s in stages}
        self.pending_writers = {(k, w) for k in keys for w in writers}
        self.failures: list[dict[str, _t.Any]] = []
        self.ended_keys: set[str] = set()
        self.events: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        self._futures: list[_t.Any] = []

    def start(self) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self.subscriber = pubsub_v1.SubscriberClient()
        subs = [("control", self.res.control_subscription)]
        subs += [(f"writer:{w}", sub) for w, sub in self.res.writer_watch.items()]
        for kind, sub in subs:
            def callback(message: _t.Any, kind: str = kind) -> None:
                self.events.put((kind, dict(message.attributes), bytes(message.data)))
                message.ack()

            self._futures.append(self.subscriber.subscribe(sub, callback))

    @property
    def complete(self) -> bool:
        """Every (key, stage) has ended and every writer has closed every key."""
        return not self.pending_stages and not self.pending_writers

    def wait(self, pipeline: PipelineWatch, forever: bool = False) -> None:
        """Block until complete (or, with ``forever``, until Ctrl-C); raise if the pipeline fails."""
        while forever or not self.complete:
            try:
                kind, attrs, data = self.events.get(timeout=0.2)
            except queue.Empty:
                pipeline.check()
                continue
            self._handle(kind, attrs, data)
        # Let in-flight publishes of the last bundle settle (they are published, not yet acked).
        time.sleep(0.2)

    def _handle(self, kind: str, attrs: dict[str, str], data: bytes) -> None:
        key = attrs.get("key", "")
        if kind == "control":
            self.pending_stages.discard((key, int(attrs.get("stage", -1))))
            self.ended_keys.add(key)
            if attrs.get("failed") == "1" and data:
                row = json.loads(data)
                if all(f.get("message") != row.get("message") for f in self.failures):
                    self.failures.append(row)
        elif attrs.get("eos") == "true":
            self.pending_writers.discard((key, kind.split(":", 1)[1]))

    def stop(self) -> None:
        """Stop listening."""
        for f in self._futures:
            f.cancel()
        for f in self._futures:
            try:
                f.result(timeout=5)
            except Exception:
                pass
        sub = getattr(self, "subscriber", None)
        if sub is not None:
            sub.close()
