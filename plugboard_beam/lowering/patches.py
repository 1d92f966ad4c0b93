"""DirectRunner specifics for streaming (private Beam API; re-check on Beam upgrades).

The DirectRunner's streaming engine (BundleBasedDirectRunner) runs every transform on one
worker thread, and its Pub/Sub read does ``pull(max_messages=10, timeout=30)``: an idle
subscription blocks everything (other reads, timers, cancel) for ~30 s, and 10 messages per
pull caps throughput. We shorten the pull and take bigger batches. Dataflow is unaffected.
"""

from __future__ import annotations

import typing as _t

_installed = False


class _PullProxy:
    def __init__(self, client: _t.Any, timeout: float, max_messages: int) -> None:
        self._client, self._timeout, self._max = client, timeout, max_messages

    def pull(self, subscription: str, max_messages: int = 10, timeout: float = 30, **kw: _t.Any) -> _t.Any:
        return self._client.pull(subscription=subscription, max_messages=self._max, timeout=self._timeout, **kw)

    def __getattr__(self, name: str) -> _t.Any:
        return getattr(self._client, name)


def tune_pubsub_reads(timeout: float = 1.5, max_messages: int = 500) -> None:
    """Shorter, larger pulls for the DirectRunner's ReadFromPubSub (idempotent)."""
    global _installed
    if _installed:
        return
    from apache_beam.runners.direct import transform_evaluator as te

    evaluator = te._PubSubReadEvaluator
    original = evaluator._get_subscriber_client.__func__  # type: ignore[attr-defined]

    def patched(cls: _t.Any, transform: _t.Any) -> _t.Any:
        return _PullProxy(original(cls, transform), timeout, max_messages)

    evaluator._get_subscriber_client = classmethod(patched)  # type: ignore[assignment]
    _installed = True
