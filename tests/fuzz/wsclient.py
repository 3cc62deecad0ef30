"""A WebSocket client for the fuzzer, on wsproto over a trio stream.

trio-websocket's client waits for its whole handshake timeout when the server
closes the connection before answering the upgrade, which edgeport does to a
banned source or behind a refused PROXY header: here the end of the stream
before the answer is a :class:`WsRefused` at once. One task sends, one may
read at the same time; the reader never writes (pings go unanswered, a close
is not echoed: the fuzzer closes the socket right after).
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

ClientStream = trio.SocketStream | trio.SSLStream[trio.SocketStream]
RECEIVE_BYTES: Final = 65536
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024  # an answer larger than this is cut off


class WsRefused(Exception):
    """The server closed the connection, refused the upgrade or broke the protocol."""


class WsClient:
    def __init__(self, stream: ClientStream) -> None:
        self.stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()
        self._parts: list[bytes] = []
        self._size = 0

    async def handshake(self, host: str, resource: str, subprotocols: list[str]) -> None:
        request = Request(host=host, target=resource, subprotocols=subprotocols)
        await self.stream.send_all(self._ws.send(request))
        while True:
            event = await self._next_event()
            if isinstance(event, AcceptConnection):
                return
            if isinstance(event, RejectConnection | RejectData):
                raise WsRefused(f"upgrade refused: {event!r}"[:200])

    async def send_message(self, data: bytes | str) -> None:
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        try:
            await self.stream.send_all(self._ws.send(message))
        except LocalProtocolError:  # closed by the server already
            raise WsRefused("closed") from None

    async def get_message(self) -> bytes:
        """The next whole message (text as UTF-8); WsRefused once the connection ends."""
        while True:
            event = await self._next_event()
            if isinstance(event, CloseConnection):
                raise WsRefused(f"closed: {event.code}")
            if isinstance(event, TextMessage | BytesMessage):
                data = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
                if self._size < MAX_MESSAGE_BYTES:
                    self._parts.append(data)
                    self._size += len(data)
                if event.message_finished:
                    whole = b"".join(self._parts)
                    self._parts, self._size = [], 0
                    return whole

    async def _next_event(self) -> Event:
        while not self._events:
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                raise WsRefused("the connection ended")
            try:
                self._ws.receive_data(bytes(data))
                self._events.extend(self._ws.events())
            except RemoteProtocolError as exc:
                raise WsRefused(f"protocol error: {exc}") from None
        return self._events.popleft()
