"""Helpers of the tests that run against the Pub/Sub emulator (one emulator per test module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import typing as _t

import pytest

from plugboard_beam.library.pubsub import subscriber_client
from plugboard_beam.testing.emulator import Emulator


def emulator_fixture(project: str) -> Callable[[], Iterator[Emulator]]:
    """A module-scoped fixture ``emulator``: the Pub/Sub emulator for ``project``, stopped after
    the module (``emulator = emulator_fixture(PROJECT)`` in a test module)."""

    @pytest.fixture(scope="module")
    def emulator() -> Iterator[Emulator]:
        with Emulator(project=project) as emu:
            yield emu

    return emulator


def clients() -> tuple[_t.Any, _t.Any]:
    """A publisher and a subscriber (the subscriber takes messages over 4 MB from the emulator)."""
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(), subscriber_client()


def resource_paths(project: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """``topic(name)`` and ``subscription(name)``: full resource paths in ``project``."""
    return (lambda name: f"projects/{project}/topics/{name}",
            lambda name: f"projects/{project}/subscriptions/{name}")
