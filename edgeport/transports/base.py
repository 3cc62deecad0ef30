"""What every transport shares: peers, inbound messages, and the stream connection.

A :class:`Connection` is one TCP, TLS, WS or WSS connection with a single
writer (a ``StrictFIFOLock``); a broken or closed stream surfaces as one
exception, :class:`ConnectionLost`. Transports deliver bytes; parsing is the
caller's job.
"""

from __future__ import annotations

import abc
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

import trio

from edgeport.transports.errors import ConnectionLost

if TYPE_CHECKING:
    from edgeport.sip.transport import Transport

SEND_TIMEOUT: Final = 10.0  # a peer that does not drain 1 MiB in this long is stuck
CLOSE_TIMEOUT: Final = 2.0  # graceful close (TLS close_notify, WebSocket close frame)
MAX_ALIASES_PER_CONNECTION: Final = 8  # `.invalid` Contact hosts one WebSocket may claim

T = TypeVar("T")


def normalize_host(host: str) -> str:
    """Lower-case, brackets dropped, IPv6 compressed: the form the socket reports."""
    host = host.strip("[]").lower()
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return host
    return host


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address; ``host`` as the socket reports it (IPv6 without brackets)."""

    transport: Transport
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport.value}://{format_hostport(self.host, self.port)}"


class Connection(abc.ABC):
    """One stream connection, inbound or outbound; the layer runs its reader.

    ``send`` is safe to call from many tasks: writes are serialised and each
    write has a deadline (``SEND_TIMEOUT``) after which the connection closes.
    ``close`` asks the reader to stop; the connection then leaves the table.
    """

    def __init__(
        self, conn_id: str, transport: Transport, peer: Peer, local: Peer, *, outbound: bool
    ) -> None:
        self.id = conn_id
        self.transport = transport
        self.peer = peer
        self.local = local
        self.outbound = outbound
        self.aliases: set[str] = set()
        self.last_activity = trio.current_time()
        self._send_lock = trio.StrictFIFOLock()
        self.reader_scope = trio.CancelScope()
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.peer}>"

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, data: bytes) -> None:
        """Write one whole message; raises ConnectionLost if the stream is gone."""
        if self._closed:
            raise ConnectionLost(f"{self.id} is closed")
        await self._exclusive(self._send, data)
        self.last_activity = trio.current_time()

    async def _exclusive(self, write: Callable[[T], Awaitable[None]], item: T) -> None:
        """Run one write as the only writer, within SEND_TIMEOUT (then the connection closes)."""
        async with self._send_lock:
            with trio.move_on_after(SEND_TIMEOUT) as scope:
                await write(item)
            if scope.cancelled_caught:
                self.close()
                raise ConnectionLost(f"{self.id} send timed out")

    def close(self) -> None:
        """Stop the connection; its reader closes the stream and removes it from the table."""
        self._closed = True
        self.reader_scope.cancel()

    @abc.abstractmethod
    async def _send(self, data: bytes) -> None:
        """Write ``data``; raise ConnectionLost (``from None``) when the stream is broken."""

    @abc.abstractmethod
    async def aclose_transport(self) -> None:
        """Close the underlying stream (bounded by CLOSE_TIMEOUT)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One raw SIP message as received; ``connection`` is None for UDP."""

    data: bytes
    peer: Peer
    connection: Connection | None
    local: Peer
    received_at: float


Handler = Callable[[InboundMessage], Awaitable[None]]
