"""One key's instance of a stage, fed by chunks that may arrive out of order.

A lowering that splits a model into stages (Beam DoFns, streaming workers) moves connector
values between them as **chunks**: ``(edge id, start step, values, ended)`` — consecutive
values of one connector for one key. ``StageRun`` puts chunks back in order (the j-th value
of a connector is its source's step j), drops chunks it has already seen (at-least-once
delivery), runs the shared engine and hands out the chunks it produced. It is plain Python
and picklable, so a lowering can keep it in keyed state between elements.
"""

from __future__ import annotations

import pickle
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



class StageRun:
    """Feeds, runs and drains one engine (one key of one stage)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: dict[int, dict[int, tuple[list[_t.Any], bool]]] = {}
        self.error: _t.Optional[StepError] = None
        self.also: list[StepError] = []
        self.closed = False

    # ------------------------------------------------------------------ input
    def start(self) -> None:
        """Init the components (a failure is kept in ``error``)."""
        try:
            self.engine.init()
        except StepError as err:
            self.fail(err)

    def feed(self, chunk: Chunk) -> None:
        """Accept a chunk; out-of-order ones wait, repeated ones are dropped."""
        edge_id, start, values, ended = chunk
        port = self.engine.inputs[edge_id]
        if start < port.received or (start == port.received and port.closed):
            return  # already applied (a redelivery)
        if start > port.received:
            self.pending.setdefault(edge_id, {})[start] = (values, ended)
            return
        self._apply(edge_id, values, ended)
        waiting = self.pending.get(edge_id)
        while waiting and port.received in waiting and not port.closed:
            self._apply(edge_id, *waiting.pop(port.received))
        if waiting is not None and not waiting:
            del self.pending[edge_id]

    def _apply(self, edge_id: int, values: list[_t.Any], ended: bool) -> None:
        port = self.engine.inputs[edge_id]
        if self.error is None:
            put = port.put
            for v in values:
                put(v)
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

