"""Events as plugboard 0.9.0 spells them: ``Event``, ``StopEvent`` and ``@E.handler``.

An event type is a pydantic model with a class-level ``type`` name::

    class Alarm(Event):
        type: ClassVar[str] = "alarm"
        data: AlarmData          # a pydantic model or a dict

Handlers are component methods decorated ``@Alarm.handler`` (or
``@Alarm.handler(populates_fields=[...])``); they may be ``async def`` or plain ``def``.
Delivery (which step sees which event) is decided by the step engine, see ``SEMANTICS.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
import re
import typing as _t
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from plugboard_beam.events.handlers import EventHandlers

_TYPE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_\-.]*$")
#: attributes a handler decorator puts on the function
HANDLER_TYPE = "_plugboard_event_type"
HANDLER_POPULATES = "_plugboard_populates_fields"

_F = _t.TypeVar("_F", bound=_t.Callable[..., _t.Any])


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base model of every event.

    Attributes: ``type`` (class-level name), ``id`` (UUID4), ``timestamp`` (UTC), ``source``
    (the emitting component's name), ``version``, ``data`` (pydantic model or dict) and
    ``metadata`` (str -> str).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: _t.ClassVar[str]

    id: UUID = Field(default_factory=uuid4)
    timestamp: datetime = Field(default_factory=_utc_now)
    source: str
    version: str = "0.1.0"
    data: _t.Union[dict[str, _t.Any], BaseModel]
    metadata: dict[str, str] = {}
    #: the producer's tick (step index), stamped by the engine when the event is sent; -1 before
    _tick: int = PrivateAttr(default=-1)

    @property
    def tick(self) -> int:
        """The tick the event belongs to (its producer's step), once sent; else -1."""
        return self._tick

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type", getattr(cls, "type", None))
        if not isinstance(name, str):
            raise NotImplementedError(f"{cls.__name__} must define a `type` attribute.")
        if not _TYPE_NAME.match(name):
            raise ValueError(f"Invalid event type: {name}")

    @classmethod
    def safe_type(cls, event_type: _t.Optional[str] = None) -> str:
        """The type name with ``.`` and ``-`` replaced by ``_`` (for topic names)."""
        return (event_type or cls.type).replace(".", "_").replace("-", "_")

    @_t.overload
    @classmethod
    def handler(cls, method: _F) -> _F: ...

    @_t.overload
    @classmethod
    def handler(cls, *, populates_fields: _t.Optional[list[str]] = None) -> _t.Callable[[_F], _F]: ...

    @classmethod
    def handler(
        cls, method: _t.Optional[_F] = None, *, populates_fields: _t.Optional[list[str]] = None
    ) -> _t.Union[_F, _t.Callable[[_F], _F]]:
        """Mark a component method as the handler of this event type."""

        def mark(fn: _F) -> _F:
            setattr(fn, HANDLER_TYPE, cls.type)
            setattr(fn, HANDLER_POPULATES, tuple(populates_fields or ()))
            if len(getattr(fn, "__qualname__", "").split(".")) > 1:  # a method: as plugboard
                EventHandlers.add(cls, populates_fields)(fn)
            return fn

        if method is None:
            return mark
        return mark(method)


class SystemEvent(Event):
    """Base model of system events."""

    type: _t.ClassVar[str] = "system"


class StopEvent(SystemEvent):
    """Stops the model: every component's built-in handler closes its IO."""

    type: _t.ClassVar[str] = "system.stop"


def type_name(event_type: _t.Any) -> str:
    """The ``type`` of an event class, or ``TypeError`` naming what was given instead."""
    if isinstance(event_type, type) and issubclass(event_type, Event) and isinstance(
        getattr(event_type, "type", None), str
    ):
        return event_type.type
    raise TypeError(f"{event_type!r} is not an Event subclass with a `type`")


def class_path(event_type: type[Event]) -> str:
    """``module.QualName`` of an event class (tells two classes with one type name apart)."""
    return f"{event_type.__module__}.{event_type.__qualname__}"
