"""Large requests to a UDP next hop go over TCP (RFC 3261 §18.1.1).

RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if
it is larger than 1300 bytes and the path MTU is unknown, the request MUST
be sent using an RFC 2914 congestion controlled transport protocol, such as
TCP. If this causes a change in the transport protocol from the one
indicated in the top Via, the value in the top Via MUST be changed."

edgeport never knows the path MTU, so a request for a UDP next hop whose
bytes exceed ``spec.largeRequestsOverTcp`` (1300 by default) goes over TCP
to the same address and port: a browser's INVITE, with 4 to 8 KB of WebRTC
SDP, would otherwise leave as a fragmented datagram that many NATs and
firewalls drop. The top Via (edgeport's own, written by the processor) then
says TCP, and its sent-by names edgeport's TCP listener when it named the
UDP one. The same destination then serves everything that follows the
request: its retransmissions (none over TCP), the ACK of a non-2xx and the
CANCEL (RFC 3261 §9.1, §17.1.1.3: they go where the request went), the
retry of auth on behalf; responses come back over the connection (RFC 3261
§18.2.2) and match the client transaction by branch as over UDP.

When the next hop does not take TCP (refused, or no connection within
``TCP_CONNECT_TIMEOUT``), the request goes over UDP as before, and so do
the large requests for that address and port for ``NO_TCP_MEMORY`` seconds:
a trunk whose firewall drops TCP silently would otherwise hold up each of
its large INVITEs for the whole connect timeout. Both outcomes are counted
in ``edgeport_large_requests_total{result="tcp"|"udp_fallback"}``.
Without a TCP listener edgeport keeps large requests on UDP: a TCP Via would
name a port where nothing listens.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, Protocol

import trio

from edgeport.metrics import METRICS
from edgeport.proxy.model import Destination
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.headers import Via
from edgeport.sip.transport import Transport
from edgeport.transports import Peer, SendError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgeport.sip.message import Request
    from edgeport.transports import Connection

logger = logging.getLogger(__name__)

TCP_CONNECT_TIMEOUT: Final = 2.0  # seconds a UDP next hop gets to accept TCP
NO_TCP_MEMORY: Final = 300.0  # seconds a next hop that took no TCP is not asked again
MAX_NO_TCP_PEERS: Final = 4096  # next hops remembered so; past it the oldest is forgotten
# Added to a request's size estimate per header line: the estimate uses the
# names as received, and a compact name (v, f, t...) is written out in full.
_NAME_SLACK_BYTES: Final = 20
_START_LINE_SLACK_BYTES: Final = 64  # Content-Length line and CRLFs the estimate leaves out

LARGE_REQUESTS: Final = METRICS.registry.counter(
    "edgeport_large_requests_total",
    "Requests over spec.largeRequestsOverTcp bytes for a UDP next hop, by how they went "
    "(tcp; udp_fallback: the next hop did not take TCP).",
    ("result",),
)


class StreamOpener(Protocol):
    """The transports' side: a live TCP connection to a peer, opened if need be."""

    async def connection_to(self, peer: Peer, *, connect_timeout: float) -> Connection:
        """Raises SendError when no connection can be had within ``connect_timeout``."""
        ...


class LargeRequests:
    """Chooses the destination of a request for a UDP next hop by its size.

    ``limit`` is ``spec.largeRequestsOverTcp`` in bytes (None: off);
    ``streams`` opens the TCP connections; ``listening_points`` name the
    TCP listener the Via must name instead of the UDP one.
    """

    def __init__(
        self,
        limit: int | None,
        streams: StreamOpener | None,
        listening_points: Sequence[Peer],
        *,
        connect_timeout: float = TCP_CONNECT_TIMEOUT,
    ) -> None:
        tcp = next((p for p in listening_points if p.transport is Transport.TCP), None)
        udp = next((p for p in listening_points if p.transport is Transport.UDP), None)
        self._limit = limit if streams is not None and tcp is not None else None
        self._streams = streams
        self._tcp_port = tcp.port if tcp is not None else 0
        self._udp_port = udp.port if udp is not None else 0
        self._connect_timeout = connect_timeout
        # (host, port) of next hops that took no TCP -> when they may be asked again.
        self._no_tcp: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._log = RateLimitedLog(logger)
        if limit is not None and tcp is None:
            logger.info("requests over %d bytes stay on UDP: no TCP listener", limit)

    def too_large(self, request: Request, peer: Peer) -> bool:
        """Whether ``request`` for ``peer`` must leave over TCP (a UDP peer, over the limit)."""
        limit = self._limit
        if limit is None or peer.transport is not Transport.UDP:
            return False
        headers = request.headers
        estimate = len(request.body) + _START_LINE_SLACK_BYTES + len(request.start_line())
        estimate += sum(len(name) + len(value) + 4 + _NAME_SLACK_BYTES for name, value in headers)
        if estimate <= limit:
            return False  # most requests: no second serialisation
        try:
            return len(request.to_bytes()) > limit
        except SipSerializeError:
            return False  # not sendable at all: the send says so, with the usual answer

    async def destination(self, request: Request, peer: Peer) -> Destination:
        """Where ``request`` goes: over TCP to ``peer``'s address when it is too large
        for UDP and the peer takes TCP (its top Via then says TCP), else to ``peer``."""
        if not self.too_large(request, peer):
            return Destination(peer)
        try:
            via = request.top_via
        except SipParseError:
            return Destination(peer)  # no Via to say TCP in: the send reports it
        assert self._streams is not None
        address = (peer.host, peer.port)
        retry_at = self._no_tcp.get(address)
        if retry_at is not None:
            if trio.current_time() < retry_at:
                LARGE_REQUESTS.labels(result="udp_fallback").inc()
                return Destination(peer)
            del self._no_tcp[address]
        tcp = Peer(Transport.TCP, peer.host, peer.port)
        try:
            conn = await self._streams.connection_to(tcp, connect_timeout=self._connect_timeout)
        except SendError as error:
            LARGE_REQUESTS.labels(result="udp_fallback").inc()
            self._remember_no_tcp(address)
            self._log.info(
                "%s: %s too large for UDP, but %s takes no TCP (%s): sent over UDP",
                request.call_id,
                request.method,
                peer,
                error,
            )
            return Destination(peer)
        self._via_over_tcp(request, via)
        LARGE_REQUESTS.labels(result="tcp").inc()
        return Destination(conn.peer, conn)

    def _remember_no_tcp(self, address: tuple[str, int]) -> None:
        self._no_tcp[address] = trio.current_time() + NO_TCP_MEMORY
        self._no_tcp.move_to_end(address)
        while len(self._no_tcp) > MAX_NO_TCP_PEERS:
            self._no_tcp.popitem(last=False)

    def _via_over_tcp(self, request: Request, via: Via) -> None:
        """RFC 3261 §18.1.1: the top Via says TCP; its sent-by names the TCP listener
        where it named the UDP one. The branch stays: it names the transaction."""
        port = via.port
        if (port if port is not None else Transport.UDP.default_port) == self._udp_port:
            port = self._tcp_port
            if via.port is None and port == Transport.TCP.default_port:
                port = None
        request.set_top_via(Via("TCP", via.host, port, dict(via.params), via.protocol))
