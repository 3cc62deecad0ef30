"""HEP capture: copies of every SIP message, sent over UDP to a Homer collector.

The transport layer calls :meth:`HepCapture.received` and :meth:`HepCapture.sent`
with the raw message and its addresses. Each call only puts a record in a
bounded queue (``queue_size``): when the queue is full the copy is dropped and
counted, so capture never delays or blocks SIP. One task (:meth:`serve`)
encodes the records and sends them to the collector. A collector that is
down, refuses or cannot be resolved costs only dropped copies, counted in
``edgeport_hep_dropped_total``, and a rate-limited warning.

A SIP message over TCP may be up to 1 MiB, but one HEP packet carries at most
65,535 bytes and one UDP datagram to the collector at most 65,507: a copy
that does not fit is dropped and counted, with its own rate-limited warning
(a message that large is dropped before it is queued). Capture
must never stop SIP: a failure while capturing one message, whatever it is,
costs that copy (logged, rate-limited, and counted as dropped), never the
sender task, the listener that called the hook, or the process.

Addresses are the sockets' own: a stream connection's local address and
port come from its socket (looked up once per connection), so an outbound
connection shows its real source port. A UDP socket bound to 0.0.0.0 or
``::`` does not say which local address a datagram used; the capture then
reports the address the host routes from towards the peer (looked up once
per peer address, off the SIP path, and cached).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import weakref
from typing import TYPE_CHECKING, Final

import trio

from edgeport.capture.hep import (
    MAX_PAYLOAD_BYTES,
    Capture,
    HepError,
    PacketTooLarge,
    encode,
    find_call_id,
)
from edgeport.metrics import METRICS
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer

if TYPE_CHECKING:
    from edgeport.config import HepConfig
    from edgeport.transports.base import Connection, InboundMessage
    from edgeport.transports.udp import DatagramSocket

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE: Final = 10_000  # packets waiting for the sender
RESOLVE_RETRY_INTERVAL: Final = 10.0  # seconds between attempts to reach the collector
MAX_CACHED_ROUTES: Final = 4096  # peer address -> local source address
# The largest UDP payload over IPv4 (65,535 less the 20-byte IP and 8-byte UDP
# headers); a larger HEP packet cannot leave in one datagram.
MAX_DATAGRAM_BYTES: Final = 65_507
WARNING_INTERVAL: Final = 60.0  # seconds between warnings of one kind
_UNSPECIFIED: Final = frozenset({"0.0.0.0", "::"})
_MAX_STREAM_LAYERS: Final = 4  # TLS over PROXY protocol over TCP, and room to spare


class HepCapture:
    """The capture queue and its sender; counts ``sent`` and ``dropped``."""

    def __init__(self, config: HepConfig, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._config = config
        self._send_channel, self._receive_channel = trio.open_memory_channel[Capture](queue_size)
        self._log = RateLimitedLog(logger, burst=1, interval=WARNING_INTERVAL)
        self._oversize_log = RateLimitedLog(logger, burst=1, interval=WARNING_INTERVAL)
        self._error_log = RateLimitedLog(logger, burst=1, interval=WARNING_INTERVAL)
        self._sock: socket.socket | None = None
        self._reconnect = False  # the collector changed: a new socket before the next send
        self._next_attempt = 0.0  # trio time of the next attempt to reach the collector
        self._routes: dict[str, str] = {}
        self._locals: weakref.WeakKeyDictionary[object, Peer] = weakref.WeakKeyDictionary()
        self.sent = 0
        self.dropped = 0

    def reconfigure(self, config: HepConfig) -> None:
        """A reload: the next copies go to ``config``'s collector, with its agent id and
        password (the socket to the old one is closed before the next send)."""
        self._config = config
        self._reconnect = True

    # -- the hooks: called on the SIP path, never block ------------------------

    def received(self, message: InboundMessage) -> None:
        """A message read from ``message.peer`` on ``message.local`` (or its connection)."""
        try:
            peer = message.peer
            conn = message.connection
            local = message.local if conn is None else self._connection_local(conn)
            self._record(message.data, peer.transport, peer.host, peer.port, local.host, local.port)
        except Exception:  # a defect here must not reach the listener that called
            self._failed()

    def sent_on(self, data: bytes, conn: Connection) -> None:
        """A message written on a stream connection."""
        try:
            local, peer = self._connection_local(conn), conn.peer
            self._record(data, peer.transport, local.host, local.port, peer.host, peer.port)
        except Exception:
            self._failed()

    def sent_datagram(self, data: bytes, udp: DatagramSocket, host: str, port: int) -> None:
        """A datagram sent from a UDP listening socket to ``host``:``port``."""
        try:
            local = self._locals.get(udp)
            if local is None:
                local = self._locals[udp] = Peer(Transport.UDP, *udp.sock.getsockname()[:2])
            self._record(data, Transport.UDP, local.host, local.port, host, port)
        except Exception:
            self._failed()

    def _connection_local(self, conn: Connection) -> Peer:
        """The connection's socket address; its listening point if the socket is gone."""
        local = self._locals.get(conn)
        if local is None:
            local = conn.local
            stream = getattr(conn, "stream", None)
            for _ in range(_MAX_STREAM_LAYERS):
                if stream is None or isinstance(stream, trio.SocketStream):
                    break
                stream = getattr(stream, "transport_stream", None)
            if isinstance(stream, trio.SocketStream):
                try:
                    local = Peer(conn.transport, *stream.socket.getsockname()[:2])
                except OSError:
                    return conn.local  # closed already: not cached, try again next time
            self._locals[conn] = local
        return local

    def _record(
        self, data: bytes, transport: Transport, src: str, src_port: int, dst: str, dst_port: int
    ) -> None:
        if len(data) > MAX_PAYLOAD_BYTES:
            self._too_large(f"a {len(data)}-byte message")  # never kept in the queue
            return
        capture = Capture(data, transport, src, src_port, dst, dst_port, time.time())
        try:
            self._send_channel.send_nowait(capture)
        except trio.WouldBlock:
            self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        METRICS.hep_dropped.inc()

    def _too_large(self, what: str) -> None:
        self._drop()
        self._oversize_log.warning(
            "HEP capture of %s dropped: larger than one HEP packet to the collector carries",
            what,
        )

    def _failed(self) -> None:
        """A defect while capturing one message: that copy is lost, nothing else."""
        self._drop()
        self._error_log.exception("HEP capture of a message failed")

    # -- the sender task ------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued captures until cancelled; nothing but cancellation ends it."""
        task_status.started()
        try:
            async for capture in self._receive_channel:
                try:
                    await self._send(capture)
                except Exception:  # a defect costs this copy, never the task
                    self._failed()
                await trio.lowlevel.checkpoint()
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    async def _send(self, capture: Capture) -> None:
        """Encode one capture and send it; a copy that cannot go is dropped and counted."""
        if self._reconnect:
            self._reconnect = False
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._next_attempt = 0.0
        if self._sock is None and trio.current_time() >= self._next_attempt:
            self._sock = await self._connect()
            self._next_attempt = trio.current_time() + RESOLVE_RETRY_INTERVAL
        sock = self._sock
        if sock is None:
            self._drop()
            return
        packet = self._encode(capture)
        if packet is None:
            return
        if len(packet) > MAX_DATAGRAM_BYTES:
            self._too_large(f"a {len(capture.payload)}-byte message")
            return
        try:
            sock.send(packet)  # non-blocking: a full socket buffer drops the copy
        except BlockingIOError:
            self._drop()
            return
        except OSError as exc:
            self._drop()
            self._log.warning("HEP collector %s: %s", self._config.addr, exc)
            return
        self.sent += 1
        METRICS.hep_sent.inc()

    async def _connect(self) -> socket.socket | None:
        host, _, port = self._config.addr.rpartition(":")
        host = host.strip("[]")
        try:
            infos = await trio.socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
            family, sock_type, proto, _, address = infos[0]
            sock = socket.socket(family, sock_type, proto)
        except OSError as exc:
            self._log.warning("HEP collector %s unreachable: %s", self._config.addr, exc)
            return None
        try:
            sock.setblocking(False)
            sock.connect(address)  # UDP: sets the default destination, sends nothing
        except OSError as exc:
            sock.close()
            self._log.warning("HEP collector %s unreachable: %s", self._config.addr, exc)
            return None
        logger.info("sending HEP capture to %s", self._config.addr)
        return sock

    def _encode(self, capture: Capture) -> bytes | None:
        src, dst = capture.src_host, capture.dst_host
        if src in _UNSPECIFIED:
            src = self._route_from(dst)
        if dst in _UNSPECIFIED:
            dst = self._route_from(src)
        try:
            return encode(
                Capture(
                    capture.payload,
                    capture.transport,
                    src,
                    capture.src_port,
                    dst,
                    capture.dst_port,
                    capture.timestamp,
                ),
                agent_id=self._config.agent_id,
                password=self._config.password,
                correlation_id=find_call_id(capture.payload),
            )
        except PacketTooLarge:
            self._too_large(f"a {len(capture.payload)}-byte message")
            return None
        except HepError as exc:
            self._drop()
            self._log.warning("HEP capture of a message not sent: %s", exc)
            return None

    def _route_from(self, peer_host: str) -> str:
        """The local address the host sends from towards ``peer_host``."""
        cached = self._routes.get(peer_host)
        if cached is not None:
            return cached
        try:
            version = ipaddress.ip_address(peer_host).version
        except ValueError:
            return "0.0.0.0"
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        local = "0.0.0.0" if version == 4 else "::"
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((peer_host, 9))  # no packet leaves: only a route lookup
                local = probe.getsockname()[0]
            except OSError:
                pass
        if len(self._routes) >= MAX_CACHED_ROUTES:
            self._routes.clear()
        self._routes[peer_host] = local
        return local
