"""``EventHandlers``: the registry of event handler methods by class and event type (plugboard
0.9.0's ``plugboard.events.EventHandlers``). ``@MyEvent.handler`` registers through it."""

from __future__ import annotations

from collections import defaultdict
import typing as _t

if _t.TYPE_CHECKING:
    from plugboard_beam.events.event import Event

_F = _t.TypeVar("_F", bound=_t.Callable[..., _t.Any])


class EventHandlers:
    """Handlers by ``"module.Class"`` and event type. ``add(Event)`` is a method decorator;
    ``get(cls, Event)`` finds the handler along ``cls``'s MRO or raises ``KeyError``."""

    _handlers: _t.ClassVar[dict[str, dict[str, _t.Callable[..., _t.Any]]]] = defaultdict(dict)

    @classmethod
    def add(
        cls, event: _t.Union[type[Event], Event], populates_fields: _t.Optional[list[str]] = None
    ) -> _t.Callable[[_F], _F]:
        """Decorator registering a method as the handler of ``event``'s type for its class."""

        def decorator(method: _F) -> _F:
            cls._handlers[cls._class_path(method)][event.type] = method
            if populates_fields is not None:
                coverage = getattr(method, "_event_field_coverage", None)
                if coverage is None:
                    coverage = {}
                    setattr(method, "_event_field_coverage", coverage)
                coverage[event.type] = populates_fields
            return method

        return decorator

    @staticmethod
    def _class_path(method: _t.Callable[..., _t.Any]) -> str:
        """``module.Class`` of the class whose body defines ``method``."""
        parts = getattr(method, "__qualname__", type(method).__qualname__).split(".")
        if len(parts) < 2:
            raise TypeError(f"{method!r} is not defined in a class: event handlers are methods")
        return f"{method.__module__}.{parts[-2]}"

    @classmethod
    def get(cls, klass: type, event: _t.Union[type[Event], Event]) -> _t.Callable[..., _t.Any]:
        """The handler of ``event``'s type for ``klass`` (or a base class); ``KeyError`` if none."""
        for base in klass.__mro__:
            handlers = cls._handlers.get(f"{base.__module__}.{base.__name__}")
            if handlers is not None and event.type in handlers:
                return handlers[event.type]
        raise KeyError(f"No handler found for class '{klass.__name__}' and event type '{event.type}'")
