"""The Beam patches still take effect on the installed Beam (and are refused on others)."""

from __future__ import annotations

import logging
import typing as _t

import pytest

from plugboard_beam.lowering import patches


def test_installed_beam_is_a_tested_version() -> None:
    assert patches.beam_version() in patches.TESTED


def test_pubsub_read_patch_shortens_pulls(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.direct import transform_evaluator as te

    assert patches.tune_pubsub_reads(timeout=1.5, max_messages=500)
    calls: list[dict[str, _t.Any]] = []
    replies = [["m1"], [], []]

    class Response:
        def __init__(self, messages: list[str]) -> None:
            self.received_messages = messages

    class FakeClient:
        def pull(self, **kw: _t.Any) -> Response:
            calls.append(kw)
            return Response(replies.pop(0))

    class State:
        client = FakeClient()

    # Beam's evaluator asks its client cache for the subscriber; ours must wrap what it returns.
    monkeypatch.setattr(te._PubSubReadEvaluator, "_get_subscriber_client_state_unlocked",
                        classmethod(lambda cls, transform: State()))
    monkeypatch.setattr(patches.ACTIVITY, "last", 0.0)  # idle
    client = te._PubSubReadEvaluator._get_subscriber_client(object())
    assert isinstance(client, patches._PullProxy)
    # Beam calls pull(subscription=..., max_messages=10, timeout=30): we ask for more, sooner.
    sub = "projects/p/subscriptions/s"
    assert client.pull(subscription=sub, max_messages=10, timeout=30).received_messages == ["m1"]
    assert calls[0] == {"subscription": sub, "max_messages": 500, "timeout": 1.5}
    # A message was pulled: the pipeline is busy, so the next pulls (of any read) return at
    # once instead of holding the single evaluator thread.
    client.pull(subscription="projects/p/subscriptions/other", max_messages=10, timeout=30)
    assert calls[1] == {"subscription": "projects/p/subscriptions/other", "max_messages": 500, "timeout": 1.5,
                        "return_immediately": True}
    # Idle for longer than hot_seconds: back to waiting pulls.
    monkeypatch.setattr(patches.ACTIVITY, "last", 0.0)
    client.pull(subscription=sub, max_messages=10, timeout=30)
    assert "return_immediately" not in calls[2]


def test_state_cache_patch_takes_effect() -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    assert patches.tune_direct_runner()
    assert worker_handlers.STATE_CACHE_SIZE_MB == 0


def test_untested_beam_version_skips_patches(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    monkeypatch.setattr(patches, "beam_version", lambda: (9, 99))
    monkeypatch.setattr(worker_handlers, "STATE_CACHE_SIZE_MB", 100)
    with caplog.at_level(logging.WARNING, logger="plugboard_beam"):
        assert not patches.tune_direct_runner()
    assert worker_handlers.STATE_CACHE_SIZE_MB == 100
    assert "9.99" in caplog.text and "skipped" in caplog.text
