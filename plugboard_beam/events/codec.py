"""Events as JSON-able data, for transports that must not pickle (Pub/Sub topics).

``encode`` gives a plain dict (type, id, timestamp, source, version, data, metadata);
``decode`` validates such a dict back into the event class registered for its type, so bytes
received from a topic are parsed and validated, never unpickled. ``event_classes`` collects
the classes a model's components use, by type name.
"""

from __future__ import annotations

import typing as _t

from plugboard_beam.events.event import Event, StopEvent, type_name


class EventDecodeError(ValueError):
    """A received event is malformed or of a type the model does not know."""


def encode(event: Event) -> dict[str, _t.Any]:
    """``event`` as JSON-able values."""
    body = event.model_dump(mode="json")
    body["type"] = event.type
    return body


def decode(item: _t.Any, classes: _t.Mapping[str, type[Event]]) -> Event:
    """The event ``item`` (from ``encode``) describes, validated by its class."""
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise EventDecodeError("an event must be a JSON object with a string 'type'")
    cls = classes.get(item["type"])
    if cls is None:
        raise EventDecodeError(f"unknown event type {item['type']!r} (known: {sorted(classes)})")
    body = {k: v for k, v in item.items() if k != "type"}
    try:
        return cls.model_validate(body)
    except ValueError as exc:
        raise EventDecodeError(f"invalid {item['type']!r} event: {exc}") from None


def encode_batch(batch: _t.Sequence[Event]) -> list[dict[str, _t.Any]]:
    """One tick's batch of events (possibly empty) as JSON-able values."""
    return [encode(e) for e in batch]


def decode_batch(items: _t.Any, classes: _t.Mapping[str, type[Event]]) -> list[Event]:
    """The inverse of ``encode_batch``; ``EventDecodeError`` if anything is wrong."""
    if not isinstance(items, list):
        raise EventDecodeError("an event batch must be a JSON list")
    return [decode(item, classes) for item in items]


def event_classes(component_classes: _t.Iterable[type[_t.Any]]) -> dict[str, type[Event]]:
    """``{type name: event class}`` of every event the given component classes emit or handle."""
    out: dict[str, type[Event]] = {StopEvent.type: StopEvent}
    for cls in component_classes:
        eio = cls.event_io()
        for ev in (*eio.inputs, *eio.outputs):
            out.setdefault(type_name(ev), ev)
    return out
