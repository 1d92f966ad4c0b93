"""Streaming: the time side of a reader's reorder window (``reorder_window_seconds``).

``StageRun`` checks a key's reorder windows whenever a chunk arrives; a key whose missing
``seq`` never comes and that receives nothing more would wait for ever. ``GapTimedStageDoFn``
is the stage DoFn with a processing-time (``REAL_TIME``) timer per key: set when a gap is
waiting, for the moment its window ends; when it fires the key's run checks its windows again
(``StageDoFn._process`` with no chunk), which fails the key, naming reader, key and the missing
seq, through the failure protocol. The DirectRunner's streaming mode fires real-time timers
by the wall clock (tested against the emulator); Dataflow does too.
"""

from __future__ import annotations

import typing as _t

import apache_beam as beam
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from plugboard_beam.lowering.beam import StageDoFn
from plugboard_beam.streaming.keystate import StreamingStageDoFn


class GapTimedStageDoFn(StreamingStageDoFn):
    """``StreamingStageDoFn`` plus a timer that ends the reorder window of a waiting gap (module doc)."""

    GAP = TimerSpec("gap", TimeDomain.REAL_TIME)

    def process(self, element: tuple[str, _t.Any], state: _t.Any = beam.DoFn.StateParam(StageDoFn.RUN),  # noqa: B008
                timer: _t.Any = beam.DoFn.TimerParam(GAP)) -> _t.Iterator[_t.Any]:  # noqa: B008
        key = element[0]
        yield from self._handle(*element, state)
        self._arm(key, timer)

    @on_timer(GAP)
    def expire(self, key: _t.Any = beam.DoFn.KeyParam, state: _t.Any = beam.DoFn.StateParam(StageDoFn.RUN),  # noqa: B008
               timer: _t.Any = beam.DoFn.TimerParam(GAP)) -> _t.Iterator[_t.Any]:  # noqa: B008
        if state.read() is None:
            return  # the key has ended (its state cleared) or never started: nothing waits
        yield from self._handle(key, None, state)  # no chunk: the run checks its windows
        self._arm(key, timer)

    def _arm(self, key: str, timer: _t.Any) -> None:
        """Set the timer for the earliest end of a time window over a gap still waiting."""
        live = self.live.get(key)
        if live is None:
            return
        run = live[1]
        if run.finished:
            return
        due = [since + run.windows[edge].seconds for edge, since in run.gap_since.items()
               if edge in run.windows and run.windows[edge].seconds and run.pending.get(edge)]
        if due:
            timer.set(Timestamp.of(min(due) + 0.05))
