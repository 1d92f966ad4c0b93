"""Connectors of the Python API (plugboard 0.9.0 compatible).

With plugboard_beam a connector is a declaration: the engine (local or Beam) decides how its
values travel. ``AsyncioConnector`` is kept so plugboard code runs unchanged. Outside a
process, a component driven by hand (``await comp.io.connect(connectors)``, then ``await
comp.step()``) exchanges values over the connectors' ``AsyncioChannel`` s, as in plugboard.
"""

from __future__ import annotations

import asyncio
import typing as _t

from plugboard_beam.connector.channel import Channel
from plugboard_beam.events.event import Event, StopEvent
from plugboard_beam.exceptions import ChannelClosedError
from plugboard_beam.schemas import ConnectorMode, ConnectorSocket, ConnectorSpec

#: ``ConnectorSpec.mode`` of the event connectors ``build_event_connectors`` makes
EVENT_MODE = "pubsub"


class _Closed:
    """The message that closes a channel."""


_CLOSE = _Closed()


class AsyncioChannel(Channel):
    """A first-in first-out channel between coroutines of one event loop (plugboard's
    ``AsyncioChannel``): ``send``, ``recv``, ``close``; ``recv`` after the last item of a
    closed channel raises ``ChannelClosedError``, as does ``send`` on it."""

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = maxsize
        self._queue: asyncio.Queue[_t.Any] = asyncio.Queue(maxsize=maxsize)
        self._is_send_closed = False
        self._is_recv_closed = False

    async def send(self, msg: _t.Any) -> None:
        """Send ``msg`` (waits while the channel is full)."""
        if self._is_send_closed:
            raise ChannelClosedError("Attempted send on closed channel.")
        await self._queue.put(msg)

    async def recv(self) -> _t.Any:
        """The next item; ``ChannelClosedError`` once the channel is closed and drained."""
        if self._is_recv_closed:
            raise ChannelClosedError("Attempted recv on closed channel.")
        msg = await self._queue.get()
        if msg is _CLOSE:
            self._is_recv_closed = self._is_send_closed = True
            raise ChannelClosedError("Attempted recv on closed channel.")
        return msg

    async def close(self) -> None:
        """Close the channel: the receiver gets what was sent, then ``ChannelClosedError``."""
        if not self._is_send_closed:
            await self._queue.put(_CLOSE)
            self._is_send_closed = True


class Connector:
    """A connection between an output field and an input field."""

    def __init__(self, spec: ConnectorSpec, *args: _t.Any, **kwargs: _t.Any) -> None:
        self.spec = spec

    @property
    def id(self) -> str:
        """``source..target``."""
        return self.spec.id

    @classmethod
    def builder(cls, *args: _t.Any, **kwargs: _t.Any) -> ConnectorBuilder:
        """A ``ConnectorBuilder`` making connectors of this class with these arguments."""
        return ConnectorBuilder(cls, *args, **kwargs)

    def export(self) -> dict[str, _t.Any]:
        """``{"type": <class import path>, "args": {"spec": ...}}`` (plugboard's ``export()``)."""
        cls = type(self)
        return {"type": f"{cls.__module__}.{cls.__name__}", "args": {"spec": self.spec.model_dump()}}

    def dict(self) -> dict[str, _t.Any]:
        """``{"id": ..., "spec": ...}`` (plugboard's ``dict()``)."""
        return {"id": self.id, "spec": self.spec.model_dump()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.source.id} -> {self.spec.target.id})"


class AsyncioConnector(Connector):
    """The in-process connector of plugboard. In a process it is a declaration like
    ``Connector``; for components driven by hand it carries values on one ``AsyncioChannel``."""

    def __init__(self, spec: ConnectorSpec, *args: _t.Any, maxsize: int = 0, **kwargs: _t.Any) -> None:
        super().__init__(spec, *args, **kwargs)
        self._maxsize = maxsize
        self._channel: _t.Optional[AsyncioChannel] = None

    def _chan(self) -> AsyncioChannel:
        if self._channel is None:  # made on first use, in the loop that uses it
            self._channel = AsyncioChannel(maxsize=self._maxsize)
        return self._channel

    async def connect_send(self) -> AsyncioChannel:
        """The channel to send on."""
        return self._chan()

    async def connect_recv(self) -> AsyncioChannel:
        """The channel to receive from (the same one: a pipeline)."""
        return self._chan()


class ConnectorBuilder:
    """Builds connectors of one class with preset arguments (plugboard 0.9.0's)."""

    def __init__(self, connector_cls: type[Connector] = AsyncioConnector, *args: _t.Any, **kwargs: _t.Any) -> None:
        self.connector_cls = connector_cls
        self.args = args
        self.kwargs = kwargs

    def build(self, spec: ConnectorSpec) -> Connector:
        """A connector for ``spec``."""
        return self.connector_cls(spec, *self.args, **self.kwargs)

    def build_event_connectors(self, components: _t.Iterable[_t.Any]) -> list[Connector]:
        """One connector per event type the components handle or emit, as plugboard builds
        them: ``<type>.publishers`` -> ``<type>.subscribers`` in mode ``pubsub`` (the type with
        ``.`` and ``-`` made ``_``), ``system_stop`` among them (every component handles
        ``StopEvent``, as in plugboard). A process takes them as declarations: the step engine
        routes events from the components' ``input_events`` / ``output_events``."""
        types: list[str] = []
        for comp in components:
            for ev in (StopEvent, *comp.io.input_events, *comp.io.output_events):
                if ev.type not in types:
                    types.append(ev.type)
        return [self.build(_event_spec(t)) for t in types]


def _event_spec(event_type: str) -> ConnectorSpec:
    safe = Event.safe_type(event_type)
    return ConnectorSpec(
        source=ConnectorSocket(entity=safe, descriptor="publishers"),
        target=ConnectorSocket(entity=safe, descriptor="subscribers"),
        mode=ConnectorMode(EVENT_MODE),
    )


def is_event_connector(connector: object) -> bool:
    """Whether ``connector`` is an event connector (``build_event_connectors``)."""
    spec = getattr(connector, "spec", None)
    return isinstance(spec, ConnectorSpec) and spec.mode == EVENT_MODE


from plugboard_beam.connector.transports import (  # noqa: E402 (they subclass Connector)
    RabbitMQConnector,
    RayConnector,
    RedisConnector,
    ZMQConnector,
)

__all__ = [
    "AsyncioChannel", "AsyncioConnector", "Channel", "Connector", "ConnectorBuilder", "ConnectorSpec",
    "RabbitMQConnector", "RayConnector", "RedisConnector", "ZMQConnector", "is_event_connector",
]
