"""Sockets for the listening points, and stream helpers shared by TCP, TLS and WebSocket."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

import trio

from edgeport.transports.base import CLOSE_TIMEOUT, Peer
from edgeport.transports.errors import BindError

if TYPE_CHECKING:
    from edgeport.sip.transport import Transport

LISTEN_BACKLOG: Final = 1024

# Worker processes share every listening point (edgeport.workers): each binds
# the same ports with SO_REUSEPORT and the kernel spreads datagrams and
# connections over them. Off in a single process, so a second edgeport on
# the same ports fails to start instead of silently sharing them.
_reuse_port = False


def share_listening_ports() -> None:
    """Bind every later listening socket with SO_REUSEPORT (a worker process)."""
    global _reuse_port
    _reuse_port = True


async def aclose_stream(stream: trio.abc.AsyncResource) -> None:
    """Close gracefully within CLOSE_TIMEOUT, even while the caller is being cancelled."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(CLOSE_TIMEOUT),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.aclose()
    await trio.aclose_forcefully(stream)


def socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType:
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if not isinstance(stream, trio.SocketStream):
        raise TypeError(f"not a socket stream: {stream!r}")
    return stream.socket


def remote_peer(stream: trio.abc.Stream, transport: Transport) -> Peer:
    host, port = socket_of(stream).getpeername()[:2]
    return Peer(transport, host, port)


async def bind_socket(
    transport: Transport, bind_addr: str, port: int, sock_type: int
) -> trio.socket.SocketType:
    """A bound socket for a listening point; failures become BindError."""
    try:
        infos = await trio.socket.getaddrinfo(
            bind_addr, port, type=sock_type, flags=trio.socket.AI_PASSIVE
        )
    except OSError as exc:
        raise BindError(transport.value, bind_addr, port, str(exc)) from None
    family, _, proto, _, sockaddr = infos[0]
    sock = trio.socket.socket(family, sock_type, proto)
    try:
        if sock_type == trio.socket.SOCK_STREAM:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        if _reuse_port:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
        if family == trio.socket.AF_INET6:
            # "::" binds IPv6 only; an IPv4 peer would otherwise show up as
            # ::ffff:a.b.c.d and its Via received= would not match.
            sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
        await sock.bind(sockaddr)
        if sock_type == trio.socket.SOCK_STREAM:
            sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise BindError(transport.value, bind_addr, port, exc.strerror or str(exc)) from None
    return sock
