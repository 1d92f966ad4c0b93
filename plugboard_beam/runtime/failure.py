"""The one failure protocol: a typed failure record and the drain-then-destroy sequence.

Every engine (``LocalProcess``, the local runner, Beam batch stages, streaming stages) ends a
key that failed the same way (``finish``):

1. the failed component stops; so do the sources (nothing new enters the key);
2. every other component steps on the values it has already received (``Engine.drain``), so
   what the failed component sent before failing reaches its consumers; a component that
   fails while draining stops too;
3. every component's output streams end (downstream stages can finish);
4. ``destroy()`` runs once on every component, whatever happened before;

and describes it with one ``Failure`` record (key, component, step, phase, error type, reason,
where in the user's code it happened and that traceback as text, and the further errors as
``also``), which travels as JSON (``to_json``/``from_json``) on the
Beam errors output, the Dataflow failure files and the streaming control topic.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import typing as _t

from plugboard_beam.exceptions import StepError, UserFrame, describe_failure
from plugboard_beam.logs import get_logger

if _t.TYPE_CHECKING:
    from plugboard_beam.component.component import Component
    from plugboard_beam.runtime.engine import Engine
    from plugboard_beam.spec.load import KeyModel, LoadedModel

#: phases a failure can happen in
PHASES = ("construct", "init", "step", "emit", "record", "destroy", "run", "read", "write")


@dataclass(frozen=True)
class Failure:
    """One key's failure: where (component, key, step, phase, field) and why (error type, reason).

    ``also`` holds further failures of the same key (a component failing while the others
    drain, ``destroy()`` raising, another stage of the key failing); they have no ``also``
    of their own. ``frame`` is the innermost frame of the user's code (None when the failure
    did not come from it) and ``traceback`` the whole traceback as text, both captured where
    the exception happened (a Beam worker, a streaming stage).
    """

    key: str
    component: str
    step: int
    phase: str
    error_type: str
    reason: str
    field: str = ""
    also: tuple[Failure, ...] = ()
    frame: _t.Optional[UserFrame] = None
    traceback: str = ""

    # ------------------------------------------------------------ building
    @classmethod
    def of(cls, error: StepError, also: _t.Iterable[StepError] = ()) -> Failure:
        """From a ``StepError`` (and the later ones of the same key)."""
        return cls(key=error.key, component=error.component, step=error.step, phase=error.phase,
                   error_type=error.error_type, reason=cut_reason(error.error_message), field=error.field,
                   also=tuple(cls.of(e) for e in also), frame=error.frame, traceback=error.traceback)

    @classmethod
    def of_errors(cls, errors: _t.Sequence[StepError]) -> _t.Optional[Failure]:
        """The first error with the others as ``also`` (None when there are none)."""
        return cls.of(errors[0], errors[1:]) if errors else None

    def merged(self, other: Failure) -> Failure:
        """This failure with ``other`` (and its ``also``) appended to ``also``, without repeats."""
        seen = {f.flat() for f in (self, *self.also)}
        extra = [f for f in (other.flat(), *other.also) if f.flat() not in seen]
        return Failure(**{**self.__dict__, "also": (*self.also, *extra)})

    def flat(self) -> Failure:
        """This failure without ``also``."""
        return Failure(**{**self.__dict__, "also": ()}) if self.also else self

    # ------------------------------------------------------------- telling
    @property
    def message(self) -> str:
        """One line: component, key, step and reason (the same on every engine)."""
        return describe_failure(self.component, self.key, self.step, self.phase, self.field, self.error_type,
                                self.reason)

    def describe(self) -> str:
        """The message and where in the user's code it happened, then the same for each further
        failure (``also:``)."""
        return self.message + self._at() + "".join(f"\n    also: {a.message}{a._at('    ')}" for a in self.also)

    def _at(self, indent: str = "") -> str:
        return f"\n    {indent}{self.frame.describe()}" if self.frame is not None else ""

    def tracebacks(self) -> str:
        """The tracebacks captured for this failure and its ``also`` (``--debug``)."""
        return "\n".join(f"{f.message}\n{f.traceback.rstrip()}" for f in (self, *self.also) if f.traceback)

    def __str__(self) -> str:
        return self.message

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, _t.Any]:
        """Plain JSON data (``message`` included for readers that only print)."""
        return {"key": self.key, "component": self.component, "step": self.step, "phase": self.phase,
                "error_type": self.error_type, "reason": self.reason, "field": self.field,
                "message": self.message, "also": [a.to_dict() for a in self.also],
                "frame": self.frame.to_dict() if self.frame is not None else None, "traceback": self.traceback}

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: _t.Any) -> Failure:
        """The inverse of ``to_dict``; anything malformed raises ``ValueError`` (it may have come
        from a topic: it is validated, never trusted)."""
        if not isinstance(data, dict):
            raise ValueError("a failure record is a JSON object")

        def text(name: str, default: _t.Optional[str] = None) -> str:
            value = data.get(name, default)
            if not isinstance(value, str) or len(value) > 65536:
                raise ValueError(f"failure record: {name!r} must be a string")
            return value

        step = data.get("step", -1)
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError("failure record: 'step' must be an integer")
        phase = text("phase", "run")
        if phase not in PHASES:
            raise ValueError(f"failure record: unknown phase {phase!r}")
        also = data.get("also", [])
        if not isinstance(also, list) or len(also) > 1000:
            raise ValueError("failure record: 'also' must be a list")
        nested = []
        for item in also:
            if isinstance(item, str):  # a bare message (older rows)
                nested.append(cls(key=text("key", ""), component="", step=-1, phase="run", error_type="Error",
                                  reason=item))
            else:
                nested.append(cls.from_dict({**item, "also": []}))
        frame = UserFrame.from_dict(data["frame"]) if data.get("frame") is not None else None
        if "reason" not in data and "message" in data:  # a row that only has a message
            return cls(key=text("key", ""), component=text("component", ""), step=step, phase=phase,
                       error_type=text("error_type", "Error"), reason=text("message"), also=tuple(nested),
                   frame=frame, traceback=text("traceback", ""))
        return cls(key=text("key", ""), component=text("component", ""), step=step, phase=phase,
                   error_type=text("error_type"), reason=text("reason"), field=text("field", ""),
                   also=tuple(nested), frame=frame, traceback=text("traceback", ""))

    @classmethod
    def from_json(cls, text: _t.Union[str, bytes]) -> Failure:
        """Parse one JSON line (``ValueError`` when it is not a failure record)."""
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"a failure record is JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def coerce(cls, value: _t.Union[Failure, dict[str, _t.Any], str]) -> Failure:
        """A ``Failure`` from a record, its dict or its JSON text."""
        if isinstance(value, Failure):
            return value
        if isinstance(value, str):
            return cls.from_json(value)
        return cls.from_dict(value)


#: longest reason a failure record keeps (it travels in messages; ``from_dict`` takes 65536)
MAX_REASON = 8000


def cut_reason(reason: str) -> str:
    """``reason`` cut to ``MAX_REASON`` characters, saying how much was left out (an exception
    message may quote a whole value)."""
    if len(reason) <= MAX_REASON:
        return reason
    return f"{reason[:MAX_REASON]}... ({len(reason) - MAX_REASON:,} more characters)"


def describe_failures(failures: _t.Sequence[Failure], limit: _t.Optional[int] = None) -> str:
    """The failures one per indented line (``Failure.describe``), for under a heading; past
    ``limit`` of them, the rest are counted."""
    shown = failures if limit is None else failures[:limit]
    more = len(failures) - len(shown)
    return "\n  " + "\n  ".join(f.describe() for f in shown) + (f"\n  ... and {more} more" if more else "")


def merge_by_key(failures: _t.Iterable[Failure]) -> list[Failure]:
    """One failure per key (several stages of a key may each report one), sorted by key."""
    out: dict[str, Failure] = {}
    for f in failures:
        out[f.key] = out[f.key].merged(f) if f.key in out else f
    return [out[k] for k in sorted(out)]


def finish(engine: Engine, error: _t.Optional[StepError] = None) -> list[StepError]:
    """End a key's engine: the one drain-then-destroy sequence (see the module docstring).

    ``error`` is the failure that stopped it (None for a normal end or an interruption).
    Returns every error, the first one first. Safe to call again (does nothing more).
    """
    errors: list[StepError] = [error] if error is not None else []
    if engine.destroyed:
        return errors
    try:
        if error is not None and engine.initialised:
            errors += engine.drain([error.component])
        engine.end_all()
    finally:
        errors += engine.destroy()
        engine.driver.close()
        for err in errors:
            log_failure(Failure.of(err))
    return errors


def log_failure(failure: Failure) -> None:
    """A key's failure as an ERROR record where it happened (a Beam worker too), with its fields."""
    get_logger("plugboard_beam.run").error(
        "key failed", component=failure.component, key=failure.key, step=failure.step, phase=failure.phase,
        reason=f"{failure.error_type}: {failure.reason}" if failure.error_type else failure.reason,
        **({"at": failure.frame.describe()} if failure.frame is not None else {}))


def construct(model: _t.Union[LoadedModel, KeyModel], key: str) -> dict[str, Component]:
    """The components of one key; a constructor that raises is a ``StepError`` (phase
    ``construct``) naming the component, so the key fails alone like any other failure."""
    try:
        return model.build_components(key)
    except StepError:
        raise
    except Exception as exc:
        raise StepError(_constructing(exc), key, 0, "construct", exc) from exc


def _constructing(exc: BaseException) -> str:
    # ``build_components`` names the component itself (StepError) once the spec layer does;
    # until then, the name is read from its frame (the component spec it was building).
    tb = exc.__traceback__
    name = ""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "build_components":
            args = frame.f_locals.get("args")
            name = str(getattr(args, "name", "") or "")
        tb = tb.tb_next
    return name
