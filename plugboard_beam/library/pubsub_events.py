"""Events to Pub/Sub: ``PubSubEventWriter`` publishes the events it handles, one message each.

Declare which events leave the model by subclassing it with ``input_events``::

    class AlarmsOut(PubSubEventWriter):
        io = IO(input_events=[Alarm])

    # YAML: - {type: mymodule.AlarmsOut, args: {name: alarms-out, topic: alarms}}

Every handled event becomes a message whose data is the event as JSON (``type``, ``id``,
``timestamp``, ``source``, ``version``, ``data``, ``metadata``; see ``events.codec``) and whose
attributes are ``key`` (the model instance), ``step`` (the producer's tick) and
``event_type``. It is event-driven (no input fields): it never steps, so it adds no lock-step
constraint. At the end it publishes an end-of-stream message (``eos=true``, ``count``) like
``PubSubWriter``, of which it is a kind: locally it publishes with the client; under Beam the
streaming lowering publishes its outbox with ``WriteToPubSub``.
"""

from __future__ import annotations

import dataclasses
import json
import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.events.codec import encode
from plugboard_beam.events.event import Event
from plugboard_beam.library.pubsub import PubSubWriter
from plugboard_beam.schemas import ComponentArgsDict


class PubSubEventWriter(PubSubWriter):
    """Publishes every event of its ``input_events`` to ``topic`` (see the module docstring)."""

    io = IOController()

    def __init_subclass__(cls, **kwargs: _t.Any) -> None:
        super().__init_subclass__(**kwargs)
        eio = cls.event_io()
        handlers = {**{t: "_publish_event" for t in eio.input_types}, **eio.handlers}
        cls._event_io = dataclasses.replace(eio, handlers=handlers)

    def __init__(self, topic: str, project: _t.Optional[str] = None,
                 **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        Component.__init__(self, **kwargs)
        self.fields: list[str] = []
        self.topic = topic
        self.project = project
        self.count = 0
        self.outbox: _t.Optional[list[tuple[bytes, dict[str, str]]]] = None

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        if not args.get("topic"):
            raise ValueError(f"{cls.__name__} needs a 'topic'")
        if not cls.io.input_events:
            raise ValueError(f"{cls.__name__} handles no events: subclass it with IO(input_events=[...])")
        return cls.io

    def _publish_event(self, event: Event) -> None:
        self._emit(json.dumps(encode(event)).encode(),
                   {"key": self._key, "step": str(event.tick), "event_type": event.type})
        self.count += 1
