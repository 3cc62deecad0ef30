"""Shared pieces for the transport tests: a recording handler and a layer starter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from edgeport.config import TransportConfig
from edgeport.sip.transport import Transport
from edgeport.transports import Connection, InboundMessage, TransportLayer, serve_transports


def sip_request(method: str = "OPTIONS", call_id: str = "c1", body: bytes = b"") -> bytes:
    """A small request, written out by hand for each call."""
    return (
        f"{method} sip:edge@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-{call_id}\r\n"
        f"To: <sip:edge@example.com>\r\n"
        f"From: <sip:alice@example.com>;tag=a1\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"\r\n"
    ).encode() + body


class Recorder:
    """The layer's handler: every message lands in a bounded channel."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[InboundMessage](100)
        self.closed: list[Connection] = []
        self.closed_event = trio.Event()

    async def __call__(self, message: InboundMessage) -> None:
        await self._send.send(message)

    async def next(self) -> InboundMessage:
        return await self._receive.receive()

    def pending(self) -> int:
        return self._receive.statistics().current_buffer_used

    def on_closed(self, conn: Connection) -> None:
        self.closed.append(conn)
        self.closed_event.set()


@asynccontextmanager
async def running_layer(
    transports: Sequence[Transport] | Sequence[TransportConfig],
    recorder: Recorder | None = None,
    **kwargs: Any,
) -> AsyncIterator[tuple[TransportLayer, Recorder]]:
    """Serve the given transports on 127.0.0.1 port 0 until the block ends."""
    recorder = recorder or Recorder()
    configs = [
        t if isinstance(t, TransportConfig) else TransportConfig(t, 0, "127.0.0.1")
        for t in transports
    ]
    async with trio.open_nursery() as nursery:
        layer: TransportLayer = await nursery.start(
            lambda task_status: serve_transports(
                configs,
                recorder,
                on_connection_closed=recorder.on_closed,
                task_status=task_status,
                **kwargs,
            )
        )
        yield layer, recorder
        nursery.cancel_scope.cancel()


def point(layer: TransportLayer, transport: Transport) -> tuple[str, int]:
    local = layer.listening_point(transport)
    assert local is not None
    return local.host, local.port


async def receive_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data
