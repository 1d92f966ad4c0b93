"""Every patch of Apache Beam internals, in one place, each behind a version guard.

Each patch is applied only to the Beam versions it was measured on (``TESTED``); on any other
version it is skipped with one warning and Beam's own behaviour is kept, so an upgrade can never
silently run a patch against changed internals. ``tests/test_patches.py`` checks that each one
still takes effect on the installed Beam.

* ``tune_pubsub_reads`` — the DirectRunner's streaming Pub/Sub read does
  ``pull(max_messages=10, timeout=30)`` on its single evaluator thread: an idle subscription
  blocks every transform (other reads, timers, cancel) for ~30 s and 10 messages per pull caps
  throughput. Larger pulls, and only one read may wait: the pull of the subscription that had
  the latest messages waits for more (up to ``timeout``; it returns as soon as one arrives),
  pulls of the others return at once (``return_immediately``; ~8 ms on the emulator). So a
  second subscription — a run's feedback subscription beside the user's input — costs a few
  ms per loop iteration instead of a blocked pull (~0.5 s on the emulator). Once every read
  has been idle for ``hot_seconds``, all pulls wait again (little CPU while idle). Dataflow is
  unaffected (it has its own Pub/Sub source).
* ``tune_direct_runner`` — the FnApiRunner's in-memory state cache weighs every value it stores
  by walking all loaded modules (~1.5 ms per new key); our state is written once per element
  anyway, so the cache is turned off.
"""

from __future__ import annotations

import logging
import threading
import time
import typing as _t
import warnings

log = logging.getLogger("plugboard_beam")

#: Beam versions (major, minor) the patches were written and tested against
TESTED: tuple[tuple[int, int], ...] = ((2, 77),)


def beam_version() -> tuple[int, int]:
    """The installed Beam's (major, minor)."""
    import apache_beam

    major, minor = apache_beam.__version__.split(".")[:2]
    return int(major), int(minor)


def _guard(name: str) -> bool:
    version = beam_version()
    if version in TESTED:
        return True
    log.warning("Beam %d.%d is not one this patch was tested on (%s): %s is skipped; Beam's own "
                "behaviour is kept", *version, ", ".join(f"{a}.{b}" for a, b in TESTED), name)
    return False


class Activity:
    """Which subscription last had messages, and when (shared by every patched read)."""

    def __init__(self, hot_seconds: float) -> None:
        self.hot_seconds = hot_seconds
        self.latest: _t.Optional[str] = None
        self.last = 0.0
        self._lock = threading.Lock()

    def may_wait(self, subscription: str) -> bool:
        """A pull may wait for messages on the subscription that had the latest ones, or on
        any once every read has been idle for ``hot_seconds``; others return at once."""
        return (self.latest is None or self.latest == subscription
                or time.monotonic() - self.last >= self.hot_seconds)

    def saw_messages(self, subscription: str) -> None:
        with self._lock:
            self.latest, self.last = subscription, time.monotonic()


class _PullProxy:
    def __init__(self, client: _t.Any, timeout: float, max_messages: int, activity: Activity) -> None:
        self._client, self._timeout, self._max, self._activity = client, timeout, max_messages, activity

    def pull(self, subscription: str, max_messages: int = 10, timeout: float = 30, **kw: _t.Any) -> _t.Any:
        if not self._activity.may_wait(subscription):
            kw["return_immediately"] = True
        response = self._client.pull(subscription=subscription, max_messages=self._max, timeout=self._timeout, **kw)
        if response.received_messages:
            self._activity.saw_messages(subscription)
        return response

    def __getattr__(self, name: str) -> _t.Any:
        return getattr(self._client, name)


_applied: set[str] = set()


#: the activity clock of the installed read patch
ACTIVITY = Activity(hot_seconds=2.0)


def tune_pubsub_reads(timeout: float = 1.5, max_messages: int = 500) -> bool:
    """Larger pulls that do not hold the DirectRunner's one thread while the pipeline is busy
    (idempotent); whether applied."""
    if "pubsub_reads" in _applied:
        return True
    if not _guard("tune_pubsub_reads"):
        return False
    from apache_beam.runners.direct import transform_evaluator as te

    evaluator = te._PubSubReadEvaluator
    original = evaluator._get_subscriber_client.__func__  # type: ignore[attr-defined]

    def patched(cls: _t.Any, transform: _t.Any) -> _t.Any:
        return _PullProxy(original(cls, transform), timeout, max_messages, ACTIVITY)

    # return_immediately is deprecated for the real service; on the emulator it is what we want
    warnings.filterwarnings("ignore", message="The return_immediately flag is deprecated", category=DeprecationWarning)
    evaluator._get_subscriber_client = classmethod(patched)  # type: ignore[assignment]
    _applied.add("pubsub_reads")
    return True


def tune_direct_runner() -> bool:
    """Turn off the FnApiRunner's state cache (idempotent); whether applied."""
    if not _guard("tune_direct_runner"):
        return False
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0
    return True


class _NewSessionSubprocess:
    """``subprocess`` as seen by Beam's worker launcher: every ``Popen`` gets its own session."""

    def __init__(self, module: _t.Any) -> None:
        self._module = module

    def Popen(self, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:  # the name Beam calls
        kwargs.setdefault("start_new_session", True)
        return self._module.Popen(*args, **kwargs)

    def __getattr__(self, name: str) -> _t.Any:
        return getattr(self._module, name)


def isolate_worker_signals() -> bool:
    """Start the DirectRunner's ``multi_processing`` workers in their own session (idempotent);
    whether applied.

    A terminal's Ctrl-C goes to its whole foreground process group: the workers would die of
    it with a traceback each, before the main process stops the pipeline. In their own
    session only the main process gets it; it stops the pipeline, and each worker then exits
    by itself (its control channel closes), running its exit hooks (``destroy()`` of its live
    components, see ``lowering.beam.close_live_runs``)."""
    if "worker_signals" in _applied:
        return True
    if not _guard("isolate_worker_signals"):
        return False
    from apache_beam.runners.portability import local_job_service

    setattr(local_job_service, "subprocess", _NewSessionSubprocess(vars(local_job_service)["subprocess"]))
    _applied.add("worker_signals")
    return True
