"""A WebSocket client for the fuzzer, on wsproto over a trio stream.

trio-websocket's client waits for its whole handshake timeout when the server
closes the connection before answering the upgrade, which edgeport does to a
banned source or behind a refused PROXY header: here the end of the stream
before the answer is a :class:`WsRefused` at once. One task sends, one may
read at the same time; writes take turns under a lock. The reader answers
edgeport's Pings only when ``answer_pings`` (a client that never answers is
one edgeport must give up on), counts them and the Pongs it gets, and never
echoes a close (the fuzzer closes the socket right after).
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
    Ping,
    Pong,
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
    def __init__(self, stream: ClientStream, *, answer_pings: bool = False) -> None:
        self.stream = stream
        self.answer_pings = answer_pings
        self.pings_received = 0  # edgeport's keep-alive Pings
        self.pongs_received = 0  # edgeport's answers to this client's Pings
        self.last_pong = b""  # the payload of the last Pong
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()
        self._parts: list[bytes] = []
        self._size = 0
        self._writing = trio.Lock()

    async def _write(self, event: Event) -> None:
        try:
            data = self._ws.send(event)
        except LocalProtocolError:  # closed by the server already
            raise WsRefused("closed") from None
        async with self._writing:
            await self.stream.send_all(data)

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
        await self._write(message)

    async def send_pings(self, payloads: list[bytes]) -> None:
        """Ping frames with these payloads (at most 125 bytes each), in one write."""
        try:
            data = b"".join(self._ws.send(Ping(payload=payload)) for payload in payloads)
        except LocalProtocolError:
            raise WsRefused("closed") from None
        async with self._writing:
            await self.stream.send_all(data)

    async def wait_pong(self) -> None:
        """Read until a Pong comes (a message read meanwhile is dropped); WsRefused once
        the connection ends."""
        seen = self.pongs_received
        while self.pongs_received == seen:
            await self._next_message_or_control()

    async def get_message(self) -> bytes:
        """The next whole message (text as UTF-8); WsRefused once the connection ends."""
        while True:
            whole = await self._next_message_or_control()
            if whole is not None:
                return whole

    async def _next_message_or_control(self) -> bytes | None:
        """Handle the next event: a whole message, or None for a frame of one or a
        control frame."""
        event = await self._next_event()
        if isinstance(event, CloseConnection):
            raise WsRefused(f"closed: {event.code}")
        if isinstance(event, Ping):
            self.pings_received += 1
            if self.answer_pings:
                await self._write(event.response())
        elif isinstance(event, Pong):
            self.pongs_received += 1
            self.last_pong = bytes(event.payload)
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data.encode() if isinstance(event.data, str) else bytes(event.data)
            if self._size < MAX_MESSAGE_BYTES:
                self._parts.append(data)
                self._size += len(data)
            if event.message_finished:
                whole = b"".join(self._parts)
                self._parts, self._size = [], 0
                return whole
        return None

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
