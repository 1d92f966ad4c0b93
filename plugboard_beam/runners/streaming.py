"""Streaming runs on the DirectRunner: create topics, run, watch for the end, stop cleanly.

A run whose keys are known (``--scenarios``, or the one default key of a model without
Pub/Sub readers) ends by itself: every stage reports on the run's control topic when a key has
ended there (after ``destroy()``; authenticated, see ``streaming/codec.py``), every writer
publishes an end-of-stream message per key after all its data messages, and once all have been
seen the pipeline is cancelled and the command exits (1 if a key failed). A model keyed by its
incoming messages runs until Ctrl-C. Failures are printed on stderr as they arrive. With
``--checkpoint`` every reader's pulls are journaled before they are acknowledged, a restart
replays them, and a key that has ended is recorded and compacted (``streaming/checkpoint.py``).

Every wait is bounded: Pub/Sub unreachable at the start fails within ``SETUP_SECONDS``; lost
mid-run, within ``LOST_SECONDS``; Ctrl-C (or SIGTERM, turned into KeyboardInterrupt by the CLI)
at any point cancels the pipeline, calls ``destroy()`` on every live component and deletes the
run's subscriptions and topics, each step with its own time limit, and raises ``Interrupted``.
A topic or subscription of the run deleted mid-run stops it the same way, with one message
naming it (``streaming/vanished.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
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
from plugboard_beam.runners.direct import _step_counters
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.streaming.plan import components_of, streaming_plan
from plugboard_beam.streaming.vanished import Probe, Vanished, resources_of

log = logging.getLogger("plugboard_beam")


class StreamingRunner(Runner):
    """``process run --streaming`` on the DirectRunner."""

    name = "direct-streaming"

    def check(self, model: LoadedModel, options: RunOptions) -> None:
        if options.record:
            raise UserError("--record is for batch runs; in streaming, publish results with a PubSubWriter")
        from plugboard_beam.lowering.dataio import refuse_in_streaming

        refuse_in_streaming(model)  # file and SQL readers are batch-only
        readers = components_of(model, PubSubReader)
        sources = [n.name for n in model.graph.nodes if n.is_source and n.name not in readers]
        if readers and not options.scenarios and sources:
            raise UserError(
                f"the keys of this model come from its Pub/Sub messages, so its other sources "
                f"({', '.join(sources)}) would not know when to start: give --scenarios with the keys")
        self.options = pipeline_options(
            list(options.pipeline_args), {"runner": "BundleBasedDirectRunner", "streaming": True})
        if options.max_open_keys is not None and (options.scenarios or not readers):
            raise UserError("--max-open-keys caps the keys that come from Pub/Sub messages; this run's keys are "
                            "known in advance (--scenarios, or a model without Pub/Sub readers)")
        if not os.environ.get("PUBSUB_EMULATOR_HOST"):
            log.warning("PUBSUB_EMULATOR_HOST is not set: using the real Pub/Sub service")

    def execute(self, model: LoadedModel, insts: Instances, options: RunOptions) -> RunReport:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        from plugboard_beam.events.codec import event_classes
        from plugboard_beam.lowering.dataio import remove_temp_folders, windowed_writes
        from plugboard_beam.lowering.patches import tune_streaming_direct_runner
        from plugboard_beam.runtime.context import RunContext
        from plugboard_beam.streaming.codec import Codec, new_secret
        from plugboard_beam.streaming.keystate import MAX_OPEN_KEYS
        from plugboard_beam.streaming.pipeline import build_streaming
        from plugboard_beam.streaming.resources import Resources
        from plugboard_beam.streaming.secrets import private_key_file

        plan = streaming_plan(model, options)
        readers = components_of(model, PubSubReader)
        finite = bool(options.scenarios) or not readers
        all_keys = [sc.key for sc, _ in insts] if finite else []
        scenarios = [(sc.key, dict(sc.overrides)) for sc, _ in insts] if finite else []
        project = project_id(self.options.view_as(GoogleCloudOptions).project)
        if not re.fullmatch(r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]", project):
            raise UserError(f"Pub/Sub project {project!r} (from --project, PUBSUB_PROJECT_ID or "
                            "GOOGLE_CLOUD_PROJECT) is not a valid project id: 6 to 63 characters, lower-case "
                            "letters, digits and hyphens, starting with a letter")
        run_id = uuid.uuid4().hex[:12]
        secret, events = new_secret(), event_classes(model.classes.values())
        codec = Codec(run_id, secret, events)  # the driver's (Watch): in this process only, never pickled
        res = Resources.plan(model, plan.cut, project, run_id, feedback_override=options.feedback_topic)
        ckpt = None
        ended: dict[str, _t.Any] = {}
        if options.checkpoint:
            from plugboard_beam.streaming.checkpoint import for_run

            ckpt = for_run(options.checkpoint, model, res)
            ended = ckpt.ended()
            scenarios = [(k, o) for k, o in scenarios if k not in ended]
        keys = [k for k in all_keys if k not in ended]
        if not finite and ckpt is None:
            res.writer_watch.clear()  # the driver waits for no key: output topics are not watched
        endpoint = pubsub_endpoint()
        log.info("streaming run %s: control topic %s", run_id, res.control_topic)
        watch = Watch(res, codec, keys, [st.id for st in plan.stages], list(res.writers) if finite else [])
        if ckpt is not None:
            watch.on_key_ended = ckpt.key_ended
            for key, failure in ended.items():
                if failure is not None and key in all_keys:
                    watch.failures.append(failure)
                    log.error("key %r had failed before the restart: %s", key, failure.get("message"))
            if ended:
                log.info("checkpoint: %d key(s) had ended before this run", len(ended))
        # a finite run stays up until the last window of its FileWriters has closed (issue 11.5)
        files = windowed_writes(model, {name for _, o in scenarios for name in (o or {})}, run_id)
        watch.file_windows = {n: w.window_seconds for n, w in files.items()}
        shutdown = Shutdown()
        result = None
        if options.tracker is not None:
            options.tracker.expect(len(keys) if finite else None)
            options.tracker.stages = len(plan.stages)
        # the stage DoFns (in this process) find the run's context (progress, live runs) by its id
        context = RunContext.open(options.tracker, run_id=f"streaming-{run_id}-{uuid.uuid4().hex}")
        # The DoFns' codec holds only the path of a 0600 key file in a private folder, removed at the end.
        key_file = contextlib.ExitStack()
        dofn_codec = Codec(run_id, key_file.enter_context(private_key_file(secret)), events)
        vanished: _t.Optional[Vanished] = None
        try:
            try:
                # On a thread: a gRPC call blocking the main thread would hold Ctrl-C back.
                interruptible(lambda: res.create(timeout=SETUP_SECONDS))
            except Exception as exc:
                raise UserError(f"cannot set up Pub/Sub topics at {endpoint}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
            tune_streaming_direct_runner()
            pipeline = beam.Pipeline(options=self.options)
            build_streaming(pipeline, model, plan, scenarios, res, dofn_codec,
                            all_keys if finite and readers else None,
                            intakes=None if ckpt is None else {r.name: ckpt.intake(r) for r in ckpt.readers},
                            ended=frozenset(ended), forget_seconds=options.forget_ended_keys,
                            max_open_keys=None if finite else options.max_open_keys or MAX_OPEN_KEYS,
                            run_id=context.run_id, log=options.log.on_local_workers() if options.log else None)
            if ckpt is not None:
                ckpt.start()
            watch.start()
            result = pipeline.run()
            if not finite:
                log.warning("streaming until Ctrl-C (keys come from the messages)")
            watch.wait(PipelineWatch(result), Liveness(res.control_topic, endpoint, probe=Probe(resources_of(res))),
                       forever=not finite)
        except KeyboardInterrupt:
            shutdown.interrupted = True
        except Vanished as exc:
            vanished = exc
        finally:
            try:
                shutdown.run(watch, result, res, context.close)
                # finished or stopped: no FileWriter leaves its folder of files being written behind
                bounded(lambda: remove_temp_folders(files.values()), 10.0, "removing the file writers' temp folders")
                if ckpt is not None:
                    ckpt.close()
            finally:
                key_file.close()
        if vanished is not None and not shutdown.interrupted:
            kept = f"deleted except {', '.join(shutdown.left_behind)}" if shutdown.left_behind else "deleted"
            raise Vanished(f"{vanished}; destroy() was called on the components of {shutdown.still_running} stage "
                           f"instance(s) still running; the run's remaining subscriptions and topics were {kept}")
        report = RunReport(failures=list(watch.failures), steps=shutdown.steps)
        if shutdown.interrupted:
            n_failed = len(watch.failures) + watch.failures_left_out
            failed = f"; {n_failed} key(s) had failed" if n_failed else ""
            kept = f"deleted except {', '.join(shutdown.left_behind)}" if shutdown.left_behind else "deleted"
            raise Interrupted(
                f"stopped: {watch.ended_count} key(s) had ended{failed}; destroy() was called on the "
                f"components of {shutdown.still_running} stage instance(s) still running; the run's "
                f"subscriptions and topics were {kept} (stopped in {shutdown.seconds:.1f} s)", watch.failures)
        return report


#: seconds to create the run's topics and subscriptions before giving up
SETUP_SECONDS = 15.0
#: seconds a finished run keeps its pipeline up so that its last publishes go out
SETTLE_SECONDS = 1.5
#: seconds after a FileWriter's last window ends for its files to be written (two windowed
#: GroupByKeys fire once the watermark passes, then the files are moved into place)
WINDOW_GRACE_SECONDS = 5.0
#: failures a run keeps for its report (the others are logged as they come and counted)
KEEP_FAILURES = 10_000
#: seconds without an answer from Pub/Sub mid-run before the run fails (shutdown adds at most ~25 s)
LOST_SECONDS = 20.0


def pubsub_endpoint() -> str:
    """Where Pub/Sub is (for messages)."""
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {host}" if host else "pubsub.googleapis.com"


class PubSubLost(UserError):
    """Pub/Sub stopped answering mid-run."""


def interruptible(fn: _t.Callable[[], _t.Any]) -> None:
    """Run ``fn`` on a daemon thread while the main thread waits in short steps, so that
    Ctrl-C (KeyboardInterrupt) is raised here at once; ``fn``'s exception is re-raised."""
    box: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True, name="pubsub-admin")
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    if box:
        raise box[0]


def bounded(fn: _t.Callable[[], _t.Any], seconds: float, what: str) -> bool:
    """Run ``fn`` on a daemon thread and wait at most ``seconds``; whether it finished."""
    box: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # reported below
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True, name=f"shutdown-{what}")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log.warning("%s did not finish within %.0f s; going on", what, seconds)
        return False
    if box:
        log.debug("%s failed: %r", what, box[0])
    return True


class Shutdown:
    """The end of a streaming run, every step bounded, a second Ctrl-C included."""

    def __init__(self) -> None:
        self.interrupted = False
        self.still_running = 0
        self.left_behind: list[str] = []
        self.seconds = 0.0
        self.steps: dict[str, int] = {}  # steps per component of the keys that ended (Beam's counters)

    def run(self, watch: Watch, result: _t.Any, res: _t.Any, close_live_runs: _t.Callable[[], int]) -> None:
        from plugboard_beam.lowering.beam import REPEATED_INPUT
        from plugboard_beam.lowering.dataio import ROWS_LEFT_OUT
        from plugboard_beam.streaming.keystate import REFUSED_KEYS
        from plugboard_beam.streaming.pipeline import DEAD_LETTERS, LATE_INTERNAL, REJECTED_INTERNAL, UNENCODABLE

        t0 = time.monotonic()
        # The watch keeps pulling while the pipeline is cancelled: a key's failure published by the
        # last bundles is still reported (then ``stop`` handles what it pulled)
        steps: list[tuple[str, float, _t.Callable[[], _t.Any]]] = []
        if result is not None:
            steps.append(("cancelling the pipeline", 10.0, lambda: _cancel(result)))
        steps.append(("stopping the watch", 5.0, watch.stop))
        counts: dict[str, int] = {}
        if result is not None:
            steps.append(("reading counters", 2.0, lambda: counts.update(
                {n: _counter(result, n) for n in (DEAD_LETTERS, REJECTED_INTERNAL, UNENCODABLE, ROWS_LEFT_OUT,
                                                   LATE_INTERNAL, REPEATED_INPUT, REFUSED_KEYS)})))
            steps.append(("reading step counters", 2.0, lambda: self.steps.update(_step_counters(result))))
        for what, seconds, step in steps:
            try:
                bounded(step, seconds, what)
            except KeyboardInterrupt:
                self.interrupted = True
        try:
            self.still_running = close_live_runs()  # destroy() for every live component
        except KeyboardInterrupt:
            self.interrupted = True
        left: list[str] = []

        def delete() -> None:
            left.extend(res.delete_run_resources(budget=8.0))

        try:
            if not bounded(delete, 10.0, "deleting the run's subscriptions and topics"):
                left.extend(res.created)
        except KeyboardInterrupt:
            self.interrupted = True
        self.left_behind = left
        if left:
            log.warning("could not delete %s", ", ".join(left))
        dead = counts.get(DEAD_LETTERS, 0)
        if dead:
            log.warning("%d message(s) went to the dead-letter topic(s): %s", dead,
                        ", ".join(sorted({r.dead_letter_topic for r in res.readers})))
        rejected = counts.get(REJECTED_INTERNAL, 0) + watch.rejected
        if rejected:
            log.warning("%d internal message(s) (feedback or control) failed authentication or were malformed "
                        "and were dropped", rejected)
        repeated = counts.get(REPEATED_INPUT, 0)
        if repeated:
            log.warning("%d message(s) repeated a key's seq (or message id) already taken, redeliveries or "
                        "duplicates, and were ignored", repeated)
        late = counts.get(LATE_INTERNAL, 0)
        if late:
            log.warning("%d chunk(s) of loop feedback values arrived for keys that had failed and were dropped", late)
        refused = counts.get(REFUSED_KEYS, 0)
        if refused:
            log.warning("%d message(s) of new keys were refused because too many keys were open (--max-open-keys) "
                        "and went to the dead-letter topic(s)", refused)
        if watch.failures_left_out:
            log.warning("%d more key failure(s) were logged but not kept for the report", watch.failures_left_out)
        left_out = counts.get(ROWS_LEFT_OUT, 0)
        if left_out:
            log.warning("%d row(s) were left out of windowed files: their keys' values did not fit a column "
                        "with the other keys' (each key is named in an error above)", left_out)
        self.seconds = time.monotonic() - t0


class Liveness:
    """Asks Pub/Sub every few seconds whether the run's control topic is there (on a thread);
    with a ``probe`` (``streaming/vanished.py``), whether every topic and subscription of the
    run is there."""

    def __init__(self, topic: str, endpoint: str, every: float = 3.0, probe: _t.Optional[Probe] = None) -> None:
        self.topic = topic
        self.endpoint = endpoint
        self.every = every
        self.probe = probe
        self.last_ok = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True, name="pubsub-liveness")
        self._thread.start()

    def _probe(self) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        pub = pubsub_v1.PublisherClient()
        while not self._stop.wait(self.every):
            if self.probe is not None:
                if self.probe.check(self.every):
                    self.last_ok = time.monotonic()
                continue
            try:
                pub.get_topic(topic=self.topic, timeout=self.every, retry=None)
                self.last_ok = time.monotonic()
            except Exception:
                log.debug("Pub/Sub probe failed", exc_info=True)
        if self.probe is not None:
            self.probe.close()

    def check(self, pipeline: PipelineWatch) -> None:
        """Raise if Pub/Sub has not answered for ``LOST_SECONDS``, or if the pipeline failed
        (as lost Pub/Sub when the last probes went unanswered)."""
        gone = self.probe.error() if self.probe is not None else None
        if gone is not None:
            raise gone
        silent = time.monotonic() - self.last_ok
        if silent > LOST_SECONDS:
            raise PubSubLost(f"lost Pub/Sub: {self.endpoint} has not answered for {silent:.0f} s")
        try:
            pipeline.check()
        except RuntimeError as exc:
            if self.probe is not None and "404" in str(exc):  # a publish to a deleted topic: which?
                self.probe.check(self.every)
                gone = self.probe.error()
                if gone is not None:
                    raise gone from None
            if silent > 2 * self.every:
                raise PubSubLost(f"lost Pub/Sub: {self.endpoint} has not answered for {silent:.0f} s ({exc})") from None
            raise

    def stop(self) -> None:
        self._stop.set()  # (the probe thread closes its clients as it ends)


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
    """Follows the run's control topic (and writers' output) until every key has ended.

    Control messages count only when authentic (sealed by this run's codec); anything else on
    the control subscription is counted in ``rejected``. A stage's completion says how many
    messages each of its writers published for the key; the writer has finished the key once
    those steps (0..count-1) have been seen on its topic. End-of-stream messages on the (user's)
    output topic are not trusted, so a forged one cannot end the run early. Only the (key,
    writer) pairs still awaited are followed, so forged messages of other keys cost nothing;
    a run keyed by its messages only counts its ended keys.
    """

    def __init__(self, res: _t.Any, codec: _t.Any, keys: list[str], stages: list[int], writers: list[str]) -> None:
        self.res = res
        self.codec = codec
        self.pending_stages = {(k, s) for k in keys for s in stages}
        self.pending_writers = {(k, w) for k in keys for w in writers}
        self.steps_seen: dict[tuple[str, str], set[int]] = {}
        self.expected: dict[tuple[str, str], int] = {}  # messages each writer published per key
        self.failures: list[dict[str, _t.Any]] = []
        self.failures_left_out = 0  # failures beyond ``KEEP_FAILURES`` (logged, not kept)
        self._failure_messages: set[str] = set()
        self.finite = bool(keys)
        self.last_stage = stages[-1] if stages else -1
        self.ended_keys: set[str] = set()  # a finite run's keys that have ended
        self.ended_count = 0  # keys that ended at some stage (a run keyed by messages counts only)
        self.rejected = 0
        self.events: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.subscriber: _t.Any = None
        self.file_windows: dict[str, float] = {}  # FileWriter -> window (s): wait for its last window
        # --checkpoint: told (key, failure row or None) once a key's stages are all done and
        # every writer's messages for it have been seen
        self.on_key_ended: _t.Optional[_t.Callable[[str, _t.Optional[dict[str, _t.Any]]], None]] = None
        self.stage_ids = list(stages)
        self._done: dict[str, set[int]] = {}
        self._failed: dict[str, dict[str, _t.Any]] = {}
        self._writers_done: set[tuple[str, str]] = set()  # (key, writer) of ``_follow_all``

    def start(self) -> None:
        """Pull the control and writer-watch subscriptions, each on a thread (plain pulls with
        a short deadline: a lost Pub/Sub is noticed by ``Liveness``, not by a streaming pull
        that logs tracebacks)."""
        from plugboard_beam.library.pubsub import subscriber_client

        self.subscriber = subscriber_client()  # outputs up to 10 MB (issue 15)
        self._stop = threading.Event()
        subs = [("control", self.res.control_subscription)]
        subs += [(f"writer:{w}", sub) for w, sub in self.res.writer_watch.items()]
        for kind, sub in subs:
            thread = threading.Thread(target=self._pull, args=(kind, sub), daemon=True, name=f"watch-{kind}")
            thread.start()
            self._threads.append(thread)

    def _pull(self, kind: str, subscription: str) -> None:
        while not self._stop.is_set():
            try:
                resp = self.subscriber.pull(subscription=subscription, max_messages=500, timeout=2.0, retry=None)
            except Exception:  # Pub/Sub gone or slow: Liveness decides
                self._stop.wait(0.5)
                continue
            for rm in resp.received_messages:
                self.events.put((kind, dict(rm.message.attributes), bytes(rm.message.data)))
            if resp.received_messages:
                try:
                    self.subscriber.acknowledge(subscription=subscription,
                                                ack_ids=[rm.ack_id for rm in resp.received_messages],
                                                timeout=2.0, retry=None)
                except Exception:  # redelivered later; handling is idempotent
                    pass

    @property
    def complete(self) -> bool:
        """Every (key, stage) has ended and every writer has closed every key."""
        return not self.pending_stages and not self.pending_writers

    def wait(self, pipeline: PipelineWatch, liveness: Liveness, forever: bool = False) -> None:
        """Block until complete (or, with ``forever``, until Ctrl-C); raise if the pipeline fails
        or Pub/Sub is lost."""
        try:
            while forever or not self.complete:
                try:
                    kind, attrs, data = self.events.get(timeout=0.2)
                except queue.Empty:
                    liveness.check(pipeline)
                    continue
                self._handle(kind, attrs, data)
            # Let the last bundles' publishes (dead letters of a failed key, late control
            # messages) go out before the pipeline is cancelled.
            settle = time.monotonic() + SETTLE_SECONDS
            if self.file_windows:
                # rows are windowed by the wall clock: the last window ends at most one window from now
                now = time.time()
                wait = max(math.ceil(now / w) * w - now for w in self.file_windows.values()) + WINDOW_GRACE_SECONDS
                log.info("waiting %.1f s for the last window of file writer(s) %s to be written", wait,
                         ", ".join(sorted(self.file_windows)))
                settle = max(settle, time.monotonic() + wait)
            while time.monotonic() < settle:
                try:
                    self._handle(*self.events.get(timeout=0.1))
                except queue.Empty:
                    liveness.check(pipeline)
        finally:
            liveness.stop()

    def _handle(self, kind: str, attrs: dict[str, str], data: bytes) -> None:
        if kind == "control":
            body = self.codec.open(data, attrs, "done")
            key = body.get("key") if body is not None else None
            stage = body.get("stage") if body is not None else None
            failure = body.get("failure") if body is not None else None
            published = body.get("published") or {} if body is not None else {}
            if (body is None or not isinstance(key, str) or not (stage is None or type(stage) is int)
                    or not (failure is None or isinstance(failure, dict)) or not isinstance(published, dict)):
                self.rejected += 1
                return
            if stage is not None:
                self.pending_stages.discard((key, stage))
                self._ended(key, stage)
            for writer, count in published.items():
                if type(count) is int and ((key, writer) in self.pending_writers or self._follow_all):
                    self.expected[(key, writer)] = count
                    self._check_writer(key, writer)
            if failure is not None and self._new_failure(key, failure):
                log.error("key %r failed: %s", key, failure.get("message"))
            self._key_progress(key, stage, failure)
            return
        writer = kind.split(":", 1)[1]
        key = attrs.get("key", "")
        if attrs.get("eos") == "true" or ((key, writer) not in self.pending_writers and not self._follow_all):
            # anyone may publish on an output topic: the count comes from the control topic, and
            # only the keys the run waits for are followed (forged keys cost nothing)
            return
        try:
            # a writer numbers its messages 0, 1, 2, ... per key: ``seq`` (event writers, whose
            # ``step`` is the event's tick) or else ``step``
            step = int(attrs.get("seq", attrs.get("step", "")))
        except ValueError:
            return
        count = self.expected.get((key, writer))
        if step < 0 or (count is not None and step >= count):
            return  # not one of the messages the writer published
        self.steps_seen.setdefault((key, writer), set()).add(step)
        self._check_writer(key, writer)
        self._key_progress(key)

    @property
    def _follow_all(self) -> bool:
        """A checkpointed run keyed by its messages follows every key's outputs: a key's
        journal is dropped only once its outputs are out (``on_key_ended``). (Its bookkeeping
        grows with the keys whose outputs are awaited, forged ones included.)"""
        return self.on_key_ended is not None and not self.finite

    def _writer_done(self, key: str, writer: str) -> bool:
        """Every message ``writer`` published for ``key`` has been seen (or the run does not
        wait for it: only the pairs in ``pending_writers`` are followed, see ``_check_writer``,
        but in a checkpointed run keyed by its messages, which follows them all)."""
        if self._follow_all:
            return (key, writer) in self._writers_done
        return (key, writer) not in self.pending_writers

    def _check_writer(self, key: str, writer: str) -> None:
        """A writer has finished a key once the (authenticated) number of messages it published
        has been seen on its topic, steps 0..count-1."""
        count = self.expected.get((key, writer))
        if count is None:
            return
        seen = self.steps_seen.get((key, writer), set())
        if len(seen) > count:  # forged steps seen before the count arrived
            seen = self.steps_seen[(key, writer)] = {s for s in seen if s < count}
        if len(seen) == count:
            self.pending_writers.discard((key, writer))
            self.steps_seen.pop((key, writer), None)
            self.expected.pop((key, writer), None)
            if self._follow_all:
                self._writers_done.add((key, writer))

    def _ended(self, key: str, stage: int) -> None:
        """A key has ended at a stage. A run keyed by its messages may see millions of keys:
        it only counts them (at the plan's last stage)."""
        if not self.finite:
            self.ended_count += stage == self.last_stage
        elif key not in self.ended_keys:
            self.ended_keys.add(key)
            self.ended_count += 1

    def _new_failure(self, key: str, failure: dict[str, _t.Any]) -> bool:
        """Keep a failure once (a control message may come twice); at most ``KEEP_FAILURES``
        are kept, the others only counted (each is logged)."""
        message = str(failure.get("message"))
        if message in self._failure_messages:
            return False
        if len(self.failures) >= KEEP_FAILURES:
            self.failures_left_out += 1
            return True
        self._failure_messages.add(message)
        self.failures.append(failure)
        return True

    def _key_progress(self, key: str, stage: _t.Optional[int] = None,
                      failure: _t.Optional[dict[str, _t.Any]] = None) -> None:
        """Tell ``on_key_ended`` once every stage of ``key`` is done and every writer's
        messages for it have been seen (whether or not the key's keys are known)."""
        if self.on_key_ended is None:
            return
        if failure is not None:
            self._failed.setdefault(key, failure)
        if stage is not None:
            self._done.setdefault(key, set()).add(stage)
        if not self._done.get(key, set()).issuperset(self.stage_ids):
            return
        if all(self._writer_done(key, w) for w in self.res.writers):
            del self._done[key]
            self._writers_done.difference_update((key, w) for w in self.res.writers)
            self.on_key_ended(key, self._failed.pop(key, None))

    def stop(self) -> None:
        """Stop listening (each pull ends within its 2 s deadline), then handle what was pulled
        (and acknowledged) but not handled yet: a Ctrl-C while ``wait`` had a key's failure in
        the queue used to lose it ("0 key(s) had ended")."""
        self._stop.set()
        for thread in self._threads:
            thread.join(3.0)
        if self.subscriber is not None:
            self.subscriber.close()
        self.flush()

    def flush(self) -> None:
        """Handle every event already pulled."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(*event)
