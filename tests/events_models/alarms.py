import typing as _t

from plugboard_beam.component import Component
from plugboard_beam.component import IOController as IO
from plugboard_beam.events import Event
from plugboard_beam.library.pubsub_events import PubSubEventWriter


class Alarm(Event):
    type: _t.ClassVar[str] = "alarm"
    data: dict[str, int]


class Level(Component):
    io = IO(outputs=["level"], output_events=[Alarm])

    def __init__(self, n: int = 6, every: int = 2, **kw: _t.Any) -> None:
        super().__init__(**kw)
        self.n, self.every, self.i = n, every, 0

    def step(self) -> None:
        if self.i == self.n:
            self.io.close_sync()
            return
        self.level = self.i
        if self.i % self.every == 1:
            self.io.queue_event(Alarm(source=self.name, data={"level": self.i}))
        self.i += 1


class AlarmsOut(PubSubEventWriter):
    io = IO(input_events=[Alarm])
