"""Exceptions raised by plugboard_beam.

Every name of plugboard 0.9.0's ``plugboard.exceptions`` is here with the same meaning and
base classes, so ``except`` clauses written for plugboard keep working; some of our own
errors subclass them as well (``IOSetupError`` is both an ``IOControllerError`` and a
``PlugboardBeamError``; a model that fails validation is a ``ValidationError``).
"""

from __future__ import annotations


# ----------------------------------------------------------- plugboard 0.9.0's exceptions
class ChannelError(Exception):
    """Raised for channel related errors."""


class ChannelClosedError(ChannelError):
    """Raised when a closed channel is accessed."""


class ChannelNotConnectedError(ChannelError):
    """Raised when using a channel that is not connected."""


class ChannelSetupError(ChannelError):
    """Raised when a channel is set up incorrectly."""


class IOControllerError(Exception):
    """Raised for IO controller related errors."""


class IOStreamClosedError(IOControllerError):
    """An IO stream is closed: a reader's ``step()`` after its last row, or ``read()`` /
    ``write()`` on a closed ``IOController``. The engines (as plugboard's ``Component.run``)
    take it from a component whose IO is closed as the end of that component, not a failure."""


class EventStreamClosedError(Exception):
    """Raised when there are no more event producers running."""


class NoMoreDataException(Exception):
    """Raised by a data reader's fetch when there is no more data to fetch."""


class RegistryError(Exception):
    """Raised when an unknown class is requested from a registry."""


class StateBackendError(Exception):
    """Raised for state backend related errors."""


class NotFoundError(StateBackendError):
    """Raised when a resource is not found."""


class NotInitialisedError(Exception):
    """Raised attempting to step or run a process or component that has not been initialised."""


class EventError(Exception):
    """Raised for event related errors."""


class UnrecognisedEventError(EventError):
    """Raised when an unrecognised event is encountered."""


class ValidationError(Exception):
    """Raised when an invalid process or component is encountered."""


class ConstraintError(Exception):
    """Raised when a constraint is violated.

    In a tuning study the trial is infeasible: its objective(s) take ``objective_value`` if
    given, else -inf when maximising and +inf when minimising. Outside tuning it fails the key
    like any other exception.
    """

    def __init__(self, *args: object, objective_value: float | None = None) -> None:
        super().__init__(*args)
        self.objective_value = objective_value


class ProcessStatusError(Exception):
    """Raised when a process is in an invalid state for the requested operation."""


# --------------------------------------------------------------------- plugboard_beam's own

class PlugboardBeamError(Exception):
    """Base class of every error plugboard_beam raises on purpose."""


class UserError(PlugboardBeamError):
    """A mistake in what the user gave us (model, arguments, options): shown without traceback."""


class Interrupted(PlugboardBeamError):
    """The user stopped a run (Ctrl-C) and it was shut down cleanly."""


class IOSetupError(IOControllerError, PlugboardBeamError):
    """A component class declares its IO in a way that cannot work (plugboard's
    ``IOSetupError``: an ``IOControllerError``)."""


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
