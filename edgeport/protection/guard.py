"""The one facade the transport layer calls before a message or connection costs more.

:class:`EdgeGuard` owns the access lists, the flood limiter, the scanner
filter and the per-source connection accounting, and counts what it stops
in the metrics. Its checks take the source as the transport layer reports it
and the raw bytes, before any parsing:

- :meth:`EdgeGuard.admit` for every received message (a UDP datagram, or a
  framed message on a stream connection): access lists, bans, scanners, the
  flood limit, in that order (cheapest and most decisive first);
- :meth:`EdgeGuard.open_connection` when a stream connection is accepted:
  access lists, bans, the per-source cap; it returns a
  :class:`ConnectionTicket` whose cancel scope bounds the handshakes (TLS,
  WebSocket upgrade) and then the wait for the first SIP message;
- :meth:`EdgeGuard.connection_ready` once the handshakes are done, and
  :meth:`EdgeGuard.connection_closed` when the connection ends.

Time comes from an injectable clock (``trio.current_time`` when serving), so
the checks are tested with plain numbers.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import logging
import math
import socket
from typing import TYPE_CHECKING, Final

import trio

from edgeport.metrics import METRICS, EdgeportMetrics
from edgeport.protection.acl import AccessList, NetworkSet
from edgeport.protection.flood import FloodLimiter, FloodLimits
from edgeport.protection.scanners import DEFAULT_SCANNERS, ScannerFilter
from edgeport.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from edgeport.config import EdgePortConfig
    from edgeport.transports.base import Peer

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS_PER_SOURCE: Final = 256
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds
DEFAULT_FIRST_MESSAGE_TIMEOUT: Final = 30.0  # seconds
_RESPONSE_START: Final = b"SIP/"
IPV6_SOURCE_PREFIX: Final = 64  # an IPv6 source is limited and banned as its /64


def source_key(host: str) -> str:
    """What the flood limit, bans and the connection cap count by: an IPv4 address
    itself, an IPv6 address's /64 (one subscriber's allocation: an attacker rotating
    addresses inside it is still one source)."""
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.strip("[]"))
    except OSError:
        return host
    if packed[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    prefix = packed[: IPV6_SOURCE_PREFIX // 8] + b"\0" * (16 - IPV6_SOURCE_PREFIX // 8)
    return f"{socket.inet_ntop(socket.AF_INET6, prefix)}/{IPV6_SOURCE_PREFIX}"


class Verdict(enum.Enum):
    """What to do with a message or connection; the value is the metrics reason."""

    ACCEPT = "accept"
    DENIED = "denied"
    BANNED = "banned"
    SCANNER = "scanner"
    CONNECTION_LIMIT = "per_source_limit"


class Phase(enum.Enum):
    """Where a new stream connection is; the value names its deadline in the metrics."""

    HANDSHAKE = "handshake_timeout"
    FIRST_MESSAGE = "first_message_timeout"
    OPEN = "open"


class ConnectionTicket:
    """One admitted inbound connection: its source and its current deadline.

    The transport layer runs the connection inside ``scope``; the guard moves
    the scope's deadline as the connection goes through its phases.
    """

    __slots__ = ("counted", "host", "peer", "phase", "scope")

    def __init__(self, peer: Peer, deadline: float, *, counted: bool) -> None:
        self.peer = peer
        self.host = source_key(peer.host)
        self.phase = Phase.HANDSHAKE
        self.scope = trio.CancelScope(deadline=deadline)
        self.counted = counted  # toward the per-source cap


class EdgeGuard:
    """Access lists, flood limit with bans, scanner drop, per-source connection limits."""

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        trusted: Iterable[str] = (),
        flood: FloodLimits | None = None,
        scanners: Iterable[str] = DEFAULT_SCANNERS,
        max_connections_per_source: int = DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        first_message_timeout: float = DEFAULT_FIRST_MESSAGE_TIMEOUT,
        clock: Callable[[], float] = trio.current_time,
        metrics: EdgeportMetrics = METRICS,
    ) -> None:
        self.access = AccessList(allow, deny)
        self.trusted = NetworkSet(trusted)
        self.flood = FloodLimiter(flood or FloodLimits())
        self.scanners = ScannerFilter(scanners)
        self.max_connections_per_source = max_connections_per_source
        self.handshake_timeout = handshake_timeout
        self.first_message_timeout = first_message_timeout
        self.clock = clock
        self._connections: dict[str, int] = {}  # host -> open inbound connections
        self._tickets: dict[Peer, ConnectionTicket] = {}
        self._dropped = {
            verdict: metrics.dropped_messages.labels(reason=verdict.value)
            for verdict in (Verdict.DENIED, Verdict.BANNED, Verdict.SCANNER)
        }
        self._bans = metrics.bans
        self._closed = metrics.protection_closed_connections
        metrics.banned_sources.set_function(self.banned_now)
        self._log = RateLimitedLog(logger)

    @classmethod
    def from_config(cls, config: EdgePortConfig, processor_addr: str) -> EdgeGuard:
        """The guard for a running edgeport; ``processor_addr`` is the effective
        ``host:port`` (its host is trusted when it is an IP address)."""
        protection = config.protection
        trusted = [*config.localnets, *protection.flood.trusted]
        processor_host = processor_addr.rpartition(":")[0].strip("[]")
        with contextlib.suppress(ValueError):  # a host name is not resolved here
            trusted.append(str(ipaddress.ip_network(processor_host)))
        return cls(
            allow=config.access_control.allow,
            deny=config.access_control.deny,
            trusted=trusted,
            flood=FloodLimits(
                requests=protection.flood.requests if protection.flood.enabled else 0,
                window=protection.flood.window,
                ban_time=protection.flood.ban_time,
                max_tracked=protection.flood.max_tracked,
            ),
            scanners=protection.scanners,
            max_connections_per_source=protection.max_connections_per_source,
            handshake_timeout=protection.handshake_timeout,
            first_message_timeout=protection.first_message_timeout,
        )

    # -- messages ------------------------------------------------------------

    def admit(self, peer: Peer, data: bytes) -> Verdict:
        """The verdict on one received message from ``peer`` (a datagram or a framed
        stream message); anything but ACCEPT is dropped without an answer and counted."""
        verdict = self._judge(peer.host, data)
        if verdict is not Verdict.ACCEPT:
            self._dropped[verdict].inc()
            return verdict
        ticket = self._tickets.get(peer)
        if ticket is not None and ticket.phase is not Phase.OPEN:
            ticket.phase = Phase.OPEN
            ticket.scope.deadline = math.inf
        return verdict

    def _judge(self, host: str, data: bytes) -> Verdict:
        if self.access.active and not self.access.permits(host):
            return Verdict.DENIED
        flood = self.flood
        now = self.clock()
        source = host if ":" not in host else source_key(host)
        if flood.banned(source, now):
            return Verdict.BANNED
        if self.scanners.matches(data):
            self._log.info("dropped a message from a scanner at %s", host)
            return Verdict.SCANNER
        if (
            flood.limits.enabled
            and not data.startswith(_RESPONSE_START)
            and host not in self.trusted
            and flood.count(source, now)
        ):
            self._bans.inc()
            self._log.warning(
                "banned %s for %g s: more than %d requests in %g s",
                source,
                flood.limits.ban_time,
                flood.limits.requests,
                flood.limits.window,
            )
            return Verdict.BANNED
        return Verdict.ACCEPT

    def stray_response(self, peer: Peer) -> None:
        """A response from ``peer`` that matched nothing edgeport sent: it counts
        toward the source's flood limit as a request does (a forged response
        costs a parse and a lookup, and may be a probe)."""
        flood = self.flood
        if not flood.limits.enabled or peer.host in self.trusted:
            return
        now = self.clock()
        source = source_key(peer.host)
        if not flood.banned(source, now) and flood.count(source, now):
            self._bans.inc()
            self._log.warning(
                "banned %s for %g s: more than %d requests and stray responses in %g s",
                source,
                flood.limits.ban_time,
                flood.limits.requests,
                flood.limits.window,
            )

    def banned_now(self) -> float:
        return float(self.flood.banned_now(self.clock()))

    # -- connections ---------------------------------------------------------

    def open_connection(self, peer: Peer) -> ConnectionTicket | None:
        """A ticket for a newly accepted connection from ``peer``, or None (counted)
        when it must be closed at once."""
        host = peer.host
        source = source_key(host)
        verdict = Verdict.ACCEPT
        if self.access.active and not self.access.permits(host):
            verdict = Verdict.DENIED
        elif self.flood.banned(source, self.clock()):
            verdict = Verdict.BANNED
        counted = host not in self.trusted
        if (
            verdict is Verdict.ACCEPT
            and counted
            and self._connections.get(source, 0) >= self.max_connections_per_source
        ):
            verdict = Verdict.CONNECTION_LIMIT
        if verdict is not Verdict.ACCEPT:
            self._closed.labels(reason=verdict.value).inc()
            if verdict is Verdict.CONNECTION_LIMIT:
                self._log.info(
                    "refused a connection from %s: %d open", host, self.max_connections_per_source
                )
            return None
        if counted:
            self._connections[source] = self._connections.get(source, 0) + 1
        ticket = ConnectionTicket(peer, self.clock() + self.handshake_timeout, counted=counted)
        self._tickets[peer] = ticket
        return ticket

    def connection_ready(self, peer: Peer) -> None:
        """The handshakes are done: the first SIP message is now due."""
        ticket = self._tickets.get(peer)
        if ticket is not None and ticket.phase is Phase.HANDSHAKE:
            ticket.phase = Phase.FIRST_MESSAGE
            ticket.scope.deadline = self.clock() + self.first_message_timeout

    def connection_closed(self, ticket: ConnectionTicket) -> None:
        """The connection ended; counts it when its deadline closed it."""
        if self._tickets.get(ticket.peer) is ticket:
            del self._tickets[ticket.peer]
        if ticket.counted:
            left = self._connections.get(ticket.host, 0) - 1
            if left > 0:
                self._connections[ticket.host] = left
            else:
                self._connections.pop(ticket.host, None)
        if ticket.scope.cancelled_caught and ticket.phase is not Phase.OPEN:
            self._closed.labels(reason=ticket.phase.value).inc()
            self._log.info("closed a connection from %s: %s", ticket.host, ticket.phase.value)

    def open_connections(self, host: str) -> int:
        """Open inbound connections counted against ``host``'s source (its /64 for IPv6)."""
        return self._connections.get(source_key(host), 0)
