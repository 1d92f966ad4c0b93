"""The streaming lowering: Pub/Sub in, keyed stateful stages, Pub/Sub out, loops via feedback topics.

    ReadFromPubSub (each reader's subscription; feedback multiplexed or on its own subscription)
      -> Route: feedback chunks to their stage; reader messages parsed, ordered by ``seq``
         (or sequenced in arrival order, deduplicated by message id) into chunks for the
         reader's targets; malformed ones to the dead-letter topic
      -> stage DoFns (the batch ``StageDoFn``: state per key in Beam state)
      -> cut edges: chunk -> Pub/Sub message -> WriteToPubSub(feedback topic)
      -> PubSubWriter messages -> WriteToPubSub(writer topic)
      -> stage completions -> WriteToPubSub(control topic)
"""

from __future__ import annotations

import pickle
import typing as _t

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from plugboard_beam.library.pubsub import Parsed, Rejected, parse_message
from plugboard_beam.lowering.beam import DONE, ModelSource, StageDoFn, writer_tag
from plugboard_beam.lowering.plan import Plan, chunk_tag
from plugboard_beam.runtime.stage import Chunk
from plugboard_beam.spec.load import LoadedModel
from plugboard_beam.streaming.resources import ReaderInfo, Resources

FEEDBACK = "pbb"  # attribute marking our own feedback messages


def stage_tag(stage_id: int) -> str:
    """Output tag of chunks for one stage."""
    return f"s{stage_id}"


def encode_chunk(run_id: str, key: str, chunk: Chunk) -> PubsubMessage:
    """A feedback chunk as a Pub/Sub message (values pickled: they are ours, not users')."""
    edge, start, values, ended = chunk
    return PubsubMessage(pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL), {
        FEEDBACK: "chunk", "run": run_id, "key": key, "edge": str(edge), "start": str(start),
        "end": "1" if ended else "0", "id": f"{key}/{edge}/{start}",
    })


class ReaderRoute(_t.NamedTuple):
    """Where one reader's fields go: (field index, edge id, target stage id) per out-edge."""

    reader: ReaderInfo
    targets: tuple[tuple[int, int, int], ...]


def reader_chunks(route: ReaderRoute, key: str, seq: int, msg: Parsed) -> _t.Iterator[_t.Any]:
    """A parsed reader message as chunks, one per out-edge, tagged by target stage."""
    for field_index, edge_id, stage_id in route.targets:
        values = [] if msg.eos else [msg.values[field_index]]
        yield beam.pvalue.TaggedOutput(stage_tag(stage_id), (key, (edge_id, seq, values, msg.eos)))


class RouteDoFn(beam.DoFn):
    """Sorts the messages of one subscription: feedback chunks, reader input, dead letters."""

    def __init__(self, run_id: str, route: _t.Optional[ReaderRoute], edge_stage: dict[int, int]) -> None:
        self.run_id = run_id
        self.route = route
        self.edge_stage = edge_stage

    def setup(self) -> None:
        self.dead = Metrics.counter("plugboard_beam", "dead_letters")
        self.stale = Metrics.counter("plugboard_beam", "stale_feedback")

    def process(self, msg: PubsubMessage) -> _t.Iterator[_t.Any]:
        attrs = msg.attributes or {}
        if attrs.get(FEEDBACK) == "chunk":
            if attrs.get("run") != self.run_id:
                self.stale.inc()  # left over from an earlier run
                return
            edge = int(attrs["edge"])
            chunk = (edge, int(attrs["start"]), pickle.loads(msg.data), attrs["end"] == "1")
            yield beam.pvalue.TaggedOutput(stage_tag(self.edge_stage[edge]), (attrs["key"], chunk))
            return
        if self.route is None:
            return
        reader = self.route.reader
        parsed = parse_message(msg.data, attrs, reader.fields, reader.key_attribute)
        if isinstance(parsed, Rejected):
            self.dead.inc()
            yield beam.pvalue.TaggedOutput("dead", PubsubMessage(msg.data or b"", {
                **{k: v for k, v in attrs.items() if k != FEEDBACK},
                "reason": parsed.reason, "reader": reader.name}))
            return
        if parsed.seq is None:
            yield beam.pvalue.TaggedOutput("unordered", (parsed.key, (msg.message_id or "", parsed)))
            return
        yield from reader_chunks(self.route, parsed.key, parsed.seq, parsed)


class SequenceDoFn(beam.DoFn):
    """Messages without ``seq``: numbered per key in arrival order; redeliveries dropped."""

    STATE = ReadModifyWriteStateSpec("seq", BytesCoder())
    REMEMBER = 10_000  # message ids kept per key for deduplication

    def __init__(self, route: ReaderRoute) -> None:
        self.route = route

    def process(self, element: tuple[str, tuple[str, Parsed]],
                state: _t.Any = beam.DoFn.StateParam(STATE)) -> _t.Iterator[_t.Any]:  # noqa: B008
        key, (message_id, parsed) = element
        blob = state.read()
        nxt, seen = pickle.loads(blob) if blob else (0, {})
        if message_id and message_id in seen:
            return
        if message_id:
            seen[message_id] = nxt
            if len(seen) > self.REMEMBER:
                for old in list(seen)[: len(seen) - self.REMEMBER]:
                    del seen[old]
        state.write(pickle.dumps((nxt + 1, seen)))
        yield from reader_chunks(self.route, key, nxt, parsed)


def to_message(item: tuple[bytes, dict[str, str]]) -> PubsubMessage:
    """A writer outbox entry as a Pub/Sub message."""
    data, attributes = item
    return PubsubMessage(data, attributes)


def done_message(item: tuple[str, int, str]) -> PubsubMessage:
    """A stage completion (and its error, if any) for the control topic."""
    key, stage_id, error = item
    return PubsubMessage(error.encode(), {"key": key, "stage": str(stage_id), "failed": "1" if error else "0"})


def build_streaming(
    pipeline: beam.Pipeline,
    model: LoadedModel,
    plan: Plan,
    scenarios: _t.Sequence[tuple[str, dict[str, _t.Any]]],
    res: Resources,
) -> None:
    """Add the streaming model's transforms to ``pipeline``.

    ``scenarios`` are the keys known in advance (each stage gets a start element for them);
    keys that only appear in messages start when their first message arrives.
    """
    from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub

    source = ModelSource.of(model)
    overrides = {k: dict(v) for k, v in scenarios if v}
    g = plan.graph
    edge_stage = {e.id: plan.stage_of(e.target).id for st in plan.stages for e in st.in_edges}
    cut_ids = {e.id for e in plan.cut}
    to_stage: dict[int, list[_t.Any]] = {st.id: [] for st in plan.stages}

    def route_for(reader: ReaderInfo) -> ReaderRoute:
        fields = list(reader.fields)
        return ReaderRoute(reader, tuple(
            (fields.index(e.source_field), e.id, edge_stage[e.id]) for e in g.out_edges(reader.name)))

    tags = [stage_tag(st.id) for st in plan.stages]
    for i, (read_args, reader) in enumerate(res.reads()):
        label = reader.name if reader else f"feedback{i}"
        msgs = pipeline | f"Read {label}" >> ReadFromPubSub(with_attributes=True, **read_args)
        route = route_for(reader) if reader else None
        routed = msgs | f"Route {label}" >> beam.ParDo(RouteDoFn(res.run_id, route, edge_stage)).with_outputs(
            *tags, "dead", "unordered")
        for st in plan.stages:
            to_stage[st.id].append(routed[stage_tag(st.id)])
        if reader is not None and route is not None:
            (routed["dead"] | f"Dead letters {label}" >> beam.Map(lambda m: m).with_output_types(PubsubMessage)
             | f"Write dead letters {label}" >> WriteToPubSub(reader.dead_letter_topic, with_attributes=True))
            seq = routed["unordered"] | f"Sequence {label}" >> beam.ParDo(SequenceDoFn(route)).with_outputs(*tags)
            for st in plan.stages:
                to_stage[st.id].append(seq[stage_tag(st.id)])
    keys = [k for k, _ in scenarios]
    starts = (pipeline | "Instances" >> beam.Create(keys)) if keys else None
    writers_of = set(res.writers)
    chunks_by_edge: dict[int, _t.Any] = {}
    for st in plan.stages:
        ins = list(to_stage[st.id])
        for e in st.in_edges:
            if e.id not in cut_ids and e.source not in plan.external:
                ins.append(chunks_by_edge[e.id])
        if starts is not None:
            ins.append(starts | f"Start {st.name}" >> beam.Map(lambda k: (k, None)))
        stage_in = ins[0] if len(ins) == 1 else tuple(ins) | f"Join {st.name}" >> beam.Flatten()
        writers = [m for m in st.members if m in writers_of]
        out_tags = [chunk_tag(e) for e in st.out_edges] + [writer_tag(w) for w in writers] + [DONE]
        outs = stage_in | f"Run {st.name}" >> beam.ParDo(StageDoFn(
            source, st, overrides, record=False, cut=cut_ids, writers=writers, emit_done=True)).with_outputs(*out_tags)
        for e in st.out_edges:
            if e.id in cut_ids:
                (outs[chunk_tag(e)]
                 | f"Encode {e.label}" >> beam.MapTuple(
                     lambda key, chunk, run=res.run_id: encode_chunk(run, key, chunk)).with_output_types(PubsubMessage)
                 | f"Feedback {e.label}" >> WriteToPubSub(res.feedback[e.id], with_attributes=True))
            else:
                chunks_by_edge[e.id] = outs[chunk_tag(e)]
        for w in writers:
            (outs[writer_tag(w)] | f"Message {w}" >> beam.Map(to_message).with_output_types(PubsubMessage)
             | f"Publish {w}" >> WriteToPubSub(res.writers[w], with_attributes=True))
        (outs[DONE] | f"Done {st.name}" >> beam.Map(done_message).with_output_types(PubsubMessage)
         | f"Control {st.name}" >> WriteToPubSub(res.control_topic, with_attributes=True))

