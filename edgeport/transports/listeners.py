"""The listening points: binding them, accepting on them, serving what they accept.

RFC 3261 §18 (UDP, TCP and TLS listeners), RFC 7118 §4 (the WebSocket
handshake). :func:`bind_listening_points` binds every configured point
first, so a taken port fails the start with a :class:`BindError`;
:class:`Listeners` then serves each one in the transports' nursery: a UDP
socket's reader, or a stream listener with its own nursery and one task per
connection. Serving one connection is, in order: the ``spec.connections.max``
bound, the PROXY protocol header on a listener that expects one
(:mod:`.proxied`), the edge guard's connection checks (access lists, bans,
the per-source cap, by the real source), the TLS handshake (TLS, WSS), the
WebSocket upgrade (WS, WSS), then the connection's reader
(:class:`~edgeport.transports.running.ConnectionRunner`).

A listener that fails is logged and reported dead to the health check
(``listener_alive``); the other listeners and the connections already open
carry on.

What a connection is checked with (:class:`ListenerSecurity`: the TLS
server context, the WebSocket Origin list, the trusted PROXY protocol
sources) is read once per accepted connection, so a reload that replaces
``Listeners.security`` applies to the next connection; one already open
keeps what it was accepted with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

from edgeport.protection import Verdict
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer
from edgeport.transports.proxied import Refused, TrustedProxies, accept_proxied
from edgeport.transports.sockets import aclose_stream, bind_socket, remote_peer
from edgeport.transports.stream import StreamConnection, tls_handshake
from edgeport.transports.stun import answer as stun_answer
from edgeport.transports.stun import is_stun
from edgeport.transports.udp import DatagramSocket
from edgeport.transports.websocket import WebSocketConnection, accept_websocket

if TYPE_CHECKING:
    import ssl
    from collections import Counter
    from collections.abc import Awaitable, Callable, Sequence

    from edgeport.config import TransportConfig, WebSocketConfig
    from edgeport.protection import EdgeGuard
    from edgeport.transports.base import Connection
    from edgeport.transports.running import ConnectionRunner

    Deliver = Callable[[bytes, Peer, Connection | None, Peer], None]

logger = logging.getLogger(__name__)


async def bind_listening_points(
    configs: Sequence[TransportConfig],
) -> list[tuple[Transport, trio.socket.SocketType]]:
    """A bound socket for each config, in order; raises BindError (closing what it bound)."""
    bound: list[tuple[Transport, trio.socket.SocketType]] = []
    try:
        for config in configs:
            sock_type = (
                trio.socket.SOCK_DGRAM
                if config.protocol is Transport.UDP
                else trio.socket.SOCK_STREAM
            )
            sock = await bind_socket(config.protocol, config.bind_addr, config.port, sock_type)
            bound.append((config.protocol, sock))
    except BaseException:
        for _, sock in bound:
            sock.close()
        raise
    return bound


def open_listening_points(
    bound: Sequence[tuple[Transport, trio.socket.SocketType]],
) -> list[ListeningPoint]:
    """The bound sockets as listening points (a UDP one with its datagram socket)."""
    points = []
    for transport, sock in bound:
        host, port = sock.getsockname()[:2]
        udp = DatagramSocket(sock) if transport is Transport.UDP else None
        points.append(ListeningPoint(Peer(transport, host, port), sock, udp))
    return points


@dataclass(frozen=True, slots=True)
class ListeningPoint:
    """A bound listening socket: where it listens, and, for UDP, its datagram socket."""

    local: Peer
    sock: trio.socket.SocketType
    udp: DatagramSocket | None = None


@dataclass(frozen=True, slots=True)
class ListenerSecurity:
    """What the stream listeners check before a connection is served."""

    tls: ssl.SSLContext | None  # the server context of the TLS and WSS listeners
    websocket: WebSocketConfig  # the Origin allow-list of the WebSocket upgrade
    proxy_protocol: frozenset[Transport]  # listeners whose connections open with a header
    trusted_proxies: TrustedProxies  # who may send that header


class Listeners:
    """Every listening point, served in the transports' nursery.

    Counts in ``stats``: ``listener_failures``, ``connections_refused``,
    ``stun_answered``, ``stun_dropped`` (STUN on UDP), ``tls_handshake_failed``,
    ``proxy_protocol_untrusted``/``_invalid``/``_timeout`` (and what :mod:`.udp` and
    :mod:`.websocket` count while accepting and reading).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        points: Sequence[ListeningPoint],
        runner: ConnectionRunner,
        deliver: Deliver,
        stats: Counter[str],
        *,
        security: ListenerSecurity,
        guard: EdgeGuard | None = None,
    ) -> None:
        self._nursery = nursery
        self._points = tuple(points)
        self._runner = runner
        self._deliver = deliver  # dispatch
        self._stats = stats
        self._security = security
        self._guard = guard  # edge protection: checks before parsing
        self._proxy_log = RateLimitedLog(logger, burst=5)
        self._alive: set[Peer] = set()
        self._accept_scopes: list[trio.CancelScope] = []

    @property
    def listening_points(self) -> list[Peer]:
        """One per listener, with the port actually bound."""
        return [point.local for point in self._points]

    @property
    def security(self) -> ListenerSecurity:
        """What the next accepted connection is checked with."""
        return self._security

    @security.setter
    def security(self, security: ListenerSecurity) -> None:
        if security.tls is None and any(p.local.transport.secure for p in self._points):
            raise ValueError("a TLS or WSS listener needs a server TLS context")
        self._security = security

    def listening_point(self, transport: Transport) -> Peer | None:
        return next((p.local for p in self._points if p.local.transport is transport), None)

    def listener_alive(self, local: Peer) -> bool:
        """True while the listener of this listening point runs (for health checks)."""
        return local in self._alive

    def stop_accepting(self) -> None:
        """Close the stream listening sockets (for a graceful shutdown); open
        connections, UDP and sending carry on."""
        for scope in self._accept_scopes:
            scope.cancel()

    def start(self) -> None:
        """Serve each listening point in the transports' nursery."""
        for point in self._points:
            local = point.local
            if point.udp is not None:
                deliver = partial(self._deliver_datagram, local=local, udp=point.udp)
                self._nursery.start_soon(
                    self._run_listener,
                    local,
                    partial(_read_until_closed, point.udp, deliver, self._stats),
                )
            else:
                listener = trio.SocketListener(point.sock)
                self._nursery.start_soon(
                    self._run_listener, local, partial(self._serve_stream_listener, listener, local)
                )
            logger.info("listening on %s", local)

    async def _run_listener(self, local: Peer, serve: Callable[[], Awaitable[object]]) -> None:
        self._alive.add(local)
        try:
            await serve()
        except Exception:
            logger.exception("listener %s failed", local)
            self._stats["listener_failures"] += 1
        finally:
            self._alive.discard(local)

    def _deliver_datagram(
        self, data: bytes, peer: Peer, *, local: Peer, udp: DatagramSocket
    ) -> None:
        # edge protection: dropped silently unless the guard admits it (a STUN
        # request counts toward the flood limit as a SIP request does).
        if self._guard is not None and self._guard.admit(peer, data) is not Verdict.ACCEPT:
            return
        if is_stun(data):
            self._answer_stun(data, peer, udp)
            return
        self._deliver(data, peer, None, local)

    def _answer_stun(self, data: bytes, peer: Peer, udp: DatagramSocket) -> None:
        """RFC 5626 keep-alive: a STUN Binding request is answered from the socket it
        came to; anything else STUN is dropped. Counts ``stun_answered``, ``stun_dropped``."""
        answer = stun_answer(data, peer.host, peer.port)
        if answer is not None and udp.send_nowait(answer, peer.host, peer.port):
            self._stats["stun_answered"] += 1
        else:
            self._stats["stun_dropped"] += 1

    async def _serve_stream_listener(self, listener: trio.SocketListener, local: Peer) -> None:
        """Accept connections; each runs in this listener's own nursery."""
        async with trio.open_nursery() as connections:
            accepting = trio.CancelScope()
            self._accept_scopes.append(accepting)
            with accepting:
                await trio.serve_listeners(
                    partial(self._serve_inbound, local=local),
                    [listener],
                    handler_nursery=connections,
                )
            logger.info("%s no longer accepting connections", local)

    async def _serve_inbound(self, stream: trio.SocketStream, *, local: Peer) -> None:
        transport = local.transport
        runner = self._runner
        if runner.full:
            self._stats["connections_refused"] += 1
            await trio.aclose_forcefully(stream)
            return
        runner.stream_opened()
        try:
            try:
                peer = remote_peer(stream, transport)
            except OSError:
                return  # gone before we looked
            wrapped: trio.abc.Stream = stream
            security = self._security
            if transport in security.proxy_protocol:
                accepted = await accept_proxied(stream, peer, security.trusted_proxies)
                if isinstance(accepted, Refused):
                    self._refuse_proxied(peer, accepted)
                    await trio.aclose_forcefully(stream)
                    return
                peer, wrapped = accepted
            # edge protection: access lists, bans and the per-source cap, by the real
            # source (after a PROXY protocol header); the ticket's scope bounds the
            # handshakes and the wait for a first message.
            ticket = None if self._guard is None else self._guard.open_connection(peer)
            if self._guard is not None and ticket is None:
                await trio.aclose_forcefully(stream)
                return
            if transport.secure:
                assert security.tls is not None
                wrapped = trio.SSLStream(
                    wrapped, security.tls, server_side=True, https_compatible=True
                )
            try:
                with trio.CancelScope() if ticket is None else ticket.scope:
                    if transport in (Transport.WS, Transport.WSS):
                        await self._serve_websocket(wrapped, transport, peer, local)
                    else:
                        await self._serve_stream(wrapped, transport, peer, local)
            finally:
                if self._guard is not None and ticket is not None:
                    self._guard.connection_closed(ticket)
                await aclose_stream(wrapped)
        except Exception:
            logger.exception("%s connection failed", transport.value)
        finally:
            runner.stream_closed()

    def _refuse_proxied(self, peer: Peer, refused: Refused) -> None:
        self._stats[refused.reason.value] += 1
        self._proxy_log.warning(
            "connection from %s closed: %s (PROXY protocol listener)", peer, refused.detail
        )

    async def _serve_stream(
        self, stream: trio.abc.Stream, transport: Transport, peer: Peer, local: Peer
    ) -> None:
        if isinstance(stream, trio.SSLStream) and not await tls_handshake(stream, peer):
            self._stats["tls_handshake_failed"] += 1
            return
        runner = self._runner
        conn = StreamConnection(
            runner.new_id(transport), transport, stream, peer, local, outbound=False
        )
        await runner.run(conn, runner.stream_reader(conn))

    async def _serve_websocket(
        self, stream: trio.abc.Stream, transport: Transport, peer: Peer, local: Peer
    ) -> None:
        ws = await accept_websocket(stream, peer, self._security.websocket, self._stats)
        if ws is None:
            return
        runner = self._runner
        conn = WebSocketConnection(runner.new_id(transport), transport, stream, ws, peer, local)
        await runner.run(conn, runner.websocket_reader(conn))


async def _read_until_closed(
    udp: DatagramSocket, deliver: Callable[[bytes, Peer], None], stats: Counter[str]
) -> None:
    try:
        await udp.read(deliver, stats)
    finally:
        udp.close()
