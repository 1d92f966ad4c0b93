"""A run's long-lived objects are left out of the cycle collector's walks while it runs
(``runtime/heap.py``), and the process's collector is as it was afterwards."""

from __future__ import annotations

import gc
from pathlib import Path
import sys
import typing as _t
import weakref

import pytest

from plugboard_beam.cli.registry import get_runner
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.runners.local import LocalRunner
from plugboard_beam.runtime.heap import frozen_heap
from plugboard_beam.spec import load_model
from plugboard_beam.spec.scenarios import Scenario

CHAIN = Path(__file__).resolve().parent.parent / "benchmarks" / "models" / "chain.yaml"


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


def test_frozen_heap_freezes_what_lives_and_collects_what_is_made_inside() -> None:
    gc.collect()
    before = _Node()
    before_ref = weakref.ref(before)
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        inside = _Node()
        inside_ref = weakref.ref(inside)
        del inside, before
        gc.collect()
        assert inside_ref() is None  # made inside: collected as usual
        assert before_ref() is not None  # frozen: not walked, so its cycle is not freed yet
    gc.collect()
    assert before_ref() is None  # collectable again once the block ends


def test_a_freeze_of_the_process_own_or_an_enclosing_run_is_left_alone() -> None:
    with frozen_heap():
        frozen = gc.get_freeze_count()
        with frozen_heap():  # a run inside a run (e.g. a trial of a study)
            _Node()
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # the inner block did not unfreeze the outer one
    gc.freeze()  # the process's own
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # not unfrozen by us
    finally:
        gc.unfreeze()


def test_a_run_executes_with_the_heap_frozen_and_ends_unfrozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(CHAIN.parent))
    seen: list[int] = []
    real = LocalRunner.execute

    def execute(self: LocalRunner, *args: _t.Any) -> _t.Any:
        seen.append(gc.get_freeze_count())
        return real(self, *args)

    monkeypatch.setattr(LocalRunner, "execute", execute)
    report = get_runner("local").run(load_model(CHAIN), RunOptions(scenarios=[Scenario("k", {"source.steps": 5})]))
    assert sum(report.steps.values()) == 21
    assert seen and seen[0] > gc.get_freeze_count()  # frozen while it ran, not after
    assert "plugboard_beam.runtime.heap" in sys.modules
