"""Exceptions raised by plugboard_beam."""

from __future__ import annotations


class PlugboardBeamError(Exception):
    """Base class of every error plugboard_beam raises on purpose."""


class UserError(PlugboardBeamError):
    """A mistake in what the user gave us (model, arguments, options): shown without traceback."""


class Interrupted(PlugboardBeamError):
    """The user stopped a run (Ctrl-C) and it was shut down cleanly."""


class IOSetupError(PlugboardBeamError):
    """A component class declares its IO in a way that cannot work."""


class StepError(PlugboardBeamError):
    """A component raised in ``init``, ``step`` or ``destroy``.

    Names the component, the key (model instance) and the step index, and keeps the original
    exception as ``__cause__``.
    """

    def __init__(self, component: str, key: str, step: int, phase: str, error: BaseException) -> None:
        self.component = component
        self.key = key
        self.step = step
        self.phase = phase
        self.error_type = type(error).__name__
        self.error_message = str(error)
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"step {self.step} (counting from 0)" if self.phase == "step" else self.phase
        key = f" (key {self.key!r})" if self.key and self.key != "default" else ""
        return f"component '{self.component}'{key} failed in {where}: {self.error_type}: {self.error_message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable across Beam worker processes even when the cause is not.
        return (
            _rebuild_step_error,
            (self.component, self.key, self.step, self.phase, self.error_type, self.error_message),
        )


def _rebuild_step_error(component: str, key: str, step: int, phase: str, error_type: str, message: str) -> StepError:
    err = StepError.__new__(StepError)
    err.component, err.key, err.step, err.phase = component, key, step, phase
    err.error_type, err.error_message = error_type, message
    Exception.__init__(err, err.describe())
    return err
