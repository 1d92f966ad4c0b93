"""Time-limited component calls (``step_timeout``).

A blocking call cannot be interrupted in Python, so a component with a time limit has its
``init``/``step``/handler/``destroy`` calls run on a worker thread (one per engine, i.e. per
key and stage) while the engine waits at most the limit. A call that takes longer is
**abandoned**: the engine raises ``StepTimeout`` (its key fails through the failure protocol)
and goes on with other keys; the worker thread is a daemon, so it never holds up the exit of
the process, and a ``StepAbandoned`` exception is raised in it asynchronously, which ends a
call that is busy in Python code at once (a call blocked in C, like ``time.sleep`` or a socket
read, ends when that C call returns). Later calls get a fresh worker (and event loop).

Components without a limit are called on the engine's thread as before: the thread hand-off
(two queue operations, about 20-60 µs) is only paid where a limit is set.

The worker has its own ``Driver``, so coroutines that really suspend run on that thread's
private event loop; ``asyncio.get_running_loop()`` inside a limited component is that loop
(the same one for all of the engine's limited calls, until one is abandoned).
"""

from __future__ import annotations

import ctypes
import queue
import threading
import typing as _t

from plugboard_beam.runtime.driver import Driver

#: how long an idle worker thread waits for its next call before it exits (a new one starts
#: on demand, with the same event loop)
IDLE_SECONDS = 30.0


class StepTimeout(TimeoutError):
    """A component call took longer than its ``step_timeout``."""


class StepAbandoned(BaseException):
    """Raised asynchronously in a call that was abandoned after its time limit (a
    ``BaseException``, so ``except Exception`` in the component does not swallow it)."""


class _Call:
    __slots__ = ("done", "error", "finished", "fn", "result")

    def __init__(self, fn: _t.Callable[[], _t.Any]) -> None:
        self.fn = fn
        self.done = threading.Lock()  # held until the call has finished (cheaper than an Event)
        self.done.acquire()
        self.finished = False
        self.result: _t.Any = None
        self.error: _t.Optional[BaseException] = None


class _Worker:
    """One daemon thread running calls one at a time through ``driver``."""

    def __init__(self, driver: Driver, owner: TimedCalls) -> None:
        self.driver = driver
        self.owner = owner
        self.calls: queue.SimpleQueue[_t.Optional[_Call]] = queue.SimpleQueue()
        self.exited = False
        self.abandoned = False
        self.current: _t.Optional[_Call] = None
        self.thread = threading.Thread(target=self._main, name="plugboard-beam-timed-step", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            with self.driver:
                while True:
                    try:
                        call = self.calls.get(timeout=IDLE_SECONDS)
                    except queue.Empty:
                        with self.owner.lock:
                            if self.calls.empty():
                                self.exited = True
                                return
                        continue
                    if call is None:
                        return
                    self.current = call
                    try:
                        call.result = self.driver.call(call.fn)
                    except BaseException as exc:  # handed to the engine's thread
                        call.error = exc
                    finally:
                        self.current = None
                        call.finished = True
                        call.done.release()
                    if self.abandoned:
                        return
        except BaseException:  # StepAbandoned arriving between calls: the thread just ends
            pass
        finally:
            self.exited = True
            if self.abandoned:
                # an abandoned worker owns its loop alone: nobody else will close it
                try:
                    self.driver.close()
                except BaseException:
                    pass

    def abandon(self) -> None:
        """Stop waiting for this worker; interrupt its call if it is running Python code."""
        self.abandoned = True
        ident = self.thread.ident
        if ident is not None and self.thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(StepAbandoned))


class TimedCalls:
    """Runs calls on a worker thread, waiting at most a given time for each (see module doc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._worker: _t.Optional[_Worker] = None
        self._driver: _t.Optional[Driver] = None
        self.abandoned = 0  # calls abandoned so far

    def call(self, fn: _t.Callable[[], _t.Any], limit: float, what: str = "step") -> _t.Any:
        """``fn()`` (a coroutine it returns is run to completion) on the worker; raises
        ``StepTimeout`` when it has not finished after ``limit`` seconds."""
        job = _Call(fn)
        with self.lock:
            worker = self._worker
            if worker is None or worker.exited or worker.abandoned:
                if self._driver is None:
                    self._driver = Driver()
                worker = self._worker = _Worker(self._driver, self)
            worker.calls.put(job)
        if not job.done.acquire(timeout=limit):
            with self.lock:
                if not job.finished:
                    self.abandoned += 1
                    worker.abandon()
                    self._worker = None
                    self._driver = None  # the abandoned worker keeps (and closes) its loop
            if not job.finished:
                raise StepTimeout(f"{what} took longer than {limit:g} s (step_timeout); the call was abandoned")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """End the worker (after its current call) and close its event loop."""
        with self.lock:
            worker, self._worker = self._worker, None
            driver, self._driver = self._driver, None
        if worker is not None and not worker.exited:
            worker.calls.put(None)
            worker.thread.join(timeout=1.0)
        if driver is not None and (worker is None or not worker.thread.is_alive()):
            driver.close()
