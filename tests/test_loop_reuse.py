"""Issue 19: keys run one after the other share one event loop (``LoopPool``) instead of a new
loop per key, and still cannot see each other: a loop a key leaves anything in (a task, a
callback, a timer) is closed, never handed on, and the failing key is reported as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
import textwrap

import pytest

from plugboard_beam.cli.registry import get_runner
from plugboard_beam.lowering.options import RunOptions
from plugboard_beam.runners.base import RunFailed
from plugboard_beam.runtime.driver import Driver, LoopPool
from plugboard_beam.spec import load_model
from plugboard_beam.spec.scenarios import Scenario

PARTS = '''
import asyncio
import typing as _t
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict

#: what each key saw of its loop: key -> (loop id, tasks other than its own and timers, loop is running: the driver
#: runs a coroutine on it only once it suspends)
SEEN: dict[str, tuple[int, int, bool]] = {}


class Leaky(Component):
    """``leak`` (a key's argument) leaves work in the loop: a task that never ends, a timer, or
    nothing; ``fail`` makes the key fail at its first step (after the leak)."""

    io = IO(outputs=["x"])

    def __init__(self, leak: str = "", fail: bool = False, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._leak = leak
        self._fail = fail
        self._left = 2

    async def init(self) -> None:
        loop = asyncio.get_running_loop()
        others = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
        timers = [h for h in getattr(loop, "_scheduled", ()) if not h.cancelled()]
        SEEN[self._plugboard_beam_key] = (id(loop), len(others) + len(timers), loop.is_running())
        if self._leak == "task":
            self._task = loop.create_task(asyncio.sleep(3600))
        elif self._leak == "timer":
            loop.call_later(3600, print, "a timer of another key")
        await asyncio.sleep(0)  # really suspends: the key runs on the loop

    async def step(self) -> None:
        if self._fail:
            raise ValueError("boom")
        if self._left == 0:
            await self.io.close()
            return
        self.x = self._left
        self._left -= 1


class Sink(Component):
    io = IO(inputs=["x"])

    async def step(self) -> None:
        await asyncio.sleep(0)
'''

MODEL = """
plugboard:
  process:
    args:
      components:
      - {type: loopparts.Leaky, args: {name: src}}
      - {type: loopparts.Sink, args: {name: sink}}
      connectors:
      - {source: src.x, target: sink.x}
"""


def _model(tmp_path: Path) -> Path:
    (tmp_path / "loopparts.py").write_text(PARTS)
    path = tmp_path / "model.yaml"
    path.write_text(textwrap.dedent(MODEL).lstrip())
    return path


def test_keys_in_turn_share_a_clean_loop_and_never_see_a_failed_keys_leftovers(tmp_path: Path) -> None:
    model = load_model(_model(tmp_path))
    scenarios = [
        Scenario("a", {}),                                      # leaves nothing: its loop goes to b
        Scenario("b", {}),
        Scenario("c", {"src.leak": "task", "src.fail": True}),  # fails, leaving a task behind
        Scenario("d", {}),                                      # a loop without c's task
        Scenario("e", {"src.leak": "timer"}),                   # ends, leaving a timer
        Scenario("f", {}),
    ]
    with pytest.raises(RunFailed) as info:
        get_runner("local").run(model, RunOptions(scenarios=scenarios))
    report = info.value.report
    assert [(f.key, f.component, f.step, f.phase) for f in report.failures] == [("c", "src", 0, "step")]
    assert "boom" in report.failures[0].reason
    import loopparts  # the module the model imported

    seen = loopparts.SEEN
    assert set(seen) == set("abcdef")
    assert all(others == 0 for _, others, _ in seen.values()), seen
    assert seen["a"][0] == seen["b"][0] == seen["c"][0]  # one loop for the keys in turn
    # (d and f saw no task or timer: the loops c and e left them in were not handed on)
    assert report.steps["sink"] == 2 * 5 and report.steps["src"] == 3 * 5


def test_a_pool_hands_on_only_settled_loops_and_closes_the_rest() -> None:
    pool = LoopPool()
    driver = Driver(pool)
    with driver:
        first = asyncio.get_running_loop()
    driver.close()
    assert not first.is_closed()
    again = Driver(pool)
    with again:
        assert asyncio.get_running_loop() is first  # handed on, not made again
        first.call_later(3600, lambda: None)  # a timer left behind
    again.close()
    assert first.is_closed()  # not handed on with the timer in it
    third = Driver(pool)
    with third:
        loop = asyncio.get_running_loop()
        assert loop is not first and not loop.is_closed()

        async def wait() -> None:
            await asyncio.sleep(3600)

        task = loop.create_task(wait())  # a task left pending
    third.close()
    assert loop.is_closed() and not task.done()
    task.get_coro().close()  # (it never ran)
    fourth = Driver(pool)
    with fourth:
        idle = asyncio.get_running_loop()
    pool.close()
    fourth.close()  # given back to a closed pool: closed at once
    assert idle.is_closed()


def test_a_loop_that_never_ran_is_handed_on_without_walking_every_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop no coroutine ran on can hold no task that started and waits, so the walk over every
    task of the process (``asyncio.all_tasks``) is skipped for it; once a task factory is set (an
    eager task starts without the loop running) or the loop ran, it is walked as before."""
    import plugboard_beam.runtime.driver as driver_mod

    walks: list[object] = []
    real = asyncio.all_tasks
    monkeypatch.setattr(driver_mod.asyncio, "all_tasks", lambda loop=None: walks.append(loop) or real(loop))
    pool = LoopPool()
    quiet = Driver(pool)
    with quiet:
        first = asyncio.get_running_loop()
    quiet.close()
    assert walks == [] and not first.is_closed()  # handed on, no walk
    ran = Driver(pool)
    with ran:
        assert asyncio.get_running_loop() is first

        async def hop() -> None:
            await asyncio.sleep(0)

        ran.call(hop)  # really suspends: the loop runs
    ran.close()
    assert walks == [first] and not first.is_closed()
    eager = Driver(pool)
    with eager:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        gate = loop.create_future()

        async def wait() -> None:
            await gate

        task = loop.create_task(wait())  # started at once, now waits: the loop never ran
        assert not task.done()
    eager.close()
    assert loop.is_closed()  # not handed on with the waiting task in it
    assert walks[-1] is loop
    task.get_coro().close()
    pool.close()


def test_a_driver_without_a_pool_closes_its_loop() -> None:
    driver = Driver()
    with driver:
        loop = asyncio.get_running_loop()
    driver.close()
    assert loop.is_closed()


def test_an_ended_keys_engine_and_components_are_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """With many keys, an ended key's engine left as cyclic garbage piled up until the collector's
    next full pass (which walks every live object): ``Engine.release`` drops its wiring."""
    import gc

    from plugboard_beam.component import Component
    from plugboard_beam.runtime.engine import Runner

    model = load_model(_model(tmp_path))
    gc.collect()
    gc.disable()
    try:
        report = get_runner("local").run(model, RunOptions(scenarios=[Scenario(f"k{i}", {}) for i in range(5)]))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, (Runner, Component))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert report.steps == {"src": 15, "sink": 10}
    assert left == []
