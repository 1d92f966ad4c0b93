"""Calls component lifecycle methods without an event loop where possible.

Most ``async def step`` bodies never really suspend: they compute and return. The driver
starts such a coroutine with ``send(None)`` and is done when it raises ``StopIteration``
(no loop, no task, no scheduling). Only a coroutine that really waits (``await
asyncio.sleep(0.1)``, async I/O) is handed to a private event loop, which resumes it where it
stopped. While the engine runs, that loop is registered as the thread's running loop, so
``asyncio.get_running_loop()`` inside a component works.
"""

from __future__ import annotations

import asyncio
from asyncio import events
import types
import typing as _t

if _t.TYPE_CHECKING:
    from plugboard_beam.runtime.timelimit import TimedCalls

_Coroutine = types.CoroutineType


async def _resume(coro: _t.Coroutine[_t.Any, _t.Any, _t.Any], yielded: _t.Any) -> _t.Any:
    while True:
        if yielded is None:
            await asyncio.sleep(0)  # a bare yield: give the loop one turn
        else:
            # An asyncio future, yielded by the coroutine's own ``await``: wait for it here (the
            # coroutine re-reads its result when resumed). Clear the flag its await set, as a
            # Task would, or awaiting it again is refused.
            yielded._asyncio_future_blocking = False
            try:
                await yielded
            except BaseException:
                pass
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value


class Driver:
    """Runs sync methods directly and coroutines without a loop unless they really suspend."""

    __slots__ = ("_depth", "_loop", "_saved", "_timed")

    def __init__(self) -> None:
        self._loop: _t.Optional[asyncio.AbstractEventLoop] = None
        self._saved: _t.Optional[asyncio.AbstractEventLoop] = None
        self._depth = 0
        self._timed: _t.Optional[TimedCalls] = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (made on first use)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    @property
    def active(self) -> bool:
        """Whether the engine is inside ``with driver`` (running, initialising, destroying)."""
        return self._depth > 0

    def __enter__(self) -> Driver:
        if self._depth == 0:
            self._saved = events._get_running_loop()
            events._set_running_loop(self.loop)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            events._set_running_loop(self._saved)
            self._saved = None

    def call(self, fn: _t.Callable[[], _t.Any]) -> _t.Any:
        """Call ``fn()``; if it returns a coroutine, run that to completion."""
        result = fn()
        if type(result) is not _Coroutine:
            return result
        try:
            yielded = result.send(None)
        except StopIteration as stop:
            return stop.value
        return self.resume(result, yielded)

    def call_limited(self, fn: _t.Callable[[], _t.Any], limit: float, what: str = "step") -> _t.Any:
        """``call(fn)`` on a worker thread, waiting at most ``limit`` seconds (``timelimit.py``);
        raises ``StepTimeout`` after that."""
        if self._timed is None:
            from plugboard_beam.runtime.timelimit import TimedCalls

            self._timed = TimedCalls()
        return self._timed.call(fn, limit, what)

    def resume(self, coro: _t.Coroutine[_t.Any, _t.Any, _t.Any], yielded: _t.Any) -> _t.Any:
        """Finish a coroutine that suspended (``yielded`` is what it yielded) on the private loop."""
        loop = self.loop
        running = events._get_running_loop()
        events._set_running_loop(None)
        try:
            return loop.run_until_complete(_resume(coro, yielded))
        finally:
            events._set_running_loop(running)

    def close(self) -> None:
        """Close the private loop, if one was made (and the worker of limited calls)."""
        if self._timed is not None:
            self._timed.close()
            self._timed = None
        if self._loop is not None and not self._loop.is_closed() and not self._loop.is_running():
            # (a loop still running belongs to a call stuck on another thread, e.g. after Ctrl-C:
            # closing it would raise; it is left to that thread)
            self._loop.close()
        self._loop = None
