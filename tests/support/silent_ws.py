"""A WebSocket SIP client that stops answering: what a half-open browser connection looks like.

trio-websocket answers every Ping by itself. :class:`SilentWebSocket`
drives wsproto by hand: it completes the handshake (subprotocol ``sip``),
sends text messages and reads only when the test asks, and never answers a
Ping, as a browser whose network went away leaves its old connection.
"""

from __future__ import annotations

from typing import Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from tests.support.ua import RECEIVE_TIMEOUT, Received, _Receiver

READ_BYTES: Final = 65536
MAX_EVENTS: Final = 1000  # events read while waiting for one kind


class SilentWebSocket(_Receiver):
    """A hand-driven WebSocket client; ``pings`` counts the Pings it left unanswered."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pings = 0
        self._events: list[Event] = []
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int) -> SilentWebSocket:
        client = cls(await trio.open_tcp_stream(host, port))
        request = Request(host=f"{host}:{port}", target="/", subprotocols=["sip"])
        await client.stream.send_all(client.ws.send(request))
        event = await client._next_event(RECEIVE_TIMEOUT)
        if not isinstance(event, AcceptConnection):
            raise AssertionError(f"handshake refused: {event!r}")
        return client

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=data.decode())))

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        with trio.fail_after(timeout):
            for _ in range(MAX_EVENTS):
                event = await self._next_event(timeout)
                if isinstance(event, TextMessage):
                    return Received(event.data.encode())
        raise AssertionError("no message")

    async def closed_by_peer(self, within: float) -> bool:
        """Read (Pings left unanswered) until the server closes, for ``within`` seconds."""
        with trio.move_on_after(within):
            for _ in range(MAX_EVENTS):
                try:
                    await self._next_event(within)
                except EOFError:
                    return True
        return self.closed

    async def _next_event(self, timeout: float) -> Event:
        with trio.fail_after(timeout):
            while not self._events:
                try:
                    data = await self.stream.receive_some(READ_BYTES)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    self.closed = True
                    raise EOFError("connection closed")
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, Ping):
                        self.pings += 1  # left unanswered
                    elif isinstance(event, CloseConnection):
                        self.closed = True
                        raise EOFError(f"closed by the server: {event.code}")
                    elif isinstance(event, RejectConnection):
                        raise AssertionError("handshake refused")
                    else:
                        self._events.append(event)
            return self._events.pop(0)

    async def aclose(self) -> None:
        await self.stream.aclose()
