"""The Beam patches still take effect on the installed Beam (and are refused on others)."""

from __future__ import annotations

import logging
import typing as _t

import pytest

from plugboard_beam.lowering import patches


def test_installed_beam_is_a_tested_version() -> None:
    assert patches.beam_version() in patches.TESTED


def test_pubsub_read_patch_shortens_pulls(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.direct import transform_evaluator as te

    assert patches.tune_pubsub_reads(timeout=1.5, max_messages=500)
    calls: list[dict[str, _t.Any]] = []
    replies = [["m1"], [], []]

    class Response:
        def __init__(self, messages: list[str]) -> None:
            self.received_messages = messages

    class FakeClient:
        def pull(self, **kw: _t.Any) -> Response:
            calls.append(kw)
            return Response(replies.pop(0))

    class State:
        client = FakeClient()

    # Beam's evaluator asks its client cache for the subscriber; ours must wrap what it returns.
    monkeypatch.setattr(te._PubSubReadEvaluator, "_get_subscriber_client_state_unlocked",
                        classmethod(lambda cls, transform: State()))
    monkeypatch.setattr(patches.ACTIVITY, "last", 0.0)  # idle
    monkeypatch.setattr(patches.ACTIVITY, "latest", None)
    # (Beam's client as it is: on the emulator the patch would open a client of its own)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    client = te._PubSubReadEvaluator._get_subscriber_client(object())
    assert isinstance(client, patches._PullProxy)
    # Beam calls pull(subscription=..., max_messages=10, timeout=30): we ask for more, sooner.
    sub, other = "projects/p/subscriptions/s", "projects/p/subscriptions/other"
    assert client.pull(subscription=sub, max_messages=10, timeout=30).received_messages == ["m1"]
    assert calls[0] == {"subscription": sub, "max_messages": 500, "timeout": 1.5}
    # `sub` had the latest messages: another read's pull returns at once instead of holding
    # the single evaluator thread, while `sub` may still wait for its next message.
    client.pull(subscription=other, max_messages=10, timeout=30)
    assert calls[1] == {"subscription": other, "max_messages": 500, "timeout": 1.5, "return_immediately": True}
    client.pull(subscription=sub, max_messages=10, timeout=30)
    assert "return_immediately" not in calls[2]
    # Idle for longer than hot_seconds: every read waits again.
    monkeypatch.setattr(patches.ACTIVITY, "last", 0.0)
    replies.append([])
    client.pull(subscription=other, max_messages=10, timeout=30)
    assert "return_immediately" not in calls[3]


def test_state_cache_patch_takes_effect() -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    assert patches.tune_direct_runner()
    assert worker_handlers.STATE_CACHE_SIZE_MB == 0
    assert "dofn_specs" in patches._applied  # batch pipelines ask for DoFn specs ~100 times too
    assert "option_parsers" in patches._applied


FLAGS = [
    [],
    ["--runner", "DirectRunner", "--direct_num_workers", "2", "--direct_running_mode", "multi_threading"],
    ["--resource_hint", "min_ram=1GB", "--experiments", "a", "--experiments", "b", "--unknown_flag", "3"],
    ["--project", "p", "--region", "europe-west1", "--temp_location", "gs://b/t", "--no_use_public_ips"],
]


@pytest.mark.parametrize("flags", FLAGS)
def test_option_parsers_are_built_once_per_class_and_parse_as_beam_does(flags: list[str]) -> None:
    from apache_beam.options import pipeline_options as po

    assert patches.cache_option_parsers()
    original = po.PipelineOptions.__init__.__wrapped__  # Beam's own ``__init__``

    def beams(cls: type, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:
        options = cls.__new__(cls)
        original(options, *args, **kwargs)
        return options

    for cls in (po.PipelineOptions, po.StandardOptions, po.DirectOptions, po.GoogleCloudOptions,
                po.WorkerOptions, po.DebugOptions):
        ours, theirs = cls(flags), beams(cls, flags)
        assert vars(ours._visible_options) == vars(theirs._visible_options)
        assert ours.get_all_options(retain_unknown_options=True) == theirs.get_all_options(retain_unknown_options=True)
        assert ours.view_as(po.DirectOptions).get_all_options() == theirs.view_as(po.DirectOptions).get_all_options()
    ours, theirs = po.PipelineOptions(flags, job_name="given"), beams(po.PipelineOptions, flags, job_name="given")
    assert ours.view_as(po.GoogleCloudOptions).job_name == theirs.view_as(po.GoogleCloudOptions).job_name == "given"
    with pytest.raises(ValueError, match="not a single string"):
        po.PipelineOptions("--runner DirectRunner")


def test_option_parser_patch_takes_effect_and_shares_no_mutable_value() -> None:
    from apache_beam.options import pipeline_options as po

    assert patches.cache_option_parsers()
    built: list[int] = []

    class CountedOptions(po.PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser: _t.Any) -> None:
            built.append(1)
            parser.add_argument("--counted_list", action="append", default=[])

    first = CountedOptions(["--counted_list", "a"])
    second = CountedOptions([])
    third = second.view_as(CountedOptions)
    assert len(built) == 1  # one parser for the class, however many objects and views
    assert first.counted_list == ["a"] and second.counted_list == []
    second.counted_list.append("x")  # a mutated default does not leak into later options
    assert CountedOptions([]).counted_list == [] and third.counted_list == ["x"]
    hints = po.PipelineOptions([]).view_as(po.StandardOptions)
    hints.resource_hints.append("min_ram=1GB")
    assert po.PipelineOptions([]).view_as(po.StandardOptions).resource_hints == []


def test_untested_beam_version_skips_patches(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    monkeypatch.setattr(patches, "beam_version", lambda: (9, 99))
    monkeypatch.setattr(worker_handlers, "STATE_CACHE_SIZE_MB", 100)
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        assert not patches.tune_direct_runner()
    assert worker_handlers.STATE_CACHE_SIZE_MB == 100
    assert "9.99" in caplog.text and "skipped" in caplog.text


def test_worker_processes_start_in_their_own_session() -> None:
    import os

    from apache_beam.runners.portability import local_job_service

    assert patches.isolate_worker_signals()
    assert patches.isolate_worker_signals()  # idempotent: wrapped once
    proc = local_job_service.subprocess.Popen("sleep 2", shell=True)
    try:
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
    finally:
        proc.kill()
        proc.wait()
    assert local_job_service.subprocess.PIPE == -1  # the rest of the module is Beam's as before


# --------------------------------------------------------------- streaming DirectRunner patches
class _Bundle:
    def __init__(self, n: int) -> None:
        self.n = n

    def has_elements(self) -> bool:
        return self.n > 0


def test_empty_bundles_schedule_no_consumer() -> None:
    from apache_beam.runners.direct import executor as ex

    assert patches.skip_empty_bundles()
    empty, full, unprocessed = _Bundle(0), _Bundle(2), _Bundle(0)

    class Context:
        seen: _t.ClassVar[list[_t.Any]] = []

        def handle_result(self, bundle: _t.Any, timers: _t.Any, result: _t.Any) -> tuple[_Bundle, ...]:
            self.seen.append(result)  # the evaluation context still sees the whole result
            return (empty, full)

    class Updates:
        offered: _t.ClassVar[list[_t.Any]] = []

        def offer(self, update: _t.Any) -> None:
            self.offered.append(update)

    class Result:
        unprocessed_bundles: _t.ClassVar[list[_Bundle]] = [unprocessed]

    context, updates = Context(), Updates()
    callback = ex._CompletionCallback(context, updates)  # type: ignore[arg-type]
    assert callback.handle_result("executor", None, Result()) == (empty, full)
    assert len(context.seen) == 1
    # the full bundle goes to its consumers, the root's unprocessed (empty) bundle is kept, the
    # empty output bundle is not scheduled
    assert [(u.committed_bundle, u.unprocessed_bundle) for u in updates.offered] == [(full, None),
                                                                                    (None, unprocessed)]


def test_write_to_pubsub_sends_the_bundle_without_waiting_for_the_batch_timer() -> None:
    from concurrent.futures import Future
    import threading

    from apache_beam.io.gcp import pubsub as beam_pubsub
    from apache_beam.io.gcp.pubsub import PubsubMessage

    assert patches.publish_at_flush()
    events: list[str] = []

    class Client:
        """A publisher that sends its batch only when committed (as the real one does after
        ``max_latency``; here never by itself)."""

        def __init__(self) -> None:
            self._batch_lock = threading.Lock()
            self.pending: list[Future[str]] = []
            self.sent: list[tuple[bytes, dict[str, str]]] = []

        def publish(self, topic: str, data: bytes, **attrs: str) -> Future[str]:
            events.append("publish")
            self.sent.append((data, attrs))
            future: Future[str] = Future()
            self.pending.append(future)
            return future

        def _commit_sequencers(self) -> None:
            assert not self._batch_lock.acquire(blocking=False), "committed under the client's batch lock"
            events.append("commit")
            for i, future in enumerate(self.pending):
                future.set_result(str(i))
            self.pending = []

    dofn = beam_pubsub._PubSubWriteDoFn.__new__(beam_pubsub._PubSubWriteDoFn)
    dofn.with_attributes, dofn._topic, dofn._pub_client = True, "projects/p/topics/t", Client()
    dofn.start_bundle()
    for i in range(3):
        dofn.process(PubsubMessage(f"m{i}".encode(), {"k": str(i)})._to_proto_str(for_publish=True))
    done = threading.Thread(target=dofn.finish_bundle, daemon=True)
    done.start()
    done.join(5)
    assert not done.is_alive(), "the flush waited for a batch that was never sent"
    assert events == ["publish"] * 3 + ["commit"]
    assert dofn._pub_client.sent == [(b"m0", {"k": "0"}), (b"m1", {"k": "1"}), (b"m2", {"k": "2"})]
    assert dofn._buffer == []


def test_dofn_specs_are_computed_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.runners import common
    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.transforms import userstate

    assert patches.cache_dofn_specs()
    assert te.get_dofn_specs is userstate.get_dofn_specs  # the evaluator's own name too
    wrapped: list[str] = []
    real = common.MethodWrapper

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, obj: _t.Any, name: str) -> None:
            wrapped.append(name)
            super().__init__(obj, name)

    monkeypatch.setattr(common, "MethodWrapper", Counting)
    spec = userstate.ReadModifyWriteStateSpec("n", VarIntCoder())

    class Stateful(beam.DoFn):
        def process(self, kv: _t.Any, n: _t.Any = beam.DoFn.StateParam(spec)) -> _t.Iterator[_t.Any]:  # noqa: B008
            yield kv

    first = userstate.get_dofn_specs(Stateful())
    assert first == ({spec}, set()) and wrapped
    wrapped.clear()
    assert userstate.get_dofn_specs(Stateful()) == first and userstate.is_stateful_dofn(Stateful())
    assert wrapped == []  # from the cache
    # a DoFn with a method set on the instance is inspected every time
    odd = Stateful()
    odd.start_bundle = Stateful().process  # type: ignore[method-assign]
    assert userstate.get_dofn_specs(odd) == first and wrapped
    # a plain function set on the instance (``beam.Map`` sets ``process``) too: Beam skips it, so
    # the class's specs computed without it must not be served to instances that have none
    wrapped.clear()
    plain = Stateful()
    plain.process = lambda kv: [kv]  # type: ignore[method-assign]
    assert userstate.get_dofn_specs(plain) == (set(), set()) and wrapped
    assert userstate.get_dofn_specs(Stateful()) == first
    wrapped.clear()
    again = Stateful()
    again.process = lambda kv: [kv]  # type: ignore[method-assign]
    assert userstate.get_dofn_specs(again) == (set(), set()) and wrapped == []  # cached as such
    assert userstate.get_dofn_specs(beam.Map(str).fn) == userstate.get_dofn_specs(beam.Map(repr).fn)


class _Counted:
    """Counters of the DoFns below (class attributes: the DoFns are pickled by reference)."""

    setups = 0
    teardowns = 0
    bundles = 0
    empty_consumer_bundles = 0
    failed_once = False
    out: _t.ClassVar[list[int]] = []


def _collect(x: int) -> None:
    _Counted.out.append(x)



def _counting_pipeline(fail_once: bool) -> list[int]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_stream import TestStream

    class Count(beam.DoFn):
        def setup(self) -> None:
            _Counted.setups += 1

        def start_bundle(self) -> None:
            _Counted.bundles += 1

        def teardown(self) -> None:
            _Counted.teardowns += 1

        def process(self, x: int) -> _t.Iterator[_t.Any]:
            if fail_once and x == 3 and not _Counted.failed_once:
                _Counted.failed_once = True
                raise RuntimeError("once")
            yield x * 10
            if x < 0:
                yield beam.pvalue.TaggedOutput("never", x)

    class Consumer(beam.DoFn):
        def start_bundle(self) -> None:
            _Counted.empty_consumer_bundles += 1

        def process(self, x: int) -> _t.Iterator[int]:
            yield x

    stream = TestStream()
    for i in range(6):
        stream = stream.add_elements([i]).advance_processing_time(1)
    stream = stream.advance_watermark_to_infinity()
    _Counted.out = []
    options = PipelineOptions(flags=[], streaming=True, runner="BundleBasedDirectRunner")
    with beam.Pipeline(options=options) as p:
        outs = p | stream | beam.ParDo(Count()).with_outputs("never", main="main")
        _ = outs["never"] | "Consume" >> beam.ParDo(Consumer())
        _ = outs["main"] | beam.Map(_collect)
    return sorted(_Counted.out)


@pytest.mark.slow
def test_dofn_set_up_once_and_reused_across_bundles_and_no_consumer_runs_on_empty_bundles() -> None:
    assert patches.tune_streaming_direct_runner()
    _Counted.setups = _Counted.teardowns = _Counted.bundles = _Counted.empty_consumer_bundles = 0
    assert _counting_pipeline(fail_once=False) == [0, 10, 20, 30, 40, 50]
    assert _Counted.bundles >= 6 and _Counted.setups == 1
    assert _Counted.teardowns == 1  # when the pipeline finished
    assert _Counted.empty_consumer_bundles == 0
    # a bundle that fails gives its DoFn up: the retry sets up a fresh copy; results stay exact
    _Counted.setups = _Counted.bundles = 0
    _Counted.failed_once = False
    assert _counting_pipeline(fail_once=True) == [0, 10, 20, 30, 40, 50]
    assert _Counted.failed_once and _Counted.setups == 2


def test_journaled_read_replays_then_acknowledges_only_what_the_journal_holds(
        tmp_path: _t.Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``journal_pubsub_reads``: a read with an intake replays the journal first, then each pulled
    message is in the journal (durably) before it is acknowledged; a journaled redelivery is
    acknowledged and left out; when the journal cannot be written nothing is acknowledged."""
    import datetime

    from apache_beam.runners.direct import transform_evaluator as te
    from google.pubsub_v1.types import PubsubMessage, ReceivedMessage

    from plugboard_beam.streaming.checkpoint import FolderStore, IntakeSpec, Journal, Record, open_store

    assert patches.journal_pubsub_reads()
    sub = "projects/p/subscriptions/in"
    folder = tmp_path / "ck"
    Journal(open_store(str(folder)), "sensor", sub).append([Record("1", b'{"x": 1}', {"key": "a"}, 0, "a")])
    events: list[tuple[str, _t.Any]] = []

    def received(mid: str, ack: str) -> ReceivedMessage:
        return ReceivedMessage(ack_id=ack, message=PubsubMessage(
            data=b'{"x": 2}', attributes={"key": "a"}, message_id=mid,
            publish_time=datetime.datetime.now(datetime.UTC)))

    pulls = [[received("1", "ack-1"), received("2", "ack-2")], [received("3", "ack-3")]]

    class Client:
        def pull(self, **kw: _t.Any) -> _t.Any:
            events.append(("pull", kw["subscription"]))
            return type("Response", (), {"received_messages": pulls.pop(0)})()

        def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
            journaled = {r.message_id for r in Journal(open_store(str(folder)), "sensor", sub).replay(set())}
            events.append(("ack", (ack_ids, sorted(journaled))))

    class Source:
        plugboard_intake = IntakeSpec(str(folder), "sensor", sub, "key", frozenset())

    class Applied:
        pass

    applied = Applied()
    read = type("Evaluator", (), {"source": Source(), "_applied_ptransform": applied, "_sub_name": sub,
                                  "_get_subscriber_client": lambda self, t: Client()})()
    do = te._PubSubReadEvaluator._read_from_pubsub
    first = do(read, None)
    assert [m.message_id for _, m in first] == ["1"] and events == []  # the journal, before any pull
    second = do(read, None)
    assert [m.message_id for _, m in second] == ["2"]  # "1" is a redelivery of a journaled message
    assert events == [("pull", sub), ("ack", (["ack-1", "ack-2"], ["1", "2"]))]
    def disk_full(self: _t.Any, name: str, blob: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FolderStore, "put", disk_full)  # the journal cannot be written: no acknowledgement
    with pytest.raises(OSError, match="No space left"):
        do(read, None)
    assert events[-1] == ("pull", sub)
    assert pulls == []
