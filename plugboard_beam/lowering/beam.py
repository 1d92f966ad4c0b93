"""The Beam lowering: a model becomes a keyed, stateful Beam pipeline.

Each stage of the plan (see ``plan.py``) is a ``StageDoFn``: a keyed stateful DoFn whose
per-key state is a ``StageRun`` (component objects, pending inputs, step counters) kept in
Beam state. Connectors between stages are PCollections of chunks ``(key, (edge, start,
values, ended))``. Component classes are never pickled into the pipeline: DoFns carry the
model's YAML text and import the classes in ``setup()`` on the worker.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import pickle
import typing as _t
import uuid

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import Edge
from plugboard_beam.logs import LogConfig, setup_worker
from plugboard_beam.lowering import dataio, hints
from plugboard_beam.lowering.plan import Plan, Stage, chunk_tag, writer_tag
from plugboard_beam.lowering.records import SCHEMA, RecordBuffer
from plugboard_beam.lowering.rows import rows_sink
from plugboard_beam.runtime import finals
from plugboard_beam.runtime.context import RunContext, work
from plugboard_beam.runtime.driver import Driver, LoopPool
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import Failure, construct
from plugboard_beam.runtime.stage import (
    MIXED_REASONS,
    Chunk,
    ReorderWindow,
    StageRun,
    Unsequenced,
    decode_chunk,
    encode_chunk,
)
from plugboard_beam.runtime.worker_progress import WorkerFeed, live_steps
from plugboard_beam.spec.errors import ModelError
from plugboard_beam.spec.load import KeyModel, LoadedModel, load_model
from plugboard_beam.state.runs import KeyReporter, StateTarget

log = logging.getLogger("plugboard_beam")

RECORD = "record"
ERRORS = "errors"
DONE = "done"
#: ``runtime.finals`` rows (JSON) of the keys that ended, when a run asks for final values
FINAL = "final"
#: streaming: ``(key, chunk, failure row or "")`` for input a stage cannot use because the key
#: failed (the chunk that failed it, input queued behind it) or had already ended (or
#: ``"!" + reason`` for a reader message refused by itself, e.g. ``MIXED_REASONS``)
LATE = "late"
#: streaming: reader messages dropped because their key and seq (or message id) were already used
REPEATED_INPUT = "repeated_input"
#: state of a key whose stage has ended
TOMBSTONE = b"\xff" * 8
#: streaming: the state of a key that has ended at a stage, followed by its failure row ("" if none)
ENDED_AS = TOMBSTONE + b"E"


class ModelSource(_t.NamedTuple):
    """What a worker needs to rebuild the model: its text, its path (for the module folder)
    and the ``-p`` overrides it was loaded with."""

    path: str
    text: str
    overrides: dict[str, _t.Any]

    @classmethod
    def of(cls, model: LoadedModel) -> ModelSource:
        """From a loaded model."""
        return cls(str(model.path.resolve()), model.text, dict(model.overrides))

    def load(self) -> LoadedModel:
        """Validate and import (on the worker)."""
        return load_model(self.path, self.overrides, text=self.text)


#: The element type of every stage input: (key, chunk). Declared so that Beam uses a
#: deterministic key coder (UTF-8 strings) for the keyed state, as Dataflow requires.
STAGE_INPUT = beam.typehints.KV[str, _t.Any]


class StartElements(beam.Create):
    """``beam.Create`` of the keys' start elements, typed ``STAGE_INPUT`` up front: Beam's own
    ``Create`` infers a type from every element as it is made (``instance_to_type`` of each:
    most of the pipeline's construction time with many keys), and the type given with
    ``with_output_types`` afterwards would replace that anyway."""

    def infer_output_type(self, unused_input_type: _t.Any) -> _t.Any:
        return STAGE_INPUT


def error_row(key: str, errors: _t.Sequence[StepError]) -> str:
    """A JSON line describing a key's failure (``Failure.to_json``)."""
    failure = Failure.of_errors(errors)
    assert failure is not None
    return failure.to_json()


def stage_input(pcolls: _t.Sequence[_t.Any], label: str) -> _t.Any:
    """One typed PCollection of (key, chunk) from the inputs of a stage (see ``STAGE_INPUT``)."""
    return tuple(pcolls) | label >> beam.Flatten().with_output_types(STAGE_INPUT)


def unencodable(edge: Edge, key: str, chunk: Chunk, exc: Exception) -> StepError:
    """The failure of a chunk whose values cannot cross to the next stage: names the value's
    component, output field, key and step."""
    _, start, values, _ = chunk
    step, what, cause = start, "a value", exc
    for i, value in enumerate(values):
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            step, what, cause = start + i, f"a value of type {type(value).__name__}", err
            break
    reason = TypeError(f"{what} cannot be pickled to cross to the next stage ({type(cause).__name__}: {cause}); "
                       "send picklable values or use --stages fused")
    return StepError(edge.source, key, step, "emit", reason, field=edge.source_field)


class StageDoFn(beam.DoFn):
    """Runs one stage of the model for each key; the key's ``StageRun`` lives in Beam state."""

    RUN = ReadModifyWriteStateSpec("run", BytesCoder())

    def __init__(self, source: ModelSource, stage: Stage, overrides: dict[str, dict[str, _t.Any]],
                 record: bool, chunk_rounds: int = 16, cut: _t.Collection[int] = (),
                 writers: _t.Collection[str] = (), emit_done: bool = False,
                 windows: _t.Optional[_t.Mapping[int, ReorderWindow]] = None,
                 final_fields: _t.Sequence[str] = (), state: _t.Optional[StateTarget] = None,
                 run_id: str = "", log: _t.Optional[LogConfig] = None, progress_dir: str = "",
                 one_process: bool = False) -> None:
        self.source = source
        #: the run's logging: level set on the worker in ``setup``, job id bound to components' records
        self.log = log
        self.stage = stage
        self.overrides = overrides
        self.record = record
        self.chunk_rounds = chunk_rounds
        self.cut = tuple(cut)
        self.writers = tuple(writers)
        self.emit_done = emit_done
        self.windows = dict(windows or {})  # streaming: reorder windows of reader edges (seq gaps)
        members = set(stage.members)
        self.final_fields = tuple(f for f in final_fields if f.partition(".")[0] in members)
        self.tags = {e.id: chunk_tag(e) for e in stage.out_edges}
        self.edges = {e.id: e for e in stage.out_edges}
        self.state = state  # where each key's row goes (at its start and end here), if anywhere
        # Live runs are shared by the DoFn instances of this stage in one worker process (some
        # runners make a new instance per bundle); Beam state stays the source of truth.
        self.uid = uuid.uuid4().hex
        # the run's context (``runtime/context.py``), looked up by id where the DoFn is unpickled
        self.run_id = run_id or self.uid
        #: the run's folder for key ends in worker processes (``runtime/worker_progress.py``), or ""
        self.progress_dir = progress_dir
        #: every element of every key is processed in this one process (the DirectRunner in
        #: memory): a key's run between its elements is the live object, and Beam state holds
        #: only its version (see ``_save``)
        self.one_process = one_process

    def setup(self) -> None:
        if self.log is not None:
            setup_worker(self.log)
        _destroy_at_exit()
        self.model = self.source.load()
        #: what each live key runs (the model and its scenario's arguments; no copy of the model)
        self.instances: dict[str, _t.Union[KeyModel, ModelError]] = {}
        # Live runs by key: (version, run). Beam state holds the same run pickled; the live
        # object is used only while its version matches the state's.
        self.ctx = RunContext.lookup(self.run_id)
        self.live = self.ctx.runs(self.uid)
        self.tracker = self.ctx.tracker  # None in a worker process: progress is the runner's
        # in a worker process, the keys that end go to this process's file in the run's folder
        self.feed = (self.ctx.shared("progress-feed", lambda: WorkerFeed(self.progress_dir,
                                                                          live=functools.partial(live_steps, self.ctx)))
                     if self.tracker is None and self.progress_dir else None)
        # PLUGBOARD_BEAM_STATE_ONLY=1 restores every element's run from Beam state, as if each
        # element went to another worker (tests use it to show state really lives there).
        self.use_live = os.environ.get("PLUGBOARD_BEAM_STATE_ONLY") != "1"
        self.pickle_runs = not (self.one_process and self.use_live)
        self.records = RecordBuffer()
        self.steps = {n: Metrics.counter("plugboard_beam", f"steps/{n}") for n in self.stage.members}
        #: steps of the keys that ended in this bundle, by component: added to the counters once
        #: per bundle (a counter's ``inc`` looks up the worker's state tracker each time)
        self.bundle_steps: dict[str, int] = {}
        self.failed_keys = Metrics.counter("plugboard_beam", "failed_keys")
        self.repeated = Metrics.counter("plugboard_beam", REPEATED_INPUT)
        self.unpicklable_warned = False
        self.keys = KeyReporter(self.state, self.stage.members) if self.state is not None else None
        #: event loops handed from keys that ended to keys that start (not one new loop per key)
        self.loops = LoopPool()

    def finish_bundle(self) -> None:
        for name, n in self.bundle_steps.items():
            if n:
                self.steps[name].inc(n)
        self.bundle_steps = {}

    def teardown(self) -> None:
        self.loops.close()  # the idle loops only: a live run keeps its own

    def _instance(self, key: str) -> KeyModel:
        inst = self.instances.get(key)
        if inst is None:
            try:
                inst = self.model.resolve(self.overrides.get(key, {}))
            except ModelError as err:
                inst = err
            self.instances[key] = inst
        if isinstance(inst, ModelError):
            raise StepError("+".join(self.stage.members), key, 0, "construct", inst)
        return inst

    def _new_run(self, key: str) -> StageRun:
        inst = self._instance(key)
        components = construct(inst, key)
        for name in self.writers:
            components[name].outbox = []  # type: ignore[attr-defined]
        engine = Engine(inst.graph, components, key=key, members=self.stage.members, driver=Driver(self.loops),
                        recorder=self.records if self.record else None, cut=self.cut,
                        job_id=self.log.job_id if self.log is not None else None)
        run = StageRun(engine, self.windows)
        # Live from the start, so an interruption in its first element still destroys it
        # (``close_live_runs``).
        self.live[key] = (0, run)
        if self.keys is not None:
            self.keys.started(key)
        run.start()
        return run

    def _load(self, key: str, blob: _t.Optional[bytes]) -> tuple[int, StageRun]:
        if blob is None:
            return 0, self._new_run(key)
        version = int.from_bytes(blob[:8], "little")
        cached = self.live.get(key) if self.use_live else None
        if cached is not None and cached[0] == version:
            return cached
        if len(blob) == 8:  # the key fails alone (reported like any failure)
            why = ("was kept in this process only and is no longer held here" if not self.pickle_runs else
                   "could not be pickled and this worker does not hold it (the key moved between workers); "
                   "make component attributes picklable (e.g. open files in step, not init) or use --stages fused")
            raise StepError("+".join(self.stage.members), key, -1, "run", RuntimeError(
                f"stage {self.stage.name}, key {key!r}: the components' state {why}"))
        run = StageRun.load(blob[8:], self._instance(key).graph)
        run.engine.driver = Driver(self.loops)
        run.engine.recorder = self.records if self.record else None
        return version, run

    def _save(self, key: str, version: int, run: StageRun, state: _t.Any) -> None:
        """Keep ``key``'s run between its elements: live in this process, and pickled in Beam state
        (the truth where the key's next element may go to another worker process). In one process
        (``one_process``) the state and the live run stand or fall together, so only the version is
        written: pickling the run after every element cost the six-component benchmark ~15% of
        its ``--stages component`` time, and made CPython 3.12 give each component a dict of its
        own (``__getstate__``), which slows every later attribute access in its steps."""
        version += 1
        if not self.pickle_runs:
            state.write(version.to_bytes(8, "little"))
            self.live[key] = (version, run)
            return
        try:
            blob = version.to_bytes(8, "little") + run.dump()
        except (TypeError, AttributeError, pickle.PicklingError) as exc:
            if not self.unpicklable_warned:
                self.unpicklable_warned = True
                log.warning("stage %s: the components' state of key %r is not picklable (%s); it is kept "
                            "in this worker's memory only (said once per stage and worker, whatever the "
                            "number of keys)", self.stage.name, key, exc)
            blob = version.to_bytes(8, "little")
        state.write(blob)
        self.live[key] = (version, run)

    def process(self, element: tuple[str, _t.Any], state: _t.Any = beam.DoFn.StateParam(RUN)) -> _t.Iterator[_t.Any]:  # noqa: B008
        # (a plain generator here: Beam warns about ``return`` in a ``process`` that yields)
        yield from self._process(*element, state)

    def _process(self, key: str, item: _t.Any, state: _t.Any) -> _t.Iterator[_t.Any]:
        self.records.key = key
        if type(item) is dict:  # a key's start with its scenario's overrides (``build``): what it runs
            if key not in self.instances:
                try:
                    self.instances[key] = self.model.resolve(item)
                except ModelError as err:  # checked by the runner already; reported like a constructor's
                    self.instances[key] = err
            item = None
        blob = state.read()
        if blob == TOMBSTONE:
            return  # this key has ended here; late or repeated elements are dropped
        if self.emit_done and blob is not None and blob.startswith(ENDED_AS):
            # streaming: input for a key that has ended here; the tombstone says how it ended
            late = decode_chunk(item)
            if late is not None:
                yield beam.pvalue.TaggedOutput(LATE, (key, late, blob[len(ENDED_AS):].decode()))
            return
        try:
            version, run = self._load(key, blob)
        except StepError as err:  # a constructor raised, or the state is lost: the key fails alone
            yield from self._construct_failed(key, err, state, decode_chunk(item))
            return
        chunk = decode_chunk(item)
        if chunk is None:
            run.check_windows()  # streaming: a reorder window's timer (``streaming/gaps.py``)
        else:
            if not run.feed(chunk) and chunk[0] in run.windows:
                self.repeated.inc()  # streaming: a reader message whose key and seq were already used
            while run.mixed:  # streaming: a reader message with(out) seq unlike the key's others
                bad = run.mixed.pop()
                yield beam.pvalue.TaggedOutput(LATE, (key, bad, "!" + MIXED_REASONS[type(bad[2]) is Unsequenced]))
        limits: dict[str, int] = {}
        tracker = self.tracker
        if tracker is not None:
            tracker.live(self.uid, key, run.engine)
        for chunks in run.advance(self.chunk_rounds):
            yield from self._emit(key, run, chunks, limits)
            if self.records.full():
                yield beam.pvalue.TaggedOutput(RECORD, self.records.take())
        yield from self._drain_writers(run)
        if run.finished:
            done = work(run.engine)
            counts = self.bundle_steps
            for name, n in done.items():
                counts[name] = counts.get(name, 0) + n
            unused = _unused_input(run) if self.emit_done and run.error is not None else []
            errors = run.close()
            if self.keys is not None:
                self.keys.ended(key, {n: r.comp.status for n, r in run.engine.runners.items()}, errors)
            yield from self._drain_writers(run)
            if self.final_fields:
                comps = {n: r.comp for n, r in run.engine.runners.items()}
                yield beam.pvalue.TaggedOutput(FINAL, finals.to_json(
                    finals.final_values(key, comps, self.final_fields, errors)))
            row = error_row(key, errors) if errors else ""
            self._key_ended(key, done, bool(errors))
            yield from self._report(key, row, run, unused)
            state.write(self._ended(row))
            self.live.pop(key, None)
            self.instances.pop(key, None)  # a long streaming job sees keys come and go
            run.engine.release()  # the key's objects freed now, not by the cycle collector
        else:
            self._save(key, version, run, state)
        batch = self.records.take()
        if batch is not None:
            yield beam.pvalue.TaggedOutput(RECORD, batch)

    def _key_ended(self, key: str, steps: _t.Mapping[str, int], failed: bool) -> None:
        """Count ``key``'s end here: on the runner's tracker, or in a worker's progress file."""
        if self.tracker is not None:
            self.tracker.ended(self.uid, key, steps, failed)
        elif self.feed is not None:
            self.feed.ended(self.uid, key, steps, failed)

    def _emit(self, key: str, run: StageRun, chunks: list[Chunk], limits: dict[str, int]) -> _t.Iterator[_t.Any]:
        """Encode a round's chunks and send them. A value that cannot be encoded fails the key at
        that value's step: its component's outputs end just before it (``limits``: component ->
        step, for the rest of this element) and the stage stops (failure protocol)."""
        while True:
            encoded, bad = self._encode(chunks, limits)
            if bad is None:
                break
            chunk, exc = bad
            edge = self.edges[chunk[0]]
            err = unencodable(edge, key, chunk, exc)
            limits[edge.source] = err.step
            run.fail(err)
        tags = self.tags
        for eid, out in encoded:
            yield beam.pvalue.TaggedOutput(tags[eid], (key, out))

    def _encode(self, chunks: list[Chunk], limits: dict[str, int]
                ) -> tuple[list[tuple[int, _t.Any]], _t.Optional[tuple[Chunk, Exception]]]:
        out: list[tuple[int, _t.Any]] = []
        for chunk in chunks:
            eid, start, values, _ended = chunk
            limit = limits.get(self.edges[eid].source)
            if limit is not None:
                if start > limit:
                    continue  # the stream already ended at the limit
                chunk = (eid, start, values[:limit - start], True)
            if eid in self.cut:
                out.append((eid, chunk))  # the streaming lowering encodes its feedback itself
                continue
            try:
                out.append((eid, encode_chunk(chunk)))
            except Exception as exc:
                return out, (chunk, exc)
        return out, None

    def _report(self, key: str, row: str, run: _t.Optional[StageRun] = None,
                unused: _t.Sequence[Chunk] = ()) -> _t.Iterator[_t.Any]:
        """A key has ended here (``row``: its failure record as JSON, or empty). Streaming also
        says so on the control output, with the messages each writer published, and hands the
        input the failed key will never use to the dead-letter path (``LATE``)."""
        if self.emit_done:
            # Pub/Sub writers count their messages; a streaming FileWriter (also in ``writers``,
            # its rows go to the windowed file sink) has no ``count`` (reads as None): not counted
            counts = ({w: getattr(run.engine.runners[w].comp, "count", None) for w in self.writers}
                      if run is not None else {})
            published = {w: c for w, c in counts.items() if type(c) is int}
            yield beam.pvalue.TaggedOutput(DONE, (key, self.stage.id, row, published))
            for late in unused:
                yield beam.pvalue.TaggedOutput(LATE, (key, late, row))
        if row:
            self.failed_keys.inc()
            if not self.emit_done:  # (streaming tells its failures on its control output)
                self.ctx.failed(row)
            yield beam.pvalue.TaggedOutput(ERRORS, row)

    def _ended(self, row: str) -> bytes:
        """The state of a key that has ended here (streaming keeps how, for late input)."""
        return ENDED_AS + row.encode() if self.emit_done else TOMBSTONE

    def _construct_failed(self, key: str, err: StepError, state: _t.Any,
                          chunk: _t.Optional[Chunk]) -> _t.Iterator[_t.Any]:
        """No component of the key exists here: every output of the stage ends at once (so later
        stages finish) and the failure is reported; the input that came is never used."""
        for eid in self.tags:
            end: Chunk = (eid, 0, [], True)
            yield beam.pvalue.TaggedOutput(self.tags[eid], (key, end if eid in self.cut else encode_chunk(end)))
        row = error_row(key, [err])
        self._key_ended(key, {}, True)
        if self.keys is not None:
            self.keys.ended(key, {}, [err])
        yield from self._report(key, row, unused=[chunk] if chunk is not None else [])
        state.write(self._ended(row))
        self.instances.pop(key, None)

    def _drain_writers(self, run: StageRun) -> _t.Iterator[_t.Any]:
        for name in self.writers:
            outbox = run.engine.runners[name].comp.outbox
            for message in outbox:
                yield beam.pvalue.TaggedOutput(writer_tag(name), message)
            outbox.clear()


class _NoState:
    """The Beam state of a ``StartDoFn``: nothing is carried from one element to the next."""

    __slots__ = ()

    def read(self) -> None:
        return None

    def write(self, blob: bytes) -> None:
        pass


NO_STATE = _NoState()


class StartDoFn(StageDoFn):
    """``StageDoFn`` for a batch stage fed by nothing but its keys' start elements: a key has
    exactly one element there, and runs from its start to its end in it (no input can come
    later), so nothing is kept in Beam state. Stateful processing cost the DirectRunner ~100 us
    a key (reading and writing each key's state; measured in ``benchmarks/bench.py``). A key
    whose run could not finish in its element (nothing left to step, inputs not ended) stays
    live in the worker as in ``StageDoFn`` and is ended at the pipeline's end."""

    def process(self, element: tuple[str, _t.Any]) -> _t.Iterator[_t.Any]:  # type: ignore[override]
        yield from self._process(*element, NO_STATE)

    def _save(self, key: str, version: int, run: StageRun, state: _t.Any) -> None:
        # an unfinished run is only kept live (no element of the key comes again): not pickled
        self.live[key] = (version, run)


_EXIT_HOOK: list[bool] = []


def _destroy_at_exit() -> None:
    """Once per process: ``destroy()`` the runs still live when the process exits. This is
    what ends the components of a DirectRunner ``multi_processing`` worker when the run is
    interrupted: the worker exits when the main process stops the pipeline (or on its own
    SIGINT from the terminal), and its interpreter runs exit hooks."""
    if not _EXIT_HOOK:
        _EXIT_HOOK.append(True)
        atexit.register(close_live_runs)


def _unused_input(run: StageRun) -> list[_t.Any]:
    """Streaming, when a key fails: the input of its failed component that it will never use,
    as chunks — the values of the step that failed, values queued behind them and chunks
    waiting out of order."""
    error = _t.cast(StepError, run.error)
    comp = run.engine.runners[error.component].comp if error.component in run.engine.runners else None
    out: list[_t.Any] = []
    for edge, port in run.engine.inputs.items():
        if port.edge.target != error.component:
            continue
        first = port.received - len(port.queue)
        if error.phase == "step" and comp is not None and first > error.step:
            out.append((edge, error.step, [comp.__dict__.get(port.edge.target_field)], False))
        out += [(edge, first + i, [v], False) for i, v in enumerate(port.queue)]
    for edge, waiting in run.pending.items():
        # (an end of stream waiting there too: the streaming lowering dead-letters a reader's eos)
        out += [(edge, start, values, not values and ended) for start, (values, ended) in sorted(waiting.items())
                if values or ended]
    return out


def close_live_runs() -> int:
    """``destroy()`` every run still live in this process, whatever its run (the exit hook of a
    worker process); returns how many there were. A runner closes its own run's context instead
    (``RunContext.close``). Per-bundle teardown must not do this: some runners tear a DoFn
    instance down after every bundle while the key's run goes on."""
    return RunContext.close_all()


def build(
    pipeline: beam.Pipeline,
    model: LoadedModel,
    plan: Plan,
    instances: _t.Sequence[tuple[str, dict[str, _t.Any]]],
    record: _t.Optional[str],
    errors_prefix: str,
    wave: dataio.Wave = dataio.ALL_KEYS,
    final_fields: _t.Sequence[str] = (),
    finals_prefix: str = "",
    state: _t.Optional[StateTarget] = None,
    context: _t.Optional[RunContext] = None,
    log: _t.Optional[LogConfig] = None,
    spread_starts: bool = True,
    local_rows: bool = False,
    one_process: bool = False,
) -> None:
    """Add the model's transforms to ``pipeline``; with keyed reads, for the keys of ``wave``.
    ``spread_starts``: the keys' start elements are reshuffled so that a runner with many workers
    spreads them (Beam's ``Create``); a runner with one worker process skips that shuffle (it
    cost ~2 s for 10,000 keys on the DirectRunner, a third of a run of 10 steps each).
    With ``final_fields``, each key's final values are written as JSON lines to ``finals_prefix*``.
    ``local_rows``: failure and final rows are written straight to this machine's disk
    (``lowering/rows.py``: for the DirectRunner) instead of through ``WriteToText``.
    ``one_process``: every bundle runs in this process (the DirectRunner in memory or on
    threads), so a key's run is kept live between its elements and not pickled into Beam state.
    The stage DoFns find ``context`` (the runner's, with its progress) by its run id."""
    source = ModelSource.of(model)
    overrides = {k: dict(v) for k, v in instances if v}
    # each key with its scenario's overrides, as small elements: a stage that starts keys reads a
    # key's overrides from its start element; a stage fed by others holds every key's overrides
    # (each stage builds the key's whole model, so a constructor that fails for the key fails the
    # key in every stage, and none of its stages writes output)
    starts = (pipeline | "Instances" >> StartElements([(k, dict(v or {})) for k, v in instances],
                                                      reshuffle=spread_starts)
              .with_output_types(STAGE_INPUT))
    # data I/O (lowering/dataio/): keyed readers become Beam reads outside the stages, whose
    # keys then come from the data; many-key file/SQL writers hand their rows to Beam sinks
    io, edges, keys, errors, records = dataio.lower(pipeline, model, plan, instances, wave,
                                                    record is not None)
    plan = io.plan
    if context is not None and context.tracker is not None:
        context.tracker.stages = len(plan.stages)
    final_rows: list[_t.Any] = []
    resources = hints.component_resources(model)
    for stage in plan.stages:
        stage_overrides = overrides
        if stage.in_edges:
            stage_in = stage_input([edges[e.id] for e in stage.in_edges], f"Join {stage.name}")
        elif keys is None:  # no keyed reads: the scenarios' keys, each starting with its overrides
            stage_in = starts
            stage_overrides = {}
        else:  # the keys found in keyed data
            stage_in = keys | f"Start {stage.name}" >> beam.Map(lambda k: (k, None)).with_output_types(STAGE_INPUT)
        tags = [chunk_tag(e) for e in stage.out_edges]
        dofn = StartDoFn if stage_in is starts else StageDoFn  # (only starts: one element a key)
        run = beam.ParDo(dofn(source, stage, stage_overrides, record is not None, writers=io.writers(stage),
                                   final_fields=final_fields, state=state,
                                   run_id=context.run_id if context is not None else "", log=log,
                                   progress_dir=context.folder if context is not None else "",
                                   one_process=one_process))
        run.with_resource_hints(**hints.stage_hints(resources, stage.members).hints)  # in place
        outs = stage_in | f"Run {stage.name}" >> run.with_outputs(*tags, *io.tags(stage), RECORD, ERRORS, FINAL)
        io.write(stage, outs)
        for e in stage.out_edges:
            edges[e.id] = outs[chunk_tag(e)]
        records.append(outs[RECORD])
        errors.append(outs[ERRORS])
        final_rows.append(outs[FINAL])
    (tuple(errors) | "Errors" >> beam.Flatten()
     | "Write errors" >> rows_sink(errors_prefix, local_rows))
    if final_fields:
        (tuple(final_rows) | "Finals" >> beam.Flatten()
         | "Write finals" >> rows_sink(finals_prefix, local_rows))
    if record is not None:
        (tuple(records) | "Records" >> beam.Flatten()
         | "Write records" >> beam.io.WriteToParquetBatched(
             os.path.join(record, "messages" if wave.count == 1 else f"messages-wave{wave.index:05d}"),
             schema=SCHEMA, file_name_suffix=".parquet"))
