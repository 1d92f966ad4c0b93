"""``WebsocketReader`` / ``WebsocketWriter``: realtime data over a websocket (plugboard 0.9.0's
components, same arguments and fields), on the ``websockets`` library.

Needs the optional ``websockets`` extra (``pip install 'plugboard-beam[websockets]'``).
``connect_args`` go to ``websockets.asyncio.client.connect`` (``open_timeout``,
``additional_headers``, ...). Both reconnect when an established connection drops, as
plugboard's do; the first connection failing fails ``init()`` with the error (an ``OSError``
when nothing listens).

A received message is untrusted input. It may be at most ``max_message_bytes`` (default
1,000,000; the ``websockets`` library stops reading a longer frame and closes the connection
with code 1009); with ``parse_json`` it is checked against ``max_depth`` and
``max_int_digits`` *before* it is parsed (``json_limits``). A message over a limit, or not JSON
when JSON is expected, fails the reader's step with the component, the limit and the reason:
it is never dropped silently, and never reconnected past.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
import typing as _t

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.library.data import DataError
from plugboard_beam.library.json_limits import DecodeLimits, NotJSON, dumps_strict, loads_limited
from plugboard_beam.schemas import ComponentArgsDict

#: websocket close code: a message over the receiver's size limit (RFC 6455)
MESSAGE_TOO_BIG = 1009


def _websockets(what: str) -> None:
    try:
        import websockets  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs the websockets library: pip install 'plugboard-beam[websockets]'") from None


async def _in_task(coro: _t.Coroutine[_t.Any, _t.Any, _t.Any]) -> _t.Any:
    """Run ``coro`` as a task of the running loop: ``websockets`` uses ``asyncio.timeout``, which
    needs a current task, and an engine may start a component's coroutine outside any task."""
    import asyncio

    return await asyncio.get_running_loop().create_task(coro)


class WebsocketArgsDict(ComponentArgsDict):
    """The ``WebsocketBase`` constructor arguments."""

    uri: str
    connect_args: _t.NotRequired[dict[str, _t.Any] | None]
    max_message_bytes: _t.NotRequired[int]


class WebsocketBase(Component):
    """A component holding one websocket connection (opened by ``init``, closed by ``destroy``)."""

    io = IOController()

    def __init__(
        self,
        uri: str,
        connect_args: dict[str, _t.Any] | None = None,
        max_message_bytes: int = DecodeLimits.max_bytes,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        """``uri``: the server (``ws://`` or ``wss://``); ``connect_args``: for ``websockets``'
        ``connect``; ``max_message_bytes``: the largest message received (see the module)."""
        super().__init__(**kwargs)
        _websockets(type(self).__name__)
        if not isinstance(uri, str) or not uri.lower().startswith(("ws://", "wss://")):
            raise ValueError(f"'uri' must be a ws:// or wss:// URL, not {uri!r}")
        if connect_args is not None and not isinstance(connect_args, dict):
            raise ValueError(f"'connect_args' must be a mapping of websockets.connect arguments, not {connect_args!r}")
        if connect_args and "max_size" in connect_args:
            raise ValueError("'connect_args': give the message size limit as 'max_message_bytes', not 'max_size'")
        self._limits = DecodeLimits.of(max_bytes=max_message_bytes)
        self._uri = uri
        self._connect_args: dict[str, _t.Any] = {**(connect_args or {}), "max_size": self._limits.max_bytes}
        self._connection_success = False
        self._conn: _t.Any = None
        self._ctx: _t.Optional[AsyncExitStack] = None

    def _process_exception(self, exc: Exception) -> Exception | None:
        from websockets.asyncio.client import process_exception  # type: ignore[attr-defined]

        if not self._connection_success:
            self._logger.error("Error connecting to websocket", uri=self._uri, error=repr(exc))
            return exc
        self._logger.info("Error raised in websocket connection", uri=self._uri, error=repr(exc))
        result: Exception | None = process_exception(exc)
        return result

    async def init(self) -> None:
        """Open the connection (``OSError`` and the like when it cannot be opened)."""
        await _in_task(self._open())

    async def _open(self) -> None:
        from websockets.asyncio.client import connect

        self._ctx = AsyncExitStack()
        self._conn_iter = aiter(connect(self._uri, process_exception=self._process_exception, **self._connect_args))
        self._conn = await self._get_conn()
        self._connection_success = True
        self._logger.info(f"Connected to {self._uri}")

    async def _get_conn(self) -> _t.Any:
        assert self._ctx is not None
        return await self._ctx.enter_async_context(await anext(self._conn_iter))

    async def _reconnect(self, exc: BaseException) -> None:
        """After the connection dropped: loud for a message over the size limit, else reconnect."""
        from websockets.exceptions import ConnectionClosed

        if isinstance(exc, ConnectionClosed) and any(
                f is not None and f.code == MESSAGE_TOO_BIG for f in (exc.rcvd, exc.sent)):
            raise DataError(f"{self.name}: a message from {self._uri} is over the limit of "
                            f"{self._limits.max_bytes:,} bytes (max_message_bytes)") from None
        self._logger.warning(f"Connection to {self._uri} closed, will reconnect...")
        assert self._ctx is not None
        await self._ctx.aclose()
        self._conn = await self._get_conn()

    async def destroy(self) -> None:
        """Close the connection."""
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            await _in_task(ctx.aclose())

    def __getstate__(self) -> dict[str, _t.Any]:
        state = dict(self.__dict__)
        for live in ("_conn", "_ctx", "_conn_iter"):  # a connection is not state: init() opens a new one
            state.pop(live, None)
        state["_connection_success"] = False
        return state

    def __setstate__(self, state: dict[str, _t.Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_conn", None)
        self.__dict__.setdefault("_ctx", None)


class WebsocketReader(WebsocketBase):
    """Outputs each message received from a websocket as ``message`` (plugboard's
    ``WebsocketReader``): raw text/bytes, or parsed JSON with ``parse_json``. Runs until it is
    stopped, reconnecting when the server drops the connection."""

    io = IOController(outputs=["message"])

    def __init__(
        self,
        initial_message: _t.Any | None = None,
        skip_messages: int = 0,
        parse_json: bool = False,
        max_depth: int = DecodeLimits.max_depth,
        max_int_digits: int = DecodeLimits.max_int_digits,
        **kwargs: _t.Unpack[WebsocketArgsDict],
    ) -> None:
        """``initial_message``: sent on every (re)connection, e.g. a subscription (as JSON with
        ``parse_json``); ``skip_messages``: how many messages after each (re)connection to
        ignore; ``parse_json``: parse each message as JSON, within ``max_depth`` and
        ``max_int_digits``; the rest as ``WebsocketBase``."""
        super().__init__(**kwargs)
        if isinstance(skip_messages, bool) or not isinstance(skip_messages, int) or skip_messages < 0:
            raise ValueError(f"'skip_messages' must be a whole number >= 0, not {skip_messages!r}")
        self._limits = DecodeLimits.of(max_bytes=self._limits.max_bytes, max_depth=max_depth,
                                       max_int_digits=max_int_digits)
        if initial_message is not None and parse_json:
            try:
                initial_message = dumps_strict(initial_message)
            except NotJSON as exc:
                raise ValueError(f"'initial_message' is not JSON: {exc}") from None
        self._initial_message = initial_message
        self._skip_messages = skip_messages
        self._skip_count = 0
        self._parse_json = bool(parse_json)

    async def _get_conn(self) -> _t.Any:
        conn = await super()._get_conn()
        if self._initial_message is not None:
            self._logger.info("Sending initial message", message=self._initial_message)
            await conn.send(self._initial_message)
        self._skip_count = self._skip_messages
        return conn

    async def _recv_websocket(self) -> _t.Any:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self._conn.recv()
        except ConnectionClosed as exc:
            await self._reconnect(exc)
        return None

    def _decode(self, message: _t.Any) -> _t.Any:
        data = message.encode() if isinstance(message, str) else bytes(message)
        try:
            return loads_limited(data, self._limits)
        except ValueError as exc:  # LimitExceeded, or not JSON (json.JSONDecodeError, UnicodeDecodeError)
            raise DataError(f"{self.name}: a message from {self._uri} cannot be taken as JSON: {exc}") from None

    async def step(self) -> None:
        """Wait for the next message and output it (the first ``skip_messages`` of every
        connection, a reconnection during this step included, are skipped)."""
        await _in_task(self._step())

    async def _step(self) -> None:
        while True:
            message = await self._recv_websocket()
            if message is None:  # reconnected
                continue
            if self._skip_count > 0:
                self._logger.info("Skipping message", message=message)
                self._skip_count -= 1
                continue
            break
        self.message = self._decode(message) if self._parse_json else message


class WebsocketWriter(WebsocketBase):
    """Sends each ``message`` to a websocket (plugboard's ``WebsocketWriter``): as it is, or as
    strict JSON text with ``parse_json``; reconnects and sends again when the connection drops."""

    io = IOController(inputs=["message"])

    def __init__(
        self,
        parse_json: bool = False,
        **kwargs: _t.Unpack[WebsocketArgsDict],
    ) -> None:
        """``parse_json``: send each message as JSON text; the rest as ``WebsocketBase``."""
        super().__init__(**kwargs)
        self._parse_json = bool(parse_json)

    async def _send_websocket(self, message: _t.Any) -> bool:
        from websockets.exceptions import ConnectionClosed

        try:
            await self._conn.send(message)
            return True
        except ConnectionClosed as exc:
            await self._reconnect(exc)
        return False

    async def step(self) -> None:
        """Send the current ``message``."""
        await _in_task(self._step())

    async def _step(self) -> None:
        message = self.message
        if self._parse_json:
            try:
                message = dumps_strict(message)
            except NotJSON as exc:
                raise DataError(f"{self.name}: 'message' cannot be sent as JSON: {exc}") from None
        elif not isinstance(message, (str, bytes)):
            raise DataError(f"{self.name}: 'message' must be text or bytes without parse_json, "
                            f"not {type(message).__name__}")
        while not await self._send_websocket(message):
            pass


__all__ = ["WebsocketBase", "WebsocketReader", "WebsocketWriter"]
