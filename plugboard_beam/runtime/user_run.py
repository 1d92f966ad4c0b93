"""A component's own ``run()``, driven by the step engine (plugboard parity).

plugboard's process calls each component's ``run()``, whose default loops ``step()`` until the
IO closes; users may override it (count steps, stop after ``max_steps``, set flags in a
``finally``). Here the engine decides when a component steps, so an overridden ``run()`` is
run as a coroutine the engine resumes: its ``self.step()`` (a ``StepGate``) suspends it until
the engine has placed the step's inputs; the step runs, the ``run()`` goes on to its next
``self.step()`` (or returns), and the engine sends the step's outputs. When the component's
inputs end (or its IO closes) the engine throws ``IOStreamClosedError`` into the waiting
``self.step()``, as plugboard's ``step()`` raises it, so the ``run()`` ends its own way.

A suspended coroutine cannot be pickled, so only engines that keep the component in memory
for the whole run (``LocalProcess``, ``--runner local``) honour it; the Beam runners refuse a
model with such a component (``refusal``).
"""

from __future__ import annotations

import asyncio
import types
import typing as _t

from plugboard_beam.component.component import GATED, STEP_GATE, Component, overrides_run
from plugboard_beam.exceptions import IOStreamClosedError, UserError
from plugboard_beam.runtime.driver import Driver

if _t.TYPE_CHECKING:
    from plugboard_beam.spec.load import LoadedModel

_Coroutine = types.CoroutineType


async def _until_gate(co: _t.Coroutine[_t.Any, _t.Any, _t.Any], yielded: _t.Any) -> bool:
    """Wait (on the driver's loop) for what ``co`` awaits until it asks for a step again
    (False) or returns (True)."""
    while yielded is not STEP_GATE:
        if yielded is None:
            await asyncio.sleep(0)
        else:  # an asyncio future awaited by the run() or its step: wait for it, as a Task would
            yielded._asyncio_future_blocking = False
            try:
                await yielded
            except BaseException:
                pass  # the coroutine re-reads the future's outcome when resumed
        try:
            yielded = co.send(None)
        except StopIteration:
            return True
    return False


class UserRun:
    """The coroutine of one component's own ``run()``."""

    __slots__ = ("co", "comp", "ended")

    def __init__(self, comp: Component) -> None:
        self.comp = comp
        self.co: _t.Optional[_t.Coroutine[_t.Any, _t.Any, _t.Any]] = None
        #: the ``run()`` returned (or raised): no more steps
        self.ended = False

    def _ended(self) -> None:
        self.ended = True
        setattr(self.comp, GATED, False)  # a step() by hand afterwards is plugboard's again

    def _advance(self, driver: Driver, throw: _t.Optional[BaseException] = None) -> bool:
        """Resume the coroutine (or throw into it) and wait until it asks for a step or
        returns; whether it returned. Its exceptions propagate (``ended`` is then set)."""
        co = self.co
        assert co is not None
        try:
            try:
                yielded = co.throw(throw) if throw is not None else co.send(None)
            except StopIteration:
                self._ended()
                return True
            if yielded is STEP_GATE:
                return False
            if driver.call(lambda: _until_gate(co, yielded)):
                self._ended()
                return True
            return False
        except BaseException:
            self._ended()
            raise

    def start(self, driver: Driver) -> bool:
        """Start ``run()`` up to its first ``self.step()``; whether it already returned."""
        setattr(self.comp, GATED, True)  # its self.step() now waits for the engine
        co = self.comp.run()
        if type(co) is not _Coroutine:
            self._ended()
            raise TypeError(f"{type(self.comp).__name__}.run() must be 'async def' (as in plugboard)")
        self.co = co
        return self._advance(driver)

    def step(self, driver: Driver) -> bool:
        """Run one step (the waiting ``self.step()``) and what ``run()`` does up to the next;
        whether ``run()`` returned."""
        if self.co is None:
            if self.start(driver):
                return True
        return self._advance(driver)

    def end(self, driver: Driver) -> None:
        """The inputs ended: ``IOStreamClosedError`` at the waiting ``self.step()``; the
        ``run()`` finishes (it may catch it and return, as plugboard's default does)."""
        if self.ended:
            return
        if self.co is None:
            if not driver.active:  # the run was never started (init, then destroy): plugboard
                self._ended()      # calls run() only from its process's run()
                return
            if self.start(driver):
                return
        try:
            self._advance(driver, IOStreamClosedError("Attempted read on a closed io controller."))
        except IOStreamClosedError:
            pass  # the run() did not catch it: it ended there, as plugboard's would

    def close(self) -> None:
        """Drop a ``run()`` still waiting (a failed or cancelled run): its ``finally`` runs."""
        if self.co is not None and not self.ended:
            self._ended()
            self.co.close()  # what its finally raises is the component's failure (phase "run")


def user_run_of(comp: Component) -> _t.Optional[UserRun]:
    """A ``UserRun`` for ``comp`` if its class overrides ``run()``, else None."""
    return UserRun(comp) if overrides_run(type(comp)) else None


def refusal(model: LoadedModel, runner: str) -> None:
    """Refuse (``UserError``) a model whose components' classes override ``run()`` on a runner
    that cannot honour it, naming each component, its class and its YAML line."""
    named = []
    for i, spec in enumerate(model.config.plugboard.process.args.components):
        cls = model.classes.get(spec.args.name)
        owner = overrides_run(cls) if cls is not None else None
        if cls is not None and owner:
            line = model.lines.of(("plugboard", "process", "args", "components", i))
            at = f"{model.path.name}:{line}: " if line is not None else ""
            named.append(f"{at}component '{spec.args.name}' ({cls.__name__}: run() defined by {owner})")
    if named:
        raise UserError(
            f"--runner {runner} cannot call a component's own run(): the Beam engines step a component one "
            "element at a time and keep no coroutine between bundles. Move what run() does into init(), "
            "step() and destroy(), or use --runner local, which runs it as plugboard does:\n  "
            + "\n  ".join(named)
        )


__all__ = ["UserRun", "refusal", "user_run_of"]
