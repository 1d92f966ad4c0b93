"""One key's instance of a stage, fed by chunks that may arrive out of order.

A lowering that splits a model into stages (Beam DoFns, streaming workers) moves connector
values between them as **chunks**: ``(edge id, start step, values, ended)`` — consecutive
values of one connector for one key. ``StageRun`` puts chunks back in order (the j-th value
of a connector is its source's step j), drops chunks it has already seen (at-least-once
delivery), runs the shared engine and hands out the chunks it produced. It is plain Python
and picklable, so a lowering can keep it in keyed state between elements.
"""

from __future__ import annotations

from dataclasses import dataclass
import pickle
import time
import typing as _t

from plugboard_beam.exceptions import StepError
from plugboard_beam.graph.model import ModelGraph
from plugboard_beam.runtime.engine import Engine
from plugboard_beam.runtime.failure import finish

#: (edge id, source step of values[0], values, the connector ended after these values)
Chunk = tuple[int, int, list[_t.Any], bool]


def encode_chunk(chunk: Chunk) -> bytes:
    """A chunk between two stages of one pipeline (or from a keyed read into a stage): pickled
    once here, so a value that cannot travel fails its key (the stage DoFn) instead of the
    pipeline (Beam's coder), and the bytes cross a shuffle without being coded value by value;
    they never leave the pipeline's own shuffle."""
    return pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)


def decode_chunk(item: _t.Union[bytes, Chunk, None]) -> _t.Optional[Chunk]:
    """The inverse of ``encode_chunk``; ``None`` (start a key) and chunk tuples pass through."""
    if item is None or isinstance(item, tuple):
        return item
    chunk: Chunk = pickle.loads(item)
    return chunk



@dataclass(frozen=True)
class ReorderWindow:
    """How long the chunks of an input edge may wait for a missing earlier one (a ``seq`` gap of
    a reader): at most ``count`` chunks (0: no limit), at most ``seconds`` since the gap was first
    seen (0: no limit; checked when the key's next chunk arrives, and by ``check_windows`` from a
    timer: ``streaming/gaps.py``). After that the key fails,
    naming ``reader`` (as the component), the key and the missing ``seq`` (as the step)."""

    reader: str
    count: int
    seconds: float


class Unsequenced(list):  # type: ignore[type-arg]
    """The values of a reader chunk numbered in arrival order (a message without ``seq``). A key's
    messages all carry ``seq`` or none does: the first chunk of a reader edge decides, and a chunk
    of the other kind is set aside (``StageRun.mixed``) for the dead-letter path."""

    __slots__ = ()


#: why a chunk in ``StageRun.mixed`` was set aside, by whether it was numbered in arrival order
MIXED_REASONS = {
    True: "the message has no seq attribute but this key's messages have one (a key's messages all carry "
          "seq, or none does)",
    False: "the message has a seq attribute but this key's earlier messages had none (a key's messages all "
           "carry seq, or none does)",
}


class SeqGap(LookupError):
    """A key's input had a gap that its reorder window did not see filled."""


class StageRun:
    """Feeds, runs and drains one engine (one key of one stage)."""

    def __init__(self, engine: Engine, windows: _t.Optional[_t.Mapping[int, ReorderWindow]] = None) -> None:
        self.engine = engine
        self.pending: dict[int, dict[int, tuple[list[_t.Any], bool]]] = {}
        self.error: _t.Optional[StepError] = None
        self.also: list[StepError] = []
        self.closed = False
        #: reorder windows by input edge id
        self.windows: dict[int, ReorderWindow] = dict(windows or {})
        #: edge id -> wall-clock time its current gap was first seen
        self.gap_since: dict[int, float] = {}
        #: reader edge id -> whether its chunks are numbered in arrival order (set by the first)
        self.unsequenced: dict[int, bool] = {}
        #: reader chunks of the other kind than the edge's first (``Unsequenced``), to dead-letter
        self.mixed: list[Chunk] = []

    # ------------------------------------------------------------------ input
    def start(self) -> None:
        """Init the components (a failure is kept in ``error``)."""
        try:
            self.engine.init()
        except StepError as err:
            self.fail(err)

    def feed(self, chunk: Chunk) -> bool:
        """Accept a chunk; out-of-order ones wait, repeated ones are dropped (False: a repeat)."""
        edge_id, start, values, ended = chunk
        port = self.engine.inputs[edge_id]
        if edge_id in self.windows:  # a reader edge: with seq or in arrival order, never both
            arrival = type(values) is Unsequenced
            if self.unsequenced.setdefault(edge_id, arrival) is not arrival:
                self.mixed.append(chunk)
                return True
        if start < port.received or (start == port.received and port.closed):
            return False  # already applied (a redelivery)
        if start > port.received:
            queued = self.pending.setdefault(edge_id, {})
            if start in queued:
                return False  # already waiting (a redelivery)
            queued[start] = (values, ended)
            if self.windows:
                self.check_windows()
            return True
        self._apply(edge_id, values, ended)
        waiting = self.pending.get(edge_id)
        while waiting and port.received in waiting and not port.closed:
            self._apply(edge_id, *waiting.pop(port.received))
        if waiting is not None and not waiting:
            del self.pending[edge_id]
        if self.windows:
            self.gap_since.pop(edge_id, None)  # the front moved: a remaining gap is a new one
            self.check_windows()
        return True

    def check_windows(self) -> None:
        """Fail the key when a gap has outlived its reorder window (``ReorderWindow``)."""
        if self.error is not None:
            return
        now = time.time()
        for edge_id, waiting in self.pending.items():
            window = self.windows.get(edge_id)
            if window is None or not waiting:
                continue
            since = self.gap_since.setdefault(edge_id, now)
            over = window.count and len(waiting) >= window.count
            if not over and not (window.seconds and now - since >= window.seconds):
                continue
            missing = self.engine.inputs[edge_id].received
            later = sorted(waiting)
            why = (f"count {window.count}" if over else f"{window.seconds:g} s")
            self.fail(StepError(window.reader, self.engine.key, missing, "step", SeqGap(
                f"the message with seq {missing} never arrived: {len(later)} later message(s) (seq "
                f"{later[0]}..{later[-1]}) waited {now - since:.1f} s for it, beyond the reorder window "
                f"({why}; reorder_window_count={window.count}, reorder_window_seconds={window.seconds:g})")))
            return

    def _apply(self, edge_id: int, values: list[_t.Any], ended: bool) -> None:
        port = self.engine.inputs[edge_id]
        if self.error is None:
            port.put_all(values)
        port.received += len(values)
        if ended:
            port.close()

    # -------------------------------------------------------------------- run
    def advance(self, max_rounds: int = 16,
                on_progress: _t.Optional[_t.Callable[[str, Engine], None]] = None) -> _t.Iterator[list[Chunk]]:
        """Run as far as the inputs allow, yielding the output chunks every ``max_rounds`` rounds
        (one list per round of ``take``; after a failure, what the drain produced)."""
        engine = self.engine
        while self.error is None:
            try:
                engine.run(max_rounds=max_rounds)
            except StepError as err:
                self.fail(err)
            if on_progress is not None:
                on_progress(engine.key, engine)
            chunks = self.take()
            if chunks:
                yield chunks
            if engine.finished or engine.idle:
                break
        chunks = self.take()
        if chunks:
            yield chunks

    def take(self) -> list[Chunk]:
        """Output chunks produced since the last call (ends are sent once)."""
        chunks = []
        for eid, out in self.engine.outputs.items():
            if out.values or (out.ended and not out.end_sent):
                start, values, ended = out.take()
                out.end_sent = ended
                chunks.append((eid, start, values, ended))
        return chunks

    def fail(self, err: StepError) -> None:
        """Stop this key's stage after ``err`` (the failure protocol: drain, end every output,
        destroy every component). Outputs produced by the drain are left for ``take``."""
        if self.error is not None:
            self.also.append(err)
            return
        self.error = err
        self.also += finish(self.engine, err)[1:]

    def dump(self) -> bytes:
        """Pickled, without the model graph (the loader has it): smaller and faster, since a
        lowering keeping runs in keyed state writes this after every element."""
        graph = self.engine.graph
        self.engine.graph = None  # type: ignore[assignment]
        try:
            return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            self.engine.graph = graph

    @staticmethod
    def load(blob: bytes, graph: ModelGraph) -> StageRun:
        """The inverse of ``dump``."""
        run: StageRun = pickle.loads(blob)
        run.engine.attach(graph)
        return run

    @property
    def finished(self) -> bool:
        """Every component has ended (or the stage failed)."""
        return self.error is not None or self.engine.finished

    def close(self) -> list[StepError]:
        """Destroy every component once; return all failures of this key (first one first)."""
        if self.closed:
            return []
        self.closed = True
        errors = finish(self.engine)
        head = [self.error] if self.error is not None else []
        return head + self.also + errors

