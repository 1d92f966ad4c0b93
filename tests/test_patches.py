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
    monkeypatch.setattr(patches.ACTIVITY, "latest", None)
    client = te._PubSubReadEvaluator._get_subscriber_client(object())
    assert isinstance(client, patches._PullProxy)
    # Beam calls pull(subscription=..., max_messages=10, timeout=30): we ask for more, sooner.
    sub, other = "projects/p/subscriptions/s", "projects/p/subscriptions/other"
    assert client.pull(subscription=sub, max_messages=10, timeout=30).received_messages == ["m1"]
    assert calls[0] == {"subscription": sub, "max_messages": 500, "timeout": 1.5}
    # `sub` had the latest messages: another read's pull returns at once instead of holding
    # the single evaluator thread, while `sub` may still wait for its next message.
    client.pull(subscription=other, max_messages=10, timeout=30)
    assert calls[1] == {"subscription": other, "max_messages": 500, "timeout": 1.5, "return_immediately": True}
    client.pull(subscription=sub, max_messages=10, timeout=30)
    assert "return_immediately" not in calls[2]
    # Idle for longer than hot_seconds: every read waits again.
    monkeypatch.setattr(patches.ACTIVITY, "last", 0.0)
    replies.append([])
    client.pull(subscription=other, max_messages=10, timeout=30)
    assert "return_immediately" not in calls[3]


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


def test_worker_processes_start_in_their_own_session() -> None:
    import os

    from apache_beam.runners.portability import local_job_service

    assert patches.isolate_worker_signals()
    assert patches.isolate_worker_signals()  # idempotent: wrapped once
    proc = local_job_service.subprocess.Popen("sleep 2", shell=True)
    try:
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)
    finally:
        proc.kill()
        proc.wait()
    assert local_job_service.subprocess.PIPE == -1  # the rest of the module is Beam's as before
