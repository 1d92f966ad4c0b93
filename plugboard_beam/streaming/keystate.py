"""Bounded per-key memory in a long streaming run whose keys come from the messages.

A month of asset ids is millions of keys; each must cost nothing once it has ended, and the
keys open at once are capped:

* **Ended keys leave no state.** When a key ends at a stage, its Beam state is cleared at
  once. How it ended (its failure row, "" if none) is remembered in a bounded in-memory record
  of recently ended keys, shared by the stage's DoFn instances in a worker process
  (``EndedKeys``: at most ``ENDED_LRU`` keys, each for at most ``--forget-ended-keys`` seconds,
  default ``FORGET_SECONDS``), so that input arriving after the end is dead-lettered with the
  reason. Once the key is forgotten (older, pushed out by newer ones, or, on a multi-worker
  runner, its input reaches another worker), a message for it starts it anew, as a new key.
  ``SequenceDoFn`` (keys without ``seq``) clears its numbering at the key's end of stream.
  (Beam processing-time timers were measured as the alternative: on the DirectRunner each
  pending timer is rescanned at every scheduling round; 2,000 pending timers made a run ~3x
  slower.)
* **Open keys are capped** (``--max-open-keys``, default ``MAX_OPEN_KEYS``): at a stage fed
  by a reader, a message that would open a key beyond the cap (counted per stage and worker
  process: on the DirectRunner, per run) is refused: it goes to the reader's dead-letter topic
  with the reason ``too many open keys ...``, is counted (``REFUSED_KEYS``) and the run
  reports how many at the end. The key leaves no state; a later message of it, once there is
  room, opens it (a key using ``seq`` then waits for its missing earlier messages: publishers
  should replay a refused key from its start).

On the DirectRunner, a key whose keyed state is empty also leaves no entry in the runner's
own per-key tables (``lowering/patches.py``: ``drop_empty_keyed_state``).
"""

from __future__ import annotations

from collections import OrderedDict
import time
import typing as _t

import apache_beam as beam
from apache_beam.metrics.metric import Metrics

from plugboard_beam.library.pubsub import Parsed
from plugboard_beam.lowering.beam import ENDED_AS, LATE, StageDoFn
from plugboard_beam.runtime.stage import decode_chunk
from plugboard_beam.streaming.pipeline import REFUSED, SequenceDoFn

#: counter (namespace ``plugboard_beam``): messages refused because too many keys were open
REFUSED_KEYS = "refused_keys"
#: default seconds an ended key is remembered (its late input is dead-lettered)
FORGET_SECONDS = 600.0
#: default cap on the keys open at once at a stage fed by a reader (per worker process)
MAX_OPEN_KEYS = 50_000
#: at most this many recently ended keys are remembered per stage and worker
ENDED_LRU = 10_000


class EndedKeys:
    """Keys that ended recently (key -> failure row, "" if none): at most ``capacity`` keys,
    each for at most ``seconds`` (oldest first out)."""

    def __init__(self, seconds: float = FORGET_SECONDS, capacity: int = ENDED_LRU,
                 clock: _t.Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self.clock = clock
        self._rows: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def add(self, key: str, row: str) -> None:
        self._rows[key] = (self.clock(), row)
        self._rows.move_to_end(key)
        self._expire()
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def get(self, key: str) -> _t.Optional[str]:
        self._expire()
        entry = self._rows.get(key)
        return None if entry is None else entry[1]

    def _expire(self) -> None:
        oldest = self.clock() - self.seconds
        while self._rows:
            first = next(iter(self._rows.values()))
            if first[0] > oldest:
                break
            self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


def refused_row(cap: int) -> str:
    """The ``LATE`` row of a message refused by the open-key cap."""
    return (f"{REFUSED}too many open keys: {cap} keys were open (--max-open-keys {cap}); a new key is "
            "refused until one ends")


class StreamingStageDoFn(StageDoFn):
    """The stage DoFn of a streaming run: ``StageDoFn`` whose ended keys leave no state, with
    the open-key cap (see the module docstring)."""

    def __init__(self, *args: _t.Any, forget_seconds: float = FORGET_SECONDS,
                 max_open_keys: _t.Optional[int] = None, **kwargs: _t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.forget_seconds = forget_seconds
        self.max_open_keys = max_open_keys  # None: no cap (a finite run, or a stage no reader feeds)

    def setup(self) -> None:
        super().setup()
        # recently ended keys, shared by this stage's instances in one process like its live runs
        # (kept in the run's context, ``runtime/context.py``)
        forget = self.forget_seconds
        self.ended = self.ctx.shared(f"ended:{self.uid}", lambda: EndedKeys(forget))
        self.refused = Metrics.counter("plugboard_beam", REFUSED_KEYS)

    def process(self, element: tuple[str, _t.Any],
                state: _t.Any = beam.DoFn.StateParam(StageDoFn.RUN)) -> _t.Iterator[_t.Any]:  # noqa: B008
        yield from self._handle(*element, state)

    def _handle(self, key: str, item: _t.Any, state: _t.Any) -> _t.Iterator[_t.Any]:
        """One element (``item`` None: a timer's check) of ``key``: refused or late for an ended
        key, else the stage's step; an ended key's state is cleared."""
        blob = state.read()
        if blob is None:
            row = self.ended.get(key)
            if row is None and self.max_open_keys is not None and item is not None \
                    and len(self.live) >= self.max_open_keys:
                self.refused.inc()
                row = refused_row(self.max_open_keys)
            if row is not None:  # input of a key that has ended here, or refused: late
                chunk = decode_chunk(item)
                if chunk is not None:
                    yield beam.pvalue.TaggedOutput(LATE, (key, chunk, row))
                return
        yield from self._process(key, item, state)
        after = state.read()
        if after is not None and after.startswith(ENDED_AS):  # ended: remembered in memory only
            self.ended.add(key, after[len(ENDED_AS):].decode())
            state.clear()
            self.live.pop(key, None)  # (nothing of an ended key stays counted as open)


class ForgetfulSequenceDoFn(SequenceDoFn):
    """``SequenceDoFn`` whose state of a key (its numbering and the message ids it has seen)
    is cleared at the key's end of stream (a message for it after that is numbered from 0
    and reaches the stage as input of an ended key: dead-lettered)."""

    def process(self, element: tuple[str, tuple[str, Parsed]],
                state: _t.Any = beam.DoFn.StateParam(SequenceDoFn.STATE)) -> _t.Iterator[_t.Any]:  # noqa: B008
        yield from super().process(element, state)
        if element[1][1].eos:
            state.clear()


__all__ = ["ENDED_LRU", "FORGET_SECONDS", "MAX_OPEN_KEYS", "REFUSED_KEYS", "EndedKeys", "ForgetfulSequenceDoFn",
           "StreamingStageDoFn", "refused_row"]
