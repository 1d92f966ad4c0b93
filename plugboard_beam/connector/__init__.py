"""Connectors of the Python API (plugboard 0.9.0 compatible).

With plugboard_beam a connector is a declaration: the engine (local or Beam) decides how its
values travel. ``AsyncioConnector`` is kept so plugboard code runs unchanged. Outside a
process, a component driven by hand (``await comp.io.connect(connectors)``, then ``await
comp.step()``) exchanges values over the connectors' ``AsyncioChannel`` s, as in plugboard.
"""

from __future__ import annotations

import asyncio
import typing as _t

from plugboard_beam.exceptions import ChannelClosedError
from plugboard_beam.schemas import ConnectorSpec


class _Closed:
    """The message that closes a channel."""


_CLOSE = _Closed()


class AsyncioChannel:
    """A first-in first-out channel between coroutines of one event loop (plugboard's
    ``AsyncioChannel``): ``send``, ``recv``, ``close``; ``recv`` after the last item of a
    closed channel raises ``ChannelClosedError``, as does ``send`` on it."""

    def __init__(self, maxsize: int = 0) -> None:
        self._queue: asyncio.Queue[_t.Any] = asyncio.Queue(maxsize=maxsize)
        self._is_send_closed = False
        self._is_recv_closed = False

    @property
    def is_closed(self) -> bool:
        """``True`` once the channel is closed for sending."""
        return self._is_send_closed

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
    """Builds connectors of one class from specs (plugboard 0.9.0 compatible)."""

    def __init__(self, connector_cls: type[Connector] = AsyncioConnector, **kwargs: _t.Any) -> None:
        self.connector_cls = connector_cls
        self.kwargs = kwargs

    def build(self, spec: ConnectorSpec) -> Connector:
        """A connector for ``spec``."""
        return self.connector_cls(spec, **self.kwargs)


def __getattr__(name: str) -> _t.Any:
    """plugboard's transports that Beam replaces (``ZMQConnector``, ``RayConnector``, ...): an
    ``ImportError`` that says what to use instead."""
    from plugboard_beam.schemas.migration import REPLACED_TRANSPORTS, import_refusal

    if name in REPLACED_TRANSPORTS:
        raise import_refusal(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AsyncioChannel", "AsyncioConnector", "Connector", "ConnectorBuilder", "ConnectorSpec"]
