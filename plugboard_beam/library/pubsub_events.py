"""Events to and from Pub/Sub.

**Out**: ``PubSubEventWriter`` publishes the events it handles, one message each.

Declare which events leave the model by subclassing it with ``input_events``::

    class AlarmsOut(PubSubEventWriter):
        io = IO(input_events=[Alarm])

    # YAML: - {type: mymodule.AlarmsOut, args: {name: alarms-out, topic: alarms}}

Every handled event becomes a message whose data is the event as JSON (``type``, ``id``,
``timestamp``, ``source``, ``version``, ``data``, ``metadata``; see ``events.codec``) and whose
attributes are ``key`` (the model instance), ``step`` (the producer's tick), ``seq`` (0, 1, 2, ... per key) and
``event_type``. It is event-driven (no input fields): it never steps, so it adds no lock-step
constraint. At the end it publishes an end-of-stream message (``eos=true``, ``count``) like
``PubSubWriter``, of which it is a kind: locally it publishes with the client; under Beam the
streaming lowering publishes its outbox with ``WriteToPubSub``.

**In**: a ``PubSubReader`` with a field ``data`` feeds a ``MessageToEvent`` subclass that
declares one ``output_events`` type; each message (the JSON object's ``data`` member) becomes
one event of that type, emitted in the step that received it. Messages therefore follow the
field rules of ``PubSubReader`` exactly (``key`` attribute picks the model instance, ``seq``
orders them, duplicates are dropped, malformed ones go to the dead-letter topic, ``eos`` ends
the stream), and the event reaches its consumers by the tick rules: one step after the message
for a consumer not downstream of the converter through connectors::

    class AlarmIn(MessageToEvent):
        io = IO(output_events=[Alarm])

    # - {type: plugboard_beam.library.PubSubReader, args: {name: rx, topic: alarms-in, fields: [data]}}
    # - {type: mymodule.AlarmIn, args: {name: alarm-in}}
    # connectors: - {source: rx.data, target: alarm-in.data}

Data that does not validate as the event's ``data`` fails that key with a message naming the
component, key and step (other keys run on).
"""

from __future__ import annotations

import dataclasses
import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.events.codec import encode
from plugboard_beam.events.event import Event, StopEvent
from plugboard_beam.library.json_limits import MAX_PUBLISH_BYTES
from plugboard_beam.library.pubsub import PubSubWriter, writer_limit
from plugboard_beam.schemas import ComponentArgsDict


class PubSubEventWriter(PubSubWriter):
    """Publishes every event of its ``input_events`` to ``topic`` (see the module docstring)."""

    io = IOController()

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        eio = cls.event_io()
        handlers = {**{t: "_publish_event" for t in eio.input_types}, **eio.handlers}
        cls._event_io = dataclasses.replace(eio, handlers=handlers)

    def __init__(self, topic: str, project: _t.Optional[str] = None, max_message_bytes: int = MAX_PUBLISH_BYTES,
                 **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        Component.__init__(self, **kwargs)
        self.fields: list[str] = []
        self.topic = topic
        self.project = project
        self.max_message_bytes = writer_limit(max_message_bytes)
        self.count = 0
        self.outbox: _t.Optional[list[tuple[bytes, dict[str, str]]]] = None

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if not args.get("topic"):
            raise ValueError(f"{cls.__name__} needs a 'topic'")
        if not cls.io.input_events:
            raise ValueError(f"{cls.__name__} handles no events: subclass it with IO(input_events=[...])")
        writer_limit(args.get("max_message_bytes", MAX_PUBLISH_BYTES))
        return cls.io

    def _publish_event(self, event: Event) -> None:
        self._emit(*self._checked(encode(event), {
            "key": self._key, "step": str(event.tick), "event_type": event.type,
            "seq": str(self.count)}))  # seq: 0, 1, 2, ... per key (ticks may repeat or skip)
        self.count += 1


class MessageToEvent(Component):
    """Emits one event (its only ``output_events`` type) per value of its input field ``data``."""

    io = IOController(inputs=["data"])

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        types = [e for e in cls.io.output_events if e is not StopEvent]
        if len(types) != 1:
            raise TypeError(f"{cls.__name__}: declare exactly one event type in IO(output_events=[...]), "
                            f"got {len(types)}")
        cls._event_cls = types[0]

    _event_cls: _t.ClassVar[type[Event]]

    def step(self) -> None:  # type: ignore[override]
        self.io.queue_event(self._event_cls(source=self.name, data=self.data))
