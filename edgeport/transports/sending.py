"""The send side: a message to a peer, or on a connection, counted and captured.

RFC 3261 §18.1.1 and §18.2.2: UDP leaves from the UDP listening socket (so
its source port is the one the peer knows); TCP and TLS reuse the live
connection to (transport, host, port), whichever side opened it, or open
one (:mod:`.outbound`); WS and WSS only use existing connections, and a
``.invalid`` host (RFC 7118 §5.2) is only looked up among the WebSocket
aliases. A stream peer with no live connection here may be held by another
worker process: the :class:`~edgeport.transports.plugins.RemoteHolder` takes
the message then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports.base import normalize_host
from edgeport.transports.errors import ConnectionLost, NoRoute, SendError

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Awaitable, Callable, Sequence

    from edgeport.transports.base import Connection, Peer
    from edgeport.transports.connections import ConnectionTable
    from edgeport.transports.plugins import CaptureSink, RemoteHolder
    from edgeport.transports.udp import DatagramSocket

    Connect = Callable[[Transport, str, int], Awaitable[Connection]]

logger = logging.getLogger(__name__)


class Sender:
    """``send`` and ``send_on``.

    Counts in ``stats``: ``sent_<transport>``, ``send_failed_<transport>``,
    ``dropped_no_route``.
    """

    def __init__(
        self,
        connections: ConnectionTable,
        connect: Connect,
        stats: Counter[str],
        *,
        udp_sockets: Sequence[DatagramSocket] = (),
        capture: CaptureSink | None = None,
        remote: RemoteHolder | None = None,
    ) -> None:
        self._connections = connections
        self._connect = connect  # outbound connections
        self._stats = stats
        self._udp_sockets = tuple(udp_sockets)
        # The first UDP listening socket of each address family sends to that family.
        self._udp_by_family: dict[int, DatagramSocket] = {}
        for sock in self._udp_sockets:
            self._udp_by_family.setdefault(sock.family, sock)
        self._capture = capture  # HEP capture of every message sent; None when off
        self._remote = remote  # edgeport.workers: connections another worker holds

    @property
    def udp_sockets(self) -> tuple[DatagramSocket, ...]:
        """The UDP listening sockets, which UDP messages leave from."""
        return self._udp_sockets

    async def send(self, peer: Peer, data: bytes) -> None:
        """Send one message to ``peer``, reusing or opening a connection as needed.

        Raises SendError (NoRoute, ConnectionLost).
        """
        host = normalize_host(peer.host)
        if is_websocket_alias(host):
            conn = self._connections.lookup_alias(host)
            if conn is None or conn.closed:
                if self._remote is not None and self._remote.send_elsewhere(peer, data):
                    return
                self._stats["dropped_no_route"] += 1
                raise NoRoute(f"no connection for {host}")
            await self.send_on(conn, data)
            return
        if peer.transport is Transport.UDP:
            await self._send_datagram(host, peer.port, data)
            return
        conn = self._connections.get(peer.transport, host, peer.port)
        if conn is None or conn.closed:
            if self._remote is not None and self._remote.send_elsewhere(peer, data):
                return
            if peer.transport in (Transport.WS, Transport.WSS):
                self._stats["dropped_no_route"] += 1
                raise NoRoute(f"no WebSocket connection to {peer}")
            conn = await self._connect(peer.transport, host, peer.port)
        await self.send_on(conn, data)

    async def connection_to(self, peer: Peer, *, connect_timeout: float) -> Connection:
        """The live TCP or TLS connection to ``peer`` here, or one opened within
        ``connect_timeout`` seconds (a next hop that may not take TCP at all: RFC
        3261 §18.1.1 large requests). Raises SendError."""
        host = normalize_host(peer.host)
        conn = self._connections.get(peer.transport, host, peer.port)
        if conn is not None and not conn.closed:
            return conn
        with trio.move_on_after(connect_timeout):
            return await self._connect(peer.transport, host, peer.port)
        raise SendError(
            f"no {peer.transport.value} connection to {peer} within {connect_timeout:g} s"
        )

    async def send_on(self, conn: Connection, data: bytes) -> None:
        """Send over this connection; raises ConnectionLost (a SendError) when it is gone."""
        try:
            await conn.send(data)
        except ConnectionLost:
            self._stats[f"send_failed_{conn.transport.value}"] += 1
            raise
        self._stats[f"sent_{conn.transport.value}"] += 1
        if self._capture is not None:
            self._capture.sent_on(data, conn)

    async def _send_datagram(self, host: str, port: int, data: bytes) -> None:
        family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
        sock = self._udp_by_family.get(family)
        if sock is None:
            self._stats["dropped_no_route"] += 1
            raise NoRoute(f"no UDP listening point for {host}")
        try:
            await sock.sendto(data, host, port)
        except OSError as exc:
            logger.warning("udp send to %s:%s failed: %s", host, port, exc)
            self._stats["send_failed_udp"] += 1
            raise SendError(f"udp send to {host}:{port} failed: {exc}") from exc
        self._stats["sent_udp"] += 1
        if self._capture is not None:
            self._capture.sent_datagram(data, sock, host, port)
