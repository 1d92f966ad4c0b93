"""Events entering a model from Pub/Sub: PubSubReader -> MessageToEvent -> an event consumer."""

import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event
from plugboard_beam.library.pubsub_events import MessageToEvent


class Alarm(Event):
    type: _t.ClassVar[str] = "alarm"
    data: dict[str, int]


class AlarmIn(MessageToEvent):
    io = IO(output_events=[Alarm])


class Collector(Component):
    """Event-driven: logs each alarm with the tick it belongs to; writes ``<folder>/<key>.txt``."""

    io = IO(input_events=[Alarm])

    def __init__(self, folder: str = ".", **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.folder = folder
        self.rows: list[str] = []

    @Alarm.handler
    def on_alarm(self, event: Alarm) -> None:
        self.rows.append(f"level={event.data['level']} tick={event.tick}")

    def destroy(self) -> None:
        key = getattr(self, "_plugboard_beam_key", "") or "default"
        with open(f"{self.folder}/{key}.txt", "w") as f:
            f.write("\n".join(self.rows) + "\n")
