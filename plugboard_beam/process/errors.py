"""The exception groups ``LocalProcess`` raises, as plugboard's process does.

plugboard runs a process's components in an ``asyncio.TaskGroup``, so a component that fails
in ``init()``, ``step()`` or ``destroy()`` reaches the caller inside an ``ExceptionGroup``
(``except* ConstraintError`` works). Here the step engine reports a ``StepError`` (component,
key, step, reason); ``LocalProcess`` raises it as ``StepErrorGroup``: a ``StepError`` (same
message and attributes) that is also an ``ExceptionGroup`` of the components' own exceptions.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.component.component import has_value
from plugboard_beam.exceptions import StepError, UserError, ValidationError


class StepErrorGroup(ExceptionGroup, StepError):
    """``StepError`` of the first failure, grouping the exceptions the components raised
    (each failure's ``__cause__``; ``also`` holds the later ``StepError``s)."""

    def __new__(cls, first: StepError, errors: _t.Sequence[StepError]) -> StepErrorGroup:
        causes = [_cause(e) for e in errors] or [_cause(first)]
        return super().__new__(cls, first.describe(), causes)

    def __init__(self, first: StepError, errors: _t.Sequence[StepError]) -> None:
        for name in ("component", "key", "step", "phase", "field", "error_type", "error_message", "frame",
                     "traceback"):
            setattr(self, name, getattr(first, name))
        self.also = [e for e in errors if e is not first]
        self.__cause__ = first.__cause__

    def __str__(self) -> str:
        return self.describe()

    @property
    def message(self) -> str:
        """``StepError.message`` (one line), not the group's message (which names the frame too)."""
        return str(StepError.message.__get__(self))

    def derive(self, excs: _t.Sequence[Exception]) -> ExceptionGroup[Exception]:  # type: ignore[override]
        return ExceptionGroup(self.message, excs)


def _cause(err: StepError) -> Exception:
    cause = err.__cause__
    return cause if isinstance(cause, Exception) else err


def grouped(err: StepError) -> StepErrorGroup:
    """``err`` (and its ``also``) as the group plugboard's process raises."""
    if isinstance(err, StepErrorGroup):
        return err
    group = StepErrorGroup(err, [err, *err.also])
    return group


class InvalidComponents(ExceptionGroup, UserError):
    """Components that cannot run (e.g. a constructor that skipped ``super().__init__``), one
    ``ValidationError`` each, raised by ``init()`` in a group as plugboard's process does."""

    def __new__(cls, errors: _t.Sequence[ValidationError]) -> InvalidComponents:
        return super().__new__(cls, "invalid components", list(errors))

    def __init__(self, errors: _t.Sequence[ValidationError]) -> None:
        pass

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.exceptions)

    def derive(self, excs: _t.Sequence[Exception]) -> ExceptionGroup[Exception]:  # type: ignore[override]
        return ExceptionGroup("invalid components", excs)


def unconstructed(components: _t.Iterable[_t.Any]) -> list[ValidationError]:
    """A ``ValidationError`` per component whose constructor did not run ``Component.__init__``."""
    return [
        ValidationError(f"Component {type(c).__name__} invalid: did you forget to call super().__init__ "
                        "in the constructor?")
        for c in components if not has_value(c, "_initial_values")  # (set by Component.__init__ only)
    ]


__all__ = ["InvalidComponents", "StepErrorGroup", "grouped", "unconstructed"]
