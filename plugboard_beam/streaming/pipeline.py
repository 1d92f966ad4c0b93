"""The streaming lowering: Pub/Sub in, keyed stateful stages, Pub/Sub out, loops via the run's
feedback topic.

    ReadFromPubSub (each reader's subscription)
      -> ReaderDoFn: user messages parsed and checked (key, seq, JSON fields); ordered by ``seq``
         (or sequenced in arrival order, deduplicated by message id) into chunks for the
         reader's targets; malformed ones, and keys this run does not know, to the dead-letter
         topic with a reason
    ReadFromPubSub (the run's feedback subscription)
      -> FeedbackDoFn: authenticated chunks (see ``codec.py``) to their stage; anything else
         counted and dropped
      -> stage DoFns (the batch ``StageDoFn``: state per key in Beam state)
      -> cut edges: chunk -> sealed message -> WriteToPubSub(feedback topic)
      -> PubSubWriter messages -> WriteToPubSub(writer topic)
      -> stage completions and failures -> sealed message -> WriteToPubSub(control topic)
      -> reader input for a key that has failed or ended -> the reader's dead-letter topic
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import time
import typing as _t

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from plugboard_beam.graph.model import Edge
from plugboard_beam.library.json_limits import fit_message
from plugboard_beam.library.pubsub import Parsed, Rejected, parse_message
from plugboard_beam.logs import LogConfig, get_logger
from plugboard_beam.lowering.beam import DONE, LATE, REPEATED_INPUT, ModelSource
from plugboard_beam.lowering.dataio import WindowedFiles, windowed_writes
from plugboard_beam.lowering.hints import component_resources, stage_hints
from plugboard_beam.lowering.plan import Plan, chunk_tag, writer_tag
from plugboard_beam.runtime.failure import Failure
from plugboard_beam.runtime.stage import Chunk, ReorderWindow, Unsequenced
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.streaming.codec import KIND, Codec, Unencodable
from plugboard_beam.streaming.keys import key_problem
from plugboard_beam.streaming.resources import ReaderInfo, Resources

#: counters (namespace ``plugboard_beam``) the runner reports at the end
DEAD_LETTERS = "dead_letters"
REJECTED_INTERNAL = "rejected_internal"
UNENCODABLE = "unencodable_values"
#: internal chunks (loop feedback, ends of internal streams) for a key that had already ended
LATE_INTERNAL = "late_internal"
#: the start of a ``LATE`` row that is a refusal, not a failure (the rest is the reason; see keystate.py)
REFUSED = "refused:"
#: elements of the keyed (stateful) steps: the key is a str (deterministic coder, no copy step)
KEYED = beam.typehints.Tuple[str, beam.typehints.Any]


def stage_tag(stage_id: int) -> str:
    """Output tag of chunks for one stage."""
    return f"s{stage_id}"


class ReaderRoute(_t.NamedTuple):
    """Where one reader's fields go: (field index, edge id, target stage id) per out-edge."""

    reader: ReaderInfo
    targets: tuple[tuple[int, int, int], ...]


def reader_chunks(route: ReaderRoute, key: str, seq: int, msg: Parsed, arrival: bool = False) -> _t.Iterator[_t.Any]:
    """A parsed reader message as chunks, one per out-edge, tagged by target stage (``arrival``:
    numbered in arrival order, without ``seq``: its values are ``Unsequenced``)."""
    for field_index, edge_id, stage_id in route.targets:
        values: list[_t.Any] = [] if msg.eos else [msg.values[field_index]]
        if arrival:
            values = Unsequenced(values)
        yield beam.pvalue.TaggedOutput(stage_tag(stage_id), (key, (edge_id, seq, values, msg.eos)))


class DeadLetterLog:
    """The warnings of one DoFn instance's dead letters, bounded: the first ``burst`` of each
    ``period`` seconds one by one (reader, reason, key, seq), the rest counted and told in one
    record when the period is over (or at teardown). A hostile flood of bad messages costs a
    few log records a minute, not one each (every dead letter is on its topic and in the
    ``dead_letters`` counter of the end-of-run report)."""

    def __init__(self, burst: int = 20, period: float = 60.0,
                 clock: _t.Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.period = period
        self.clock = clock
        self.start = clock()
        self.told = 0
        self.held: dict[str, int] = {}  # reader -> dead letters not told one by one this period

    def __call__(self, reader: str, reason: str, attributes: _t.Mapping[str, str]) -> None:
        if self.clock() - self.start >= self.period:
            self.flush()
        if self.told < self.burst:
            self.told += 1
            get_logger("plugboard_beam.streaming").warning(
                "message dead-lettered", reader=reader, reason=reason[:500],
                key=repr(str(attributes.get("key", ""))[:100]), seq=repr(str(attributes.get("seq", ""))[:40]))
        else:  # (readers are the model's, not the messages': few)
            self.held[reader] = self.held.get(reader, 0) + 1

    def tick(self) -> None:
        """At the end of a bundle: tell what was held back once its period is over."""
        if self.held and self.clock() - self.start >= self.period:
            self.flush()

    def flush(self) -> None:
        """Tell what was held back; a new period starts."""
        for reader, n in sorted(self.held.items()):
            get_logger("plugboard_beam.streaming").warning(
                "messages dead-lettered, not logged one by one", reader=reader, count=n,
                seconds=round(self.clock() - self.start),
                hint="each is on the reader's dead-letter topic with its reason")
        self.held = {}
        self.told = 0
        self.start = self.clock()


def dead_letter(data: bytes, attributes: _t.Mapping[str, str], reason: str, reader: str,
                log: _t.Optional[DeadLetterLog] = None) -> PubsubMessage:
    """A user message for the dead-letter topic: its data and attributes, plus ``reason`` and
    ``reader``, cut to fit Pub/Sub (``json_limits.fit_message``: attribute values at 1024 bytes;
    data over the message limit cut, with ``truncated``, ``original_bytes`` and ``sha256``).
    Logged as a warning (through ``log``, which bounds the records, when given)."""
    attrs = {k: v for k, v in attributes.items() if k not in ("reason", "reader")}
    (log or DeadLetterLog())(reader, reason, attributes)
    return PubsubMessage(*fit_message(data or b"", {"reason": reason, "reader": reader, **attrs},
                                      keep=("reason", "reader")))


class ReaderDoFn(beam.DoFn):
    """A reader's messages: checked input to its stages, anything malformed dead-lettered."""

    def __init__(self, route: ReaderRoute, keys: _t.Optional[frozenset[str]],
                 ended: frozenset[str] = frozenset()) -> None:
        self.route = route
        self.keys = keys  # a finite run's keys; None when keys come from the messages
        self.ended = ended  # keys a checkpoint recorded as ended before this run

    def setup(self) -> None:
        self.dead = Metrics.counter("plugboard_beam", DEAD_LETTERS)
        self.dead_log = DeadLetterLog()

    def finish_bundle(self) -> None:
        self.dead_log.tick()

    def teardown(self) -> None:
        self.dead_log.flush()

    def process(self, msg: PubsubMessage) -> _t.Iterator[_t.Any]:
        attrs = msg.attributes or {}
        reader = self.route.reader
        parsed = parse_message(msg.data or b"", attrs, reader.fields, reader.key_attribute, reader.limits)
        if isinstance(parsed, Parsed):
            problem = key_problem(parsed.key)
            if problem is None and parsed.key in self.ended:
                problem = "the key had already ended (recorded in the checkpoint before this run)"
            if problem is None and self.keys is not None and parsed.key not in self.keys:
                problem = "the key is not one of this run's keys (--scenarios)"
            if problem is not None:
                parsed = Rejected(problem, parsed.key)
        if isinstance(parsed, Rejected):
            self.dead.inc()
            yield beam.pvalue.TaggedOutput("dead", dead_letter(msg.data, attrs, parsed.reason, reader.name,
                                                             self.dead_log))
            return
        if parsed.seq is None:
            yield beam.pvalue.TaggedOutput("unordered", (parsed.key, (msg.message_id or "", parsed)))
            return
        yield from reader_chunks(self.route, parsed.key, parsed.seq, parsed)


class FeedbackDoFn(beam.DoFn):
    """The run's feedback subscription: authentic chunks to their stage; the rest counted and dropped."""

    def __init__(self, codec: Codec, edge_stage: dict[int, int]) -> None:
        self.codec = codec
        self.edge_stage = edge_stage

    def setup(self) -> None:
        self.codec.load()  # the run's key, from its source (streaming/secrets.py); never pickled
        self.rejected = Metrics.counter("plugboard_beam", REJECTED_INTERNAL)

    def process(self, msg: PubsubMessage) -> _t.Iterator[_t.Any]:
        opened = self.codec.open_chunk(msg.data, msg.attributes)
        stage = None if opened is None else self.edge_stage.get(opened[1][0])
        if opened is None or stage is None:
            self.rejected.inc()
            return
        yield beam.pvalue.TaggedOutput(stage_tag(stage), opened)


class SequenceDoFn(beam.DoFn):
    """Messages without ``seq``: numbered per key in arrival order; redeliveries dropped. The
    state is JSON (next number, message ids seen), not pickle."""

    STATE = ReadModifyWriteStateSpec("seq", BytesCoder())
    REMEMBER = 10_000  # message ids kept per key for deduplication

    def __init__(self, route: ReaderRoute) -> None:
        self.route = route

    def setup(self) -> None:
        self.repeated = Metrics.counter("plugboard_beam", REPEATED_INPUT)

    def process(self, element: tuple[str, tuple[str, Parsed]],
                state: _t.Any = beam.DoFn.StateParam(STATE)) -> _t.Iterator[_t.Any]:  # noqa: B008
        key, (message_id, parsed) = element
        blob = state.read()
        saved: dict[str, _t.Any] = json.loads(blob) if blob else {"next": 0, "seen": []}
        nxt, seen = int(saved["next"]), list(saved["seen"])
        if message_id and message_id in seen:
            self.repeated.inc()
            return
        if message_id:
            seen.append(message_id)
            del seen[: max(0, len(seen) - self.REMEMBER)]
        state.write(json.dumps({"next": nxt + 1, "seen": seen}).encode())
        yield from reader_chunks(self.route, key, nxt, parsed, arrival=True)


@dataclass(frozen=True)
class EdgeInfo:
    """What the encoder of a cut edge says when a value cannot cross it."""

    id: int
    source: str
    source_field: str
    label: str


@beam.typehints.with_output_types(PubsubMessage)  # the main output; no identity step before WriteToPubSub
class EncodeDoFn(beam.DoFn):
    """Cut-edge chunks as sealed feedback messages. A value that cannot cross (see ``codec``)
    fails the key: a failure row naming component, field, key and step goes to the control
    topic, and the edge is ended for the key so that its stages finish."""

    def __init__(self, codec: Codec, edge: EdgeInfo) -> None:
        self.codec = codec
        self.edge = edge

    def setup(self) -> None:
        self.codec.load()
        self.unencodable = Metrics.counter("plugboard_beam", UNENCODABLE)

    def process(self, element: tuple[str, Chunk]) -> _t.Iterator[_t.Any]:
        key, chunk = element
        try:
            sealed = self.codec.seal_chunks(key, chunk)
        except Unencodable as exc:
            self.unencodable.inc()
            edge, start = chunk[0], chunk[1]
            e = self.edge
            step = int(exc.where.split()[1]) if exc.where.startswith("step ") else start
            row = Failure(key=key, component=e.source, step=step, phase="emit", error_type="TypeError",
                          reason=f"(edge {e.label}) {exc}", field=e.source_field).to_dict()
            yield beam.pvalue.TaggedOutput("failed", (key, row))
            sealed = [self.codec.seal_chunk(key, (edge, start, [], True))]
        for data, attrs in sealed:
            yield PubsubMessage(data, attrs)


class ControlDoFn(beam.DoFn):
    """Stage completions and failures as sealed control messages."""

    def __init__(self, codec: Codec, stage_id: _t.Optional[int]) -> None:
        self.codec = codec
        self.stage_id = stage_id

    def setup(self) -> None:
        self.codec.load()

    def process(self, item: tuple[_t.Any, ...]) -> _t.Iterator[PubsubMessage]:
        if self.stage_id is None:  # (key, failure row) from an encoder
            key, row = item
            data, attrs = self.codec.seal("done", {"key": key, "stage": None, "failure": row})
        else:  # (key, stage id, error row or "", {writer: messages published}) from a stage
            key, stage_id, error, published = item
            data, attrs = self.codec.seal("done", {"key": key, "stage": stage_id, "published": published,
                                                   "failure": json.loads(error) if error else None})
        yield PubsubMessage(data, attrs)


class LateDoFn(beam.DoFn):
    """Reader input a stage could not use because its key had failed (the input that failed
    it, input waiting behind it, input arriving later, its end of stream) or ended: to the reader's
    dead-letter topic with the reason (``key failed at step N ...``); late loop feedback values of a
    failed key are counted (``LATE_INTERNAL``, in the end-of-run report); after a normal end a loop's
    last values are unused by design (as in batch) and empty ends of internal streams lose nothing."""

    def __init__(self, reader_edges: dict[int, tuple[str, tuple[str, ...], str, int]]) -> None:
        self.reader_edges = reader_edges  # edge id -> (reader, fields, key attribute, field index)

    def setup(self) -> None:
        self.dead = Metrics.counter("plugboard_beam", DEAD_LETTERS)
        self.late = Metrics.counter("plugboard_beam", LATE_INTERNAL)
        self.dead_log = DeadLetterLog()

    def finish_bundle(self) -> None:
        self.dead_log.tick()

    def teardown(self) -> None:
        self.dead_log.flush()

    def process(self, item: tuple[str, Chunk, str]) -> _t.Iterator[PubsubMessage]:
        key, (edge, start, values, ended), row = item
        why = late_reason(row)
        info = self.reader_edges.get(edge)
        if info is None:
            # loop feedback values for a key that had failed (after a normal end, a loop's last
            # values are unused by design, as in batch; an empty end loses nothing)
            if values and row:
                self.late.inc()
            return
        if not values:
            if ended:  # a reader's end of stream (eos) came too late
                reader, _, key_attribute, _ = info
                self.dead.inc()
                yield dead_letter(b"", {key_attribute: key, "seq": str(start), "eos": "true"}, why, reader,
                                  self.dead_log)
            return
        reader, fields, key_attribute, index = info
        for i, value in enumerate(values):
            self.dead.inc()
            try:
                data = json.dumps({fields[index]: value}).encode()
            except (TypeError, ValueError):
                data = repr(value).encode()
            # (a message without seq had none: its arrival number is not one)
            attrs = {key_attribute: key} if type(values) is Unsequenced else {key_attribute: key, "seq": str(start + i)}
            yield dead_letter(data, attrs, why, reader, self.dead_log)


class OfReaders(beam.DoFn):
    """Dead letters of some readers (those sharing one dead-letter topic)."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def process(self, message: PubsubMessage) -> _t.Iterator[PubsubMessage]:
        if message.attributes.get("reader") in self.names:
            yield message


def late_reason(row: str) -> str:
    """The dead-letter reason for input of a key whose stage ended with ``row`` ("" = no failure)."""
    if not row:
        return "the key had already ended (input after its end of stream)"
    if row.startswith("!"):  # a reason of its own (``LATE``)
        return row[1:]
    if row.startswith(REFUSED):
        return row[len(REFUSED):]
    try:
        failure = Failure.from_json(row)
        return f"key failed at step {failure.step} in component '{failure.component}': {failure.error_type}: " \
               f"{failure.reason}"
    except ValueError:
        return "the key had failed"


def build_streaming(
    pipeline: beam.Pipeline,
    model: LoadedModel,
    plan: Plan,
    scenarios: _t.Sequence[tuple[str, dict[str, _t.Any]]],
    res: Resources,
    codec: Codec,
    keys: _t.Optional[_t.Collection[str]] = None,
    intakes: _t.Optional[_t.Mapping[str, _t.Any]] = None,
    ended: frozenset[str] = frozenset(),
    forget_seconds: _t.Optional[float] = None,
    max_open_keys: _t.Optional[int] = None,
    run_id: str = "",
    log: _t.Optional[LogConfig] = None,
) -> None:
    """Add the streaming model's transforms to ``pipeline``.

    ``scenarios`` are the keys started in advance (each stage gets a start element for them);
    keys that only appear in messages start when their first message arrives. ``keys`` (a
    finite run's keys) makes readers dead-letter messages of any other key. ``codec`` seals
    and opens the run's feedback and control messages. ``intakes`` (``--checkpoint``: reader ->
    ``checkpoint.IntakeSpec``) makes each reader's read journal its messages before acknowledging
    them (``patches.journal_pubsub_reads``); readers dead-letter messages of the ``ended`` keys.
    ``forget_seconds`` and ``max_open_keys`` bound the memory of keys (``keystate.py``; None: the
    defaults, no cap). ``run_id``: the runner's ``RunContext`` (progress, live runs), which the
    stage DoFns look up.
    """
    from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub

    from plugboard_beam.lowering.patches import INTAKE_ATTRIBUTE
    from plugboard_beam.streaming.gaps import GapTimedStageDoFn
    from plugboard_beam.streaming.keystate import FORGET_SECONDS, ForgetfulSequenceDoFn, StreamingStageDoFn

    forget = FORGET_SECONDS if forget_seconds is None else forget_seconds

    source = ModelSource.of(model)
    overrides = {k: dict(v) for k, v in scenarios if v}
    g = plan.graph
    edge_stage = {e.id: plan.stage_of(e.target).id for st in plan.stages for e in st.in_edges}
    cut_ids = {e.id for e in plan.cut}
    to_stage: dict[int, list[_t.Any]] = {st.id: [] for st in plan.stages}
    known = frozenset(keys) if keys is not None else None
    reader_edges: dict[int, tuple[str, tuple[str, ...], str, int]] = {}

    def route_for(reader: ReaderInfo) -> ReaderRoute:
        fields = list(reader.fields)
        out_edges = sorted(g.out_edges(reader.name), key=lambda e: e.id)
        for i, e in enumerate(out_edges):
            if i == 0 or all(other.source_field != e.source_field for other in out_edges[:i]):
                # one dead letter per message: the first edge of each field
                reader_edges[e.id] = (reader.name, reader.fields, reader.key_attribute, fields.index(e.source_field))
        return ReaderRoute(reader, tuple((fields.index(e.source_field), e.id, edge_stage[e.id]) for e in out_edges))

    windows = reorder_windows(model, g)
    tags = [stage_tag(st.id) for st in plan.stages]
    dead_by_reader: dict[str, list[_t.Any]] = {}
    for read_args, reader in res.reads():
        if reader is None:
            msgs = pipeline | "Read feedback" >> ReadFromPubSub(with_attributes=True, **read_args)
            routed = msgs | "Open feedback" >> beam.ParDo(FeedbackDoFn(codec, edge_stage)).with_outputs(*tags)
            for st in plan.stages:
                to_stage[st.id].append(routed[stage_tag(st.id)])
            continue
        label = reader.name
        read = ReadFromPubSub(with_attributes=True, **read_args)
        if intakes is not None:
            setattr(read._source, INTAKE_ATTRIBUTE, intakes[reader.name])
        msgs = pipeline | f"Read {label}" >> read
        route = route_for(reader)
        routed = msgs | f"Route {label}" >> beam.ParDo(ReaderDoFn(route, known, ended)).with_outputs(
            *tags, "dead", "unordered")
        for st in plan.stages:
            to_stage[st.id].append(routed[stage_tag(st.id)])
        dead_by_reader.setdefault(reader.name, []).append(routed["dead"])
        unordered = routed["unordered"]
        unordered.element_type = KEYED  # a deterministic key coder for the stateful step
        seq = unordered | f"Sequence {label}" >> beam.ParDo(ForgetfulSequenceDoFn(route)).with_outputs(*tags)
        for st in plan.stages:
            to_stage[st.id].append(seq[stage_tag(st.id)])
    starts = (pipeline | "Instances" >> beam.Create([k for k, _ in scenarios])) if scenarios else None
    writers_of = set(res.writers)
    readers_of = {r.name for r in res.readers}
    # FileWriters (issue 11.5): their rows leave the stage like a PubSubWriter's messages and go
    # to Beam's windowed file sink (lowering/dataio/windowed.py), one file set per window, instead of
    # each key's file being written only when the key ends
    files = windowed_writes(model, {name for _, o in scenarios for name in (o or {})}, res.run_id)
    chunks_by_edge: dict[int, _t.Any] = {}
    control: list[_t.Any] = []
    late: list[_t.Any] = []
    resources = component_resources(model)
    for st in plan.stages:
        ins = list(to_stage[st.id])
        for e in st.in_edges:
            if e.id not in cut_ids and e.source not in plan.external:
                ins.append(chunks_by_edge[e.id])
        if starts is not None:
            ins.append(starts | f"Start {st.name}" >> beam.Map(lambda k: (k, None)))
        stage_in = ins[0] if len(ins) == 1 else tuple(ins) | f"Join {st.name}" >> beam.Flatten()
        stage_in.element_type = KEYED  # a deterministic key coder for the stateful step
        writers = [m for m in st.members if m in writers_of or m in files]
        out_tags = [chunk_tag(e) for e in st.out_edges] + [writer_tag(w) for w in writers] + [DONE, LATE]
        timed = any(windows[e.id].seconds for e in st.in_edges if e.id in windows)  # a reorder window in seconds
        stage_fn = GapTimedStageDoFn if timed else StreamingStageDoFn
        fed = any(e.source in readers_of for e in st.in_edges)  # the open-key cap applies where keys open
        run = beam.ParDo(stage_fn(
            source, st, overrides, record=False, cut=cut_ids, writers=writers, emit_done=True,
            windows={e.id: windows[e.id] for e in st.in_edges if e.id in windows},
            forget_seconds=forget, max_open_keys=max_open_keys if fed else None,
            run_id=run_id, log=log))
        run.with_resource_hints(**stage_hints(resources, st.members).hints)  # in place
        outs = stage_in | f"Run {st.name}" >> run.with_outputs(*out_tags)
        for e in st.out_edges:
            if e.id in cut_ids:
                encoded = outs[chunk_tag(e)] | f"Encode {e.label}" >> beam.ParDo(
                    EncodeDoFn(codec, _edge_info(e))).with_outputs("failed", main="messages")
                encoded["messages"] | f"Feedback {e.label}" >> WriteToPubSub(
                    _t.cast(str, res.feedback_topic), with_attributes=True)
                control.append(encoded["failed"] | f"Seal failure {e.label}" >> beam.ParDo(ControlDoFn(codec, None)))
            else:
                chunks_by_edge[e.id] = outs[chunk_tag(e)]
        for w in writers:
            if w in files:
                outs[writer_tag(w)] | f"Files {w}" >> WindowedFiles(files[w])
                continue
            (outs[writer_tag(w)] | f"Message {w}" >> beam.Map(to_message).with_output_types(PubsubMessage)
             | f"Publish {w}" >> WriteToPubSub(res.writers[w], with_attributes=True))
        control.append(outs[DONE] | f"Seal done {st.name}" >> beam.ParDo(ControlDoFn(codec, st.id)))
        late.append(outs[LATE])
    (tuple(control) | "Control" >> beam.Flatten()
     | "Typed control" >> beam.Map(lambda m: m).with_output_types(PubsubMessage)
     | "Write control" >> WriteToPubSub(res.control_topic, with_attributes=True))
    late_dead = (tuple(late) | "Late" >> beam.Flatten() | "Late input" >> beam.ParDo(LateDoFn(reader_edges)))
    dead_topics = {r.name: r.dead_letter_topic for r in res.readers}
    for reader_name, pcolls in dead_by_reader.items():
        (tuple(pcolls) | f"Dead {reader_name}" >> beam.Flatten()
         | f"Typed dead {reader_name}" >> beam.Map(lambda m: m).with_output_types(PubsubMessage)
         | f"Write dead letters {reader_name}" >> WriteToPubSub(dead_topics[reader_name], with_attributes=True))
    if dead_topics:
        by_topic: dict[str, list[str]] = {}
        for name, topic in dead_topics.items():
            by_topic.setdefault(topic, []).append(name)
        for topic, names in by_topic.items():
            (late_dead | f"Late for {'+'.join(names)}" >> beam.ParDo(OfReaders(frozenset(names)))
             | f"Typed late {'+'.join(names)}" >> beam.Map(lambda m: m).with_output_types(PubsubMessage)
             | f"Write late dead letters {'+'.join(names)}" >> WriteToPubSub(topic, with_attributes=True))


def reorder_windows(model: LoadedModel, g: _t.Any) -> dict[int, ReorderWindow]:
    """The reorder window (``reorder_window_count``/``_seconds`` of its PubSubReader) of every
    reader edge: how long a key's messages wait for a missing earlier ``seq``."""
    from plugboard_beam.library.pubsub import PubSubReader, reorder_window

    out: dict[int, ReorderWindow] = {}
    for name, spec in model.component_specs().items():
        if issubclass(model.classes[name], PubSubReader):
            count, seconds = reorder_window(spec.args.extra_args())
            for e in g.out_edges(name):
                out[e.id] = ReorderWindow(name, count, seconds)
    return out


def _edge_info(e: Edge) -> EdgeInfo:
    return EdgeInfo(e.id, e.source, e.source_field, e.label)


def to_message(item: tuple[bytes, dict[str, str]]) -> PubsubMessage:
    """A writer outbox entry as a Pub/Sub message."""
    data, attributes = item
    return PubsubMessage(data, attributes)


__all__ = ["KIND", "build_streaming", "late_reason"]
