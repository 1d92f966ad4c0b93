"""Every patch of Apache Beam internals, in one place, each behind a version guard.

Each patch is applied only to the Beam versions it was measured on (``TESTED``); on any other
version it is skipped with one warning and Beam's own behaviour is kept, so an upgrade can never
silently run a patch against changed internals. ``tests/test_patches.py`` checks that each one
still takes effect on the installed Beam.

* ``tune_pubsub_reads`` — the DirectRunner's streaming Pub/Sub read does
  ``pull(max_messages=10, timeout=30)`` on its single evaluator thread: an idle subscription
  blocks every transform (other reads, timers, cancel) for ~30 s and 10 messages per pull caps
  throughput. Larger pulls, and only one read may wait: the pull of the subscription that had
  the latest messages waits for more (up to ``timeout``; it returns as soon as one arrives),
  pulls of the others return at once (``return_immediately``; ~8 ms on the emulator). So a
  second subscription — a run's feedback subscription beside the user's input — costs a few
  ms per loop iteration instead of a blocked pull (~0.5 s on the emulator). Once every read
  has been idle for ``hot_seconds``, all pulls wait again (little CPU while idle). Dataflow is
  unaffected (it has its own Pub/Sub source).
* ``skip_empty_bundles`` — the streaming DirectRunner's executor schedules every consumer of
  every output bundle of a step, also of empty ones (a ParDo commits one bundle per output
  tag): each loop iteration ran ~10 tasks on empty bundles (control, dead-letter, failure
  branches; 3-6 ms each plus a monitor round each) before the read was scheduled again. Beam's
  watermark manager already ignores empty bundles ("they do not impact watermarks and should
  not trigger downstream execution"); the patch makes the executor agree.
* ``publish_at_flush`` — ``WriteToPubSub`` publishes a bundle at ``finish_bundle`` and waits
  for every future, but the publisher client only sends a batch after its ``max_latency``
  (10 ms) timer: each bundle waited ~10 ms for nothing. The patched flush sends the batch as
  soon as the bundle's messages are queued (``PublisherClient._commit_sequencers``, the call
  its own timer thread makes), then waits as before.
* ``cache_dofn_specs`` — Beam finds a DoFn's state and timer specs by building a signature of
  every method of the DoFn (``userstate.get_dofn_specs``: ~60 ``inspect.signature`` calls),
  and the streaming DirectRunner asks several times per bundle and per scheduling decision.
  The specs are class attributes (method defaults), so they are cached per DoFn class and the
  names its instance hides (``beam.Map`` sets a plain function as ``process``, which Beam
  skips); DoFns with bound methods set on the instance are inspected every time.
* ``reuse_dofns`` — the streaming DirectRunner's ParDo evaluator pickles a fresh copy of the
  DoFn for every bundle and calls its ``setup`` and ``teardown`` around that one bundle (our
  stage DoFn loads and validates the model in ``setup``: ~14 ms per loop iteration). As on
  every other runner, a DoFn instance is now set up once and reused for the next bundles of
  its step, and torn down when the pipeline stops (finished or cancelled); an instance whose
  bundle failed is not reused.
* ``journal_pubsub_reads`` — Beam's DirectRunner read acknowledges every pulled message at
  once ("Because of the AutoAck, we are not able to reread messages"), so ``kill -9`` lost
  whatever was pulled but not yet through the model. A read whose source carries an intake
  (``INTAKE_ATTRIBUTE``: ``streaming/checkpoint.IntakeSpec``, set by ``--checkpoint``) first
  replays the intake's journal, then journals every pulled message durably and only then
  acknowledges it; redeliveries of journaled messages are acknowledged and left out. Reads
  without an intake keep Beam's behaviour.
* ``drop_empty_keyed_state`` — the DirectRunner keeps an entry in its per-step table of keyed
  state for every key a stateful step has seen, even once the key's state and timers are all
  cleared (~1 KB per key, and every timer check walks them all): a long streaming run whose
  keys come and go grew without bound. An entry left empty by a bundle is removed (a later
  element of the key gets a fresh, empty one, as for a new key).
* ``tune_streaming_direct_runner`` applies the patches above (but ``journal_pubsub_reads``, applied
  by a run with ``--checkpoint``).
* ``tune_direct_runner`` — the FnApiRunner's in-memory state cache weighs every value it stores
  by walking all loaded modules (~1.5 ms per new key); our state is written once per element
  anyway, so the cache is turned off. It also applies ``cache_dofn_specs`` (a batch pipeline
  asks for the specs ~100 times while it is built and translated), and ``cache_option_parsers``.
* ``cache_option_parsers`` — ``PipelineOptions`` builds a parser of all its class's options
  for every options object and every ``view_as`` (~75 a DirectRunner pipeline, ~12 ms): each
  class's parser is built once; what it parses is unchanged (list and dict values copied).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import typing as _t
import warnings

log = logging.getLogger("plugboard_beam")

#: Beam versions (major, minor) the patches were written and tested against
TESTED: tuple[tuple[int, int], ...] = ((2, 77),)


def beam_version() -> tuple[int, int]:
    """The installed Beam's (major, minor)."""
    import apache_beam

    major, minor = apache_beam.__version__.split(".")[:2]
    return int(major), int(minor)


def _guard(name: str) -> bool:
    version = beam_version()
    if version in TESTED:
        return True
    log.warning("Beam %d.%d is not one this patch was tested on (%s): %s is skipped; Beam's own "
                "behaviour is kept", *version, ", ".join(f"{a}.{b}" for a, b in TESTED), name)
    return False


class Activity:
    """Which subscription last had messages, and when (shared by every patched read)."""

    def __init__(self, hot_seconds: float) -> None:
        self.hot_seconds = hot_seconds
        self.latest: _t.Optional[str] = None
        self.last = 0.0
        self._lock = threading.Lock()

    def may_wait(self, subscription: str) -> bool:
        """A pull may wait for messages on the subscription that had the latest ones, or on
        any once every read has been idle for ``hot_seconds``; others return at once."""
        return (self.latest is None or self.latest == subscription
                or time.monotonic() - self.last >= self.hot_seconds)

    def saw_messages(self, subscription: str) -> None:
        with self._lock:
            self.latest, self.last = subscription, time.monotonic()


class _PullProxy:
    def __init__(self, client: _t.Any, timeout: float, max_messages: int, activity: Activity) -> None:
        self._client, self._timeout, self._max, self._activity = client, timeout, max_messages, activity

    def pull(self, subscription: str, max_messages: int = 10, timeout: float = 30, **kw: _t.Any) -> _t.Any:
        if not self._activity.may_wait(subscription):
            kw["return_immediately"] = True
        response = self._client.pull(subscription=subscription, max_messages=self._max, timeout=self._timeout, **kw)
        if response.received_messages:
            self._activity.saw_messages(subscription)
        return response

    def __getattr__(self, name: str) -> _t.Any:
        return getattr(self._client, name)


_applied: set[str] = set()


#: the activity clock of the installed read patch
ACTIVITY = Activity(hot_seconds=2.0)


def tune_pubsub_reads(timeout: float = 1.5, max_messages: int = 500) -> bool:
    """Larger pulls that do not hold the DirectRunner's one thread while the pipeline is busy
    (idempotent); whether applied."""
    if "pubsub_reads" in _applied:
        return True
    if not _guard("tune_pubsub_reads"):
        return False
    from apache_beam.runners.direct import transform_evaluator as te

    evaluator = te._PubSubReadEvaluator
    original = evaluator._get_subscriber_client.__func__  # type: ignore[attr-defined]

    from plugboard_beam.library.pubsub import subscriber_client

    # Beam's client, or on the emulator one made once per Beam client by ``subscriber_client``:
    # the emulator's channel of Beam's own client refuses responses over 4 MB, so one large
    # message would be redelivered and refused for ever (a hung run; issue 15)
    unlimited: dict[int, tuple[_t.Any, _t.Any]] = {}

    def patched(cls: _t.Any, transform: _t.Any) -> _t.Any:
        client = original(cls, transform)
        if os.environ.get("PUBSUB_EMULATOR_HOST"):
            if id(client) not in unlimited:
                unlimited[id(client)] = (client, subscriber_client())  # (kept alive: ids stay unique)
            client = unlimited[id(client)][1]
        return _PullProxy(client, timeout, max_messages, ACTIVITY)

    # return_immediately is deprecated for the real service; on the emulator it is what we want
    warnings.filterwarnings("ignore", message="The return_immediately flag is deprecated", category=DeprecationWarning)
    evaluator._get_subscriber_client = classmethod(patched)  # type: ignore[assignment]
    _applied.add("pubsub_reads")
    return True


def skip_empty_bundles() -> bool:
    """The streaming DirectRunner schedules no consumer for an empty bundle (idempotent);
    whether applied."""
    if "empty_bundles" in _applied:
        return True
    if not _guard("skip_empty_bundles"):
        return False
    from apache_beam.runners.direct import executor as ex

    update = ex._ExecutorServiceParallelExecutor._ExecutorUpdate

    def handle_result(self: _t.Any, transform_executor: _t.Any, input_committed_bundle: _t.Any,
                      transform_result: _t.Any) -> _t.Any:
        # Beam 2.77's _CompletionCallback.handle_result, minus the updates for empty bundles
        # (the evaluation context still sees every bundle: watermarks, side inputs, metrics)
        committed = self._evaluation_context.handle_result(input_committed_bundle, self._timer_firings,
                                                           transform_result)
        for bundle in committed:
            if bundle.has_elements():
                self._all_updates.offer(update(transform_executor, committed_bundle=bundle))
        for unprocessed in transform_result.unprocessed_bundles:
            self._all_updates.offer(update(transform_executor, unprocessed_bundle=unprocessed))
        return committed

    ex._CompletionCallback.handle_result = handle_result  # type: ignore[method-assign]
    _applied.add("empty_bundles")
    return True


def publish_at_flush() -> bool:
    """``WriteToPubSub`` sends each bundle's messages at once instead of after the publisher
    client's batching delay (idempotent); whether applied."""
    if "publish_at_flush" in _applied:
        return True
    if not _guard("publish_at_flush"):
        return False
    from apache_beam.io.gcp import pubsub as beam_pubsub

    write = beam_pubsub._PubSubWriteDoFn
    message_of = beam_pubsub.PubsubMessage._from_proto_str

    def flush(self: _t.Any) -> None:
        # Beam 2.77's _PubSubWriteDoFn._flush, plus the commit of the client's open batches
        if not self._buffer:
            return
        client = self._pub_client
        futures = []
        for elem in self._buffer:
            msg = message_of(elem)
            kwargs: dict[str, _t.Any] = dict(msg.attributes) if self.with_attributes and msg.attributes else {}
            if msg.ordering_key:
                kwargs["ordering_key"] = msg.ordering_key
            futures.append(client.publish(self._topic, msg.data, **kwargs))
        commit = getattr(client, "_commit_sequencers", None)
        lock = getattr(client, "_batch_lock", None)
        if commit is not None and lock is not None:
            with lock:
                if not getattr(client, "_is_stopped", False):
                    commit()
        start = time.time()
        for future in futures:
            remaining = self.FLUSH_TIMEOUT_SECS - (time.time() - start)
            if remaining <= 0:
                raise TimeoutError(f"PubSub publish timeout exceeded {self.FLUSH_TIMEOUT_SECS} seconds")
            future.result(remaining)
        self._buffer = []

    write._flush = flush  # type: ignore[method-assign]
    _applied.add("publish_at_flush")
    return True


def cache_dofn_specs() -> bool:
    """``get_dofn_specs`` computed once per DoFn class (idempotent); whether applied."""
    if "dofn_specs" in _applied:
        return True
    if not _guard("cache_dofn_specs"):
        return False
    import types

    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.transforms import userstate

    original = userstate.get_dofn_specs
    #: (DoFn class, names its instance sets over the class's attributes) -> specs
    cache: dict[tuple[type, frozenset[str]], tuple[frozenset[_t.Any], frozenset[_t.Any]]] = {}

    def get_dofn_specs(dofn: _t.Any) -> tuple[set[_t.Any], set[_t.Any]]:
        own = getattr(dofn, "__dict__", None)
        if own is None or any(isinstance(v, types.MethodType) for v in own.values()):
            return original(dofn)  # bound methods set on the instance: Beam inspects each one
        # Beam inspects the DoFn's bound methods: the class's, except those an instance attribute
        # of the same name hides (``beam.Map`` sets a plain function as ``process``: skipped)
        cls = type(dofn)
        key = (cls, frozenset(k for k in own if hasattr(cls, k)))
        specs = cache.get(key)
        if specs is None:
            states, timers = original(dofn)
            if len(cache) >= 1024:  # (classes made on the fly, e.g. in tests: bounded)
                cache.clear()
            specs = cache[key] = (frozenset(states), frozenset(timers))
        return set(specs[0]), set(specs[1])

    # every module that calls it by its userstate name, and the evaluator's imported name
    setattr(userstate, "get_dofn_specs", get_dofn_specs)
    setattr(te, "get_dofn_specs", get_dofn_specs)
    _applied.add("dofn_specs")
    return True


def cache_option_parsers() -> bool:
    """Each ``PipelineOptions`` class builds its argument parser once (idempotent); whether
    applied. Beam's ``PipelineOptions.__init__`` builds a parser of every option of the class
    (~150 ``add_argument`` calls, each making a help formatter that reads the terminal's size)
    and parses the flags with it, and every ``view_as`` makes a new view: ~75 views, ~12 ms, of
    every DirectRunner pipeline (built, validated and run). Parsing with a kept parser gives the
    same namespace; list and dict values (e.g. ``resource_hints``' ``[]`` default) are copied, so
    no options object shares one with another."""
    if "option_parsers" in _applied:
        return True
    if not _guard("cache_option_parsers"):
        return False
    from apache_beam.options import pipeline_options as po

    original = po.PipelineOptions.__init__
    parsers: dict[type, _t.Any] = {}
    lock = threading.Lock()

    def parser_of(cls: type) -> _t.Any:
        with lock:
            parser = parsers.get(cls)
            if parser is None:
                parser = po._BeamArgumentParser(allow_abbrev=False)
                for klass in cls.mro():  # as Beam's ``__init__``
                    if klass == po.PipelineOptions:
                        break
                    if "_add_argparse_args" in klass.__dict__:
                        klass._add_argparse_args(parser)  # type: ignore[attr-defined]
                if len(parsers) >= 256:  # (classes made on the fly: bounded)
                    parsers.clear()
                parsers[cls] = parser
            return parser

    def __init__(self: _t.Any, flags: _t.Optional[_t.Sequence[str]] = None, **kwargs: _t.Any) -> None:
        if isinstance(flags, str):
            original(self, flags, **kwargs)  # Beam's own error
            return
        logging.basicConfig()  # as Beam's
        self._flags = flags
        visible, _ = parser_of(type(self)).parse_known_args(flags)
        for name, value in vars(visible).items():
            if isinstance(value, (list, dict)):
                setattr(visible, name, value.copy())
        self._visible_options = visible
        self._all_options = kwargs
        for option_name in self._visible_option_list():
            if option_name not in self._all_options:
                self._all_options[option_name] = getattr(visible, option_name)

    __init__.__doc__ = original.__doc__
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(po.PipelineOptions, "__init__", __init__)
    _applied.add("option_parsers")
    return True


def reuse_dofns() -> bool:
    """The streaming DirectRunner sets a DoFn up once and reuses it for the next bundles of its
    step (idempotent); whether applied."""
    if "reuse_dofns" in _applied:
        return True
    if not _guard("reuse_dofns"):
        return False
    import weakref

    from apache_beam import pvalue
    from apache_beam.coders.typecoders import registry as coder_registry
    from apache_beam.internal import pickler
    from apache_beam.runners.common import DoFnRunner, DoFnState
    from apache_beam.runners.direct import executor as ex
    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.runners.direct.direct_userstate import DirectUserStateContext
    from apache_beam.runners.direct.util import TransformResult
    from apache_beam.transforms import userstate
    from apache_beam.utils import counters

    evaluator = te._ParDoEvaluator
    original_start, original_finish = evaluator.start_bundle, evaluator.finish_bundle
    # set-up DoFns not in use, by step; a bundle takes its step's DoFn and gives it back when
    # it finishes (a failed bundle does not: the next one sets up a fresh copy)
    idle: weakref.WeakKeyDictionary[_t.Any, _t.Any] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def start_bundle(self: _t.Any) -> None:
        if not self._perform_dofn_pickle_test:  # splittable DoFns: Beam's own way
            self._reused = None
            original_start(self)
            return
        # Beam 2.77's _ParDoEvaluator.start_bundle, with the set-up DoFn reused
        applied = self._applied_ptransform
        transform = applied.transform
        self._tagged_receivers = te._TaggedReceivers(self._evaluation_context)
        for output_tag in applied.outputs:
            output_pcollection: _t.Any = pvalue.PCollection(_t.cast(_t.Any, None), tag=output_tag)
            output_pcollection.producer = applied
            self._tagged_receivers[output_tag] = self._evaluation_context.create_bundle(output_pcollection)
            self._tagged_receivers[output_tag].tag = output_tag
        self._counter_factory = counters.CounterFactory()
        with lock:
            dofn = idle.pop(applied, None)
        fresh = dofn is None
        if fresh:
            dofn = pickler.roundtrip(transform.dofn)
        args = transform.args if hasattr(transform, "args") else []
        kwargs = transform.kwargs if hasattr(transform, "kwargs") else {}
        self.user_state_context = None
        self.user_timer_map = {}
        if userstate.is_stateful_dofn(dofn):
            kv_type_hint = applied.inputs[0].element_type
            if kv_type_hint and kv_type_hint != _t.Any:
                self.key_coder = coder_registry.get_coder(kv_type_hint).key_coder()
            else:
                self.key_coder = coder_registry.get_coder(_t.Any)
            self.user_state_context = DirectUserStateContext(self._step_context, dofn, self.key_coder)
            _, all_timer_specs = userstate.get_dofn_specs(dofn)
            for timer_spec in all_timer_specs:
                self.user_timer_map[f"user/{timer_spec.name}"] = timer_spec
        self.runner = DoFnRunner(
            dofn, args, kwargs, self._side_inputs, applied.inputs[0].windowing,
            tagged_receivers=self._tagged_receivers, step_name=applied.full_label,
            state=DoFnState(self._counter_factory), user_state_context=self.user_state_context)
        if fresh:
            self.runner.setup()
        self._reused = dofn
        self.runner.start()

    def finish_bundle(self: _t.Any) -> _t.Any:
        dofn = getattr(self, "_reused", None)
        if dofn is None:
            return original_finish(self)
        # Beam 2.77's _ParDoEvaluator.finish_bundle, without the teardown: the DoFn goes back
        self.runner.finish()
        bundles = list(self._tagged_receivers.values())
        result_counters = self._counter_factory.get_counters()
        if self.user_state_context:
            self.user_state_context.commit()
            self.user_state_context.reset()
        with lock:
            idle[self._applied_ptransform] = dofn
        return TransformResult(self, bundles, [], result_counters, None)

    def teardown_idle(executor: _t.Any) -> None:
        """``teardown`` of the set-up DoFns of a pipeline whose workers have stopped."""
        for node in getattr(executor, "all_nodes", ()):
            with lock:
                dofn = idle.pop(node, None)
            if dofn is not None:
                try:
                    dofn.teardown()
                except Exception:  # as Beam's DoFnRunner: a failing teardown is logged
                    log.exception("teardown of %s failed", node.full_label)

    def ends(method: _t.Callable[[_t.Any], None]) -> _t.Callable[[_t.Any], None]:
        def wrapped(self: _t.Any) -> None:
            try:
                method(self)
            finally:  # the worker threads have been joined: no bundle is running
                teardown_idle(self)
        return wrapped

    parallel = ex._ExecutorServiceParallelExecutor
    parallel.await_completion = ends(parallel.await_completion)  # type: ignore[method-assign]
    parallel.request_shutdown = ends(parallel.request_shutdown)  # type: ignore[method-assign]
    evaluator.start_bundle = start_bundle  # type: ignore[method-assign]
    evaluator.finish_bundle = finish_bundle  # type: ignore[method-assign]
    _applied.add("reuse_dofns")
    return True


#: the attribute of a ``ReadFromPubSub``'s ``_source`` that holds its intake spec
INTAKE_ATTRIBUTE = "plugboard_intake"


def journal_pubsub_reads(replay_batch: int = 500) -> bool:
    """The DirectRunner's Pub/Sub read of a source with an intake (``INTAKE_ATTRIBUTE``)
    replays its journal, then journals each pulled message before acknowledging it
    (idempotent); whether applied."""
    if "journal_reads" in _applied:
        return True
    if not _guard("journal_pubsub_reads"):
        return False
    import weakref

    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.runners.direct import transform_evaluator as te
    from apache_beam.utils.timestamp import Timestamp

    evaluator = te._PubSubReadEvaluator
    original = evaluator._read_from_pubsub
    intakes: weakref.WeakKeyDictionary[_t.Any, _t.Any] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def read(self: _t.Any, timestamp_attribute: _t.Any) -> list[tuple[_t.Any, _t.Any]]:
        spec = getattr(self.source, INTAKE_ATTRIBUTE, None)
        if spec is None or timestamp_attribute:
            return original(self, timestamp_attribute)
        applied = self._applied_ptransform
        with lock:
            intake = intakes.get(applied)
            if intake is None:
                intake = intakes[applied] = spec.open()
        replay = intake.next_replay(replay_batch)
        if replay:  # as if pulled now (the journal keeps the original publish time)
            now = Timestamp.of(time.time())
            return [(now, PubsubMessage(r.data, r.attributes, message_id=r.message_id)) for r in replay]
        client = self._get_subscriber_client(applied)
        response = client.pull(subscription=self._sub_name, max_messages=10, timeout=30)
        received = list(response.received_messages)
        if not received:
            return []
        messages = [PubsubMessage._from_message(rm.message) for rm in received]
        stamps = [Timestamp.from_utc_datetime(rm.message.publish_time) for rm in received]
        fresh = intake.admit([(m.message_id or "", m.data or b"", m.attributes or {}, stamps[i].micros)
                              for i, m in enumerate(messages)])
        # durable now: acknowledge (a failed ack is a redelivery, left out as already journaled)
        client.acknowledge(subscription=self._sub_name, ack_ids=[rm.ack_id for rm in received])
        return [(stamps[i], messages[i]) for i in fresh]

    evaluator._read_from_pubsub = read  # type: ignore[method-assign]
    _applied.add("journal_reads")
    return True


def drop_empty_keyed_state() -> bool:
    """The DirectRunner forgets a key whose keyed state and timers are empty (idempotent);
    whether applied."""
    if "empty_keyed_state" in _applied:
        return True
    if not _guard("drop_empty_keyed_state"):
        return False
    from apache_beam.runners.direct.evaluation_context import EvaluationContext

    handle = EvaluationContext.handle_result

    def handle_result(self: _t.Any, completed_bundle: _t.Any, completed_timers: _t.Any, result: _t.Any) -> _t.Any:
        committed = handle(self, completed_bundle, completed_timers, result)
        if result.partial_keyed_state:
            # (under both locks that guard the table: the evaluation context's, and the
            # watermarks' that walk it for timers)
            marks = self._watermark_manager._transform_to_watermarks[result.transform]
            with self._lock, marks._lock:
                existing = self._transform_keyed_states[result.transform]
                for k, v in result.partial_keyed_state.items():
                    if (existing.get(k) is v and not v.global_state and not any(v.timers.values())
                            and not any(v.state.values())):
                        del existing[k]
        return committed

    EvaluationContext.handle_result = handle_result  # type: ignore[method-assign]
    _applied.add("empty_keyed_state")
    return True


def tune_streaming_direct_runner() -> bool:
    """Every streaming DirectRunner patch: Pub/Sub reads, empty bundles, publishing at flush,
    DoFn specs, DoFn reuse, empty keyed state (idempotent); whether all were applied."""
    return all([tune_pubsub_reads(), skip_empty_bundles(), publish_at_flush(), cache_dofn_specs(),
                reuse_dofns(), drop_empty_keyed_state()])


def tune_direct_runner() -> bool:
    """Turn off the FnApiRunner's state cache, cache DoFn specs and options parsers
    (idempotent); whether all were applied. (A batch pipeline asks ``get_dofn_specs`` ~100 times while it is built and
    translated: ~0.15 s of every run, measured.)"""
    if not _guard("tune_direct_runner"):
        return False
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0
    return cache_dofn_specs() and cache_option_parsers()


class _NewSessionSubprocess:
    """``subprocess`` as seen by Beam's worker launcher: every ``Popen`` gets its own session."""

    def __init__(self, module: _t.Any) -> None:
        self._module = module

    def Popen(self, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:  # the name Beam calls
        kwargs.setdefault("start_new_session", True)
        return self._module.Popen(*args, **kwargs)

    def __getattr__(self, name: str) -> _t.Any:
        return getattr(self._module, name)


def isolate_worker_signals() -> bool:
    """Start the DirectRunner's ``multi_processing`` workers in their own session (idempotent);
    whether applied.

    A terminal's Ctrl-C goes to its whole foreground process group: the workers would die of
    it with a traceback each, before the main process stops the pipeline. In their own
    session only the main process gets it; it stops the pipeline, and each worker then exits
    by itself (its control channel closes), running its exit hooks (``destroy()`` of its live
    components, see ``lowering.beam.close_live_runs``)."""
    if "worker_signals" in _applied:
        return True
    if not _guard("isolate_worker_signals"):
        return False
    from apache_beam.runners.portability import local_job_service

    setattr(local_job_service, "subprocess", _NewSessionSubprocess(vars(local_job_service)["subprocess"]))
    _applied.add("worker_signals")
    return True
