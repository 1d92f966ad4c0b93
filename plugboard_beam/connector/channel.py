"""``Channel``: the interface of a connector's channel (plugboard 0.9.0's ``Channel``)."""

from __future__ import annotations

import abc
import typing as _t

#: unlimited capacity (plugboard's default)
CHAN_MAXSIZE = 0


class Channel(abc.ABC):
    """Sends and receives items: ``send``, ``recv``, ``close``; once closed, a ``recv`` after the
    last item and every ``send`` raise ``ChannelClosedError``."""

    _maxsize: int = CHAN_MAXSIZE
    _is_send_closed: bool = False

    @property
    def maxsize(self) -> int:
        """The message capacity (0: unlimited)."""
        return self._maxsize

    @property
    def is_closed(self) -> bool:
        """``True`` once the channel is closed for sending."""
        return self._is_send_closed

    @abc.abstractmethod
    async def send(self, msg: _t.Any) -> None:
        """Send ``msg``."""

    @abc.abstractmethod
    async def recv(self) -> _t.Any:
        """The next item."""

    async def close(self) -> None:
        """Close the channel for sending."""
        self._is_send_closed = True
