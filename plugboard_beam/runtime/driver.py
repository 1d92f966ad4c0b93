"""Calls component lifecycle methods without an event loop where possible.

Most ``async def step`` bodies never really suspend: they compute and return. The driver
starts such a coroutine with ``send(None)`` and is done when it raises ``StopIteration``
(no loop, no task, no scheduling). Only a coroutine that really waits (``await
asyncio.sleep(0.1)``, async I/O) is handed to a private event loop, which resumes it where it
stopped. While the engine runs, that loop is registered as the thread's running loop, so
``asyncio.get_running_loop()`` inside a component works.

A runner that runs many keys one after the other gives their drivers one ``LoopPool``: a key
keeps its loop from its first call to its end, as before, but the loop is then handed to the
next key instead of being closed and made again (a new loop per key cost more than the key's
steps). Only a loop left with nothing pending is handed on (no task, callback, timer, async
generator or watched file descriptor of the key that used it); any other is closed, as before.
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


def _settled(loop: asyncio.AbstractEventLoop, ran: bool = True) -> bool:
    """Nothing of the last user is left in ``loop``: it may serve another key.

    ``ran``: whether the loop ran since it was taken. A loop that never ran can hold no task
    that started and now waits (a task made on it and never started waits in ``_ready``,
    checked below), so the walk over every task of the process is skipped then (a tenth of a
    key's cost with small keys, measured) unless a task factory was set on it."""
    if loop.is_closed() or loop.is_running():
        return False
    if (ran or loop.get_task_factory() is not None) and asyncio.all_tasks(loop):
        return False
    ready = getattr(loop, "_ready", None)
    scheduled = getattr(loop, "_scheduled", None)
    selector = getattr(loop, "_selector", None)
    if ready is None or scheduled is None or selector is None or ready or getattr(loop, "_asyncgens", None):
        return False
    if any(not handle.cancelled() for handle in scheduled):
        return False
    return len(selector.get_map()) <= 1  # the loop's own self-pipe only


class LoopPool:
    """Event loops handed from a key that has ended to the next one (see the module docstring).

    Keys alive at the same time (a Beam DoFn interleaves them) each hold a loop of their own;
    the pool keeps at most ``keep`` idle ones. ``close()`` closes them (a loop given back later
    is closed at once)."""

    __slots__ = ("_closed", "_free", "keep")

    def __init__(self, keep: int = 4) -> None:
        self._free: list[asyncio.AbstractEventLoop] = []
        self._closed = False
        self.keep = keep

    def take(self) -> asyncio.AbstractEventLoop:
        """An idle loop, or a new one."""
        while self._free:
            loop = self._free.pop()
            if not loop.is_closed():
                return loop
        return asyncio.new_event_loop()

    def give(self, loop: asyncio.AbstractEventLoop, ran: bool = True) -> None:
        """Take back ``loop`` from a key that has ended: kept if settled (and room), else closed.
        ``ran``: whether it ran since it was taken (see ``_settled``)."""
        if loop.is_running():
            return  # a call stuck on another thread (e.g. after Ctrl-C) still owns it
        if not self._closed and len(self._free) < self.keep and _settled(loop, ran):
            self._free.append(loop)
        elif not loop.is_closed():
            loop.close()

    def close(self) -> None:
        """Close the idle loops; loops given back from now on are closed."""
        self._closed = True
        while self._free:
            self._free.pop().close()


class Driver:
    """Runs sync methods directly and coroutines without a loop unless they really suspend.

    With ``pool``, its loop comes from (and on ``close`` goes back to) that ``LoopPool``."""

    __slots__ = ("_depth", "_loop", "_pool", "_ran", "_saved", "_timed")

    def __init__(self, pool: _t.Optional[LoopPool] = None) -> None:
        self._loop: _t.Optional[asyncio.AbstractEventLoop] = None
        self._ran = False  # the loop ran (``resume``) since it was made or taken
        self._saved: _t.Optional[asyncio.AbstractEventLoop] = None
        self._depth = 0
        self._timed: _t.Optional[TimedCalls] = None
        self._pool = pool

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (made, or taken from the pool, on first use)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop() if self._pool is None else self._pool.take()
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

    def do(self, fn: _t.Callable[[], _t.Any]) -> None:
        """``call(fn)`` whose result is not wanted (``init``, ``destroy``): a coroutine that
        returns without suspending is iterated, which costs no ``StopIteration`` (half of such a
        call, measured)."""
        result = fn()
        if type(result) is _Coroutine:
            for yielded in result.__await__():
                self.resume(result, yielded)
                break

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
        self._ran = True
        running = events._get_running_loop()
        events._set_running_loop(None)
        try:
            return loop.run_until_complete(_resume(coro, yielded))
        finally:
            events._set_running_loop(running)

    def close(self) -> None:
        """Close the private loop, if one was made (or give it back to the pool), and the worker
        of limited calls. The driver can be used again (with a new loop)."""
        if self._timed is not None:
            self._timed.close()
            self._timed = None
        if self._loop is not None and self._pool is not None:
            self._pool.give(self._loop, self._ran)
        elif self._loop is not None and not self._loop.is_closed() and not self._loop.is_running():
            # (a loop still running belongs to a call stuck on another thread, e.g. after Ctrl-C:
            # closing it would raise; it is left to that thread)
            self._loop.close()
        self._loop = None
        self._ran = False
