"""Exceptions raised by plugboard_beam.

Every name of plugboard 0.9.0's ``plugboard.exceptions`` is here with the same meaning and
base classes, so ``except`` clauses written for plugboard keep working; some of our own
errors subclass them as well (``IOSetupError`` is both an ``IOControllerError`` and a
``PlugboardBeamError``; a model that fails validation is a ``ValidationError``).
"""

from __future__ import annotations

from dataclasses import dataclass
import linecache
import os
from pathlib import Path
import sysconfig
import traceback as _traceback
import types
import typing as _t


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
    """The user stopped a run (Ctrl-C) and it was shut down cleanly. ``failures``: those of the
    keys that had failed before it stopped (``Failure`` objects, their dicts or JSON rows), so
    that stopping a run never hides what had already gone wrong."""

    def __init__(self, message: str, failures: _t.Sequence[_t.Any] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


class IOSetupError(IOControllerError, PlugboardBeamError):
    """A component class declares its IO in a way that cannot work (plugboard's
    ``IOSetupError``: an ``IOControllerError``)."""


#: bounds of what a failure keeps of the user's code: one source line, the traceback text
MAX_CODE_CHARS = 300
MAX_TRACEBACK_CHARS = 8_000
_OUR_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


@dataclass(frozen=True)
class UserFrame:
    """Where a failure happened in the user's own code: the innermost frame outside
    plugboard_beam, the standard library and installed packages (file, line, function and the
    line's text)."""

    file: str
    line: int
    function: str
    code: str = ""

    def describe(self) -> str:
        """``at model.py:87 in step: raise ValueError("heater tripped")`` (the path relative to
        the current folder when it is inside it)."""
        code = f": {self.code}" if self.code else ""
        return f"at {_shown_path(self.file)}:{self.line} in {self.function}{code}"

    def to_dict(self) -> dict[str, _t.Any]:
        """Plain JSON data."""
        return {"file": self.file, "line": self.line, "function": self.function, "code": self.code}

    @classmethod
    def from_dict(cls, data: _t.Any) -> UserFrame:
        """The inverse of ``to_dict``; anything malformed raises ``ValueError`` (it may come from a
        topic: validated, never trusted)."""
        if not isinstance(data, dict):
            raise ValueError("failure record: 'frame' must be an object")
        texts = {}
        for name, limit in (("file", 4096), ("function", 512), ("code", MAX_CODE_CHARS)):
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > limit:
                raise ValueError(f"failure record: frame {name!r} must be a string of at most {limit} characters")
            texts[name] = value
        line = data.get("line")
        if not isinstance(line, int) or isinstance(line, bool) or not 0 <= line < 2**31:
            raise ValueError("failure record: frame 'line' must be a line number")
        return cls(file=texts["file"], line=line, function=texts["function"], code=texts["code"])


def _shown_path(path: str) -> str:
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else path
    except (OSError, ValueError):
        return path


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib") if k in paths}
    return tuple(str(Path(r).resolve()) + os.sep for r in roots)


def _is_component_method(frame: types.FrameType) -> bool:
    # A method of a component class (``self`` is a plugboard_beam Component): the user's code even
    # when it is installed as a package (on Dataflow the user's modules travel as a wheel).
    owner = frame.f_locals.get("self")
    return any(c.__module__.startswith("plugboard_beam.component") for c in type(owner).__mro__[1:])


def user_frame(error: BaseException) -> _t.Optional[UserFrame]:
    """The innermost frame of the user's own code in ``error``'s traceback (or its cause's), or
    None: frames of plugboard_beam, the standard library and installed packages are skipped
    (an installed package's frame counts when it is a component's method)."""
    tb = error.__traceback__
    if tb is None and error.__cause__ is not None:
        tb = error.__cause__.__traceback__
    libraries = _library_roots()
    found: _t.Optional[tuple[types.FrameType, int]] = None
    for frame, lineno in _traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if name.startswith("<"):
            continue
        path = str(Path(name).resolve())
        if path.startswith(_OUR_PACKAGE):
            continue
        installed = f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path
        if (installed and not _is_component_method(frame)) or (not installed and path.startswith(libraries)):
            continue
        found = (frame, lineno)
    if found is None:
        return None
    frame, lineno = found
    code = linecache.getline(frame.f_code.co_filename, lineno).strip()
    return UserFrame(file=frame.f_code.co_filename, line=lineno, function=frame.f_code.co_name,
                     code=code[:MAX_CODE_CHARS])


def traceback_text(error: BaseException) -> str:
    """The whole traceback of ``error`` (with its causes) as text, its last
    ``MAX_TRACEBACK_CHARS`` characters (where the innermost frames are)."""
    text = "".join(_traceback.format_exception(error))
    return text if len(text) <= MAX_TRACEBACK_CHARS else "...\n" + text[-MAX_TRACEBACK_CHARS:]


class StepError(PlugboardBeamError):
    """A component raised in ``init``, ``step`` or ``destroy``.

    Names the component, the key (model instance) and the step index, and keeps the original
    exception as ``__cause__``. Where it happened in the user's code (``frame``) and the whole
    traceback as text (``traceback``) are captured when it is made, so they survive pickling
    to and from Beam workers and the JSON failure rows.
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
        self.frame = user_frame(error)
        self.traceback = traceback_text(error) if error.__traceback__ is not None else ""
        self.also = []
        super().__init__(self.describe())

    @property
    def message(self) -> str:
        """One line: component, key, step and reason (``Failure.message``)."""
        return describe_failure(self.component, self.key, self.step, self.phase, self.field, self.error_type,
                                self.error_message)

    def describe(self) -> str:
        """The message, then where in the user's code it happened (when known)."""
        return self.message + (f"\n    {self.frame.describe()}" if self.frame is not None else "")

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable across Beam worker processes even when the cause is not.
        return (
            _rebuild_step_error,
            (self.component, self.key, self.step, self.phase, self.error_type, self.error_message, self.field,
             self.frame, self.traceback),
        )


def _rebuild_step_error(component: str, key: str, step: int, phase: str, error_type: str, message: str,
                        field: str = "", frame: _t.Optional[UserFrame] = None, traceback: str = "") -> StepError:
    err = StepError.__new__(StepError)
    err.component, err.key, err.step, err.phase, err.field = component, key, step, phase, field
    err.error_type, err.error_message = error_type, message
    err.frame, err.traceback = frame, traceback
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
