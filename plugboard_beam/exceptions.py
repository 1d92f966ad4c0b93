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

    #: further failures of the same key (set by the failure sequence)
    also: list[StepError]

    def __init__(self, component: str, key: str, step: int, phase: str, error: BaseException, *,
                 field: str = "") -> None:
        self.component = component
        self.key = key
        self.step = step
        self.phase = phase
        self.field = field
        self.error_type = type(error).__name__
        self.error_message = str(error)
        self.also = []
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: component, key, step and reason (``Failure.message``)."""
        return describe_failure(self.component, self.key, self.step, self.phase, self.field, self.error_type,
                                self.error_message)

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable across Beam worker processes even when the cause is not.
        return (
            _rebuild_step_error,
            (self.component, self.key, self.step, self.phase, self.error_type, self.error_message, self.field),
        )


def _rebuild_step_error(component: str, key: str, step: int, phase: str, error_type: str, message: str,
                        field: str = "") -> StepError:
    err = StepError.__new__(StepError)
    err.component, err.key, err.step, err.phase, err.field = component, key, step, phase, field
    err.error_type, err.error_message = error_type, message
    err.also = []
    Exception.__init__(err, err.describe())
    return err


def describe_failure(component: str, key: str, step: int, phase: str, field: str, error_type: str,
                     reason: str) -> str:
    """The one wording of a failure, on every engine."""
    keyed = key and key != "default"
    if not component:
        return f"{f'key {key!r}: ' if keyed else ''}{error_type}: {reason}"
    where = {
        "step": f"step {step} (counting from 0)",
        "emit": f"step {step} (counting from 0), sending output '{field}'",
        "record": f"step {step} (counting from 0), recording output '{field}'",
        "construct": "its constructor",
        "read": f"reading its data (row {step}, counting from 0)" if step > 0 else "reading its data",
        "write": f"writing its rows (step {step}, counting from 0)" if keyed else "writing its rows",
    }.get(phase, phase)
    return f"component '{component}'{f' (key {key!r})' if keyed else ''} failed in {where}: {error_type}: {reason}"


class ConstraintError(Exception):
    """Raised by a component when a constraint is violated (plugboard 0.9.0's
    ``plugboard.exceptions.ConstraintError``). In a tuning study the trial is infeasible: its
    objective(s) take ``objective_value`` if given, else -inf when maximising and +inf when
    minimising. Outside tuning it fails the key like any other exception."""

    def __init__(self, *args: object, objective_value: float | None = None) -> None:
        super().__init__(*args)
        self.objective_value = objective_value
