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

With worker processes the limits hold for the whole edgeport, not per
worker: :meth:`EdgeGuard.share` connects the guard to its siblings
(:class:`GuardPeers`, :mod:`edgeport.workers.guard_sync`). The guard tells
them every ban it starts, the requests it counted (:mod:`.sharing`) and
every connection it counts toward the per-source cap; it applies their bans,
adds their counts and counts their connections. Connections opened at once
on several workers can exceed the cap for a moment: once every worker has
heard of them, the ones beyond the cap (by opening time, a system-wide
monotonic clock; the lower worker index on a tie) are closed by the worker
that holds them.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import itertools
import logging
import math
import socket
import time
from typing import TYPE_CHECKING, Final, Protocol

import trio

from edgeport.config.model import (
    DEFAULT_FIRST_MESSAGE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
    DEFAULT_SCANNERS,
)
from edgeport.metrics import METRICS, EdgeportMetrics
from edgeport.protection.acl import AccessList, NetworkSet
from edgeport.protection.flood import FloodLimiter, FloodLimits
from edgeport.protection.scanners import ScannerFilter
from edgeport.protection.sharing import UnreportedCounts
from edgeport.ratelimit import RateLimitedLog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from edgeport.config import EdgePortConfig
    from edgeport.transports.base import Peer

logger = logging.getLogger(__name__)

_RESPONSE_START: Final = b"SIP/"
IPV6_SOURCE_PREFIX: Final = 64  # an IPv6 source is limited and banned as its /64
MAX_REMOTE_CONNECTIONS: Final = 1_000_000  # other workers' connections counted here


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


def _trusted(config: EdgePortConfig, processor_addr: str) -> list[str]:
    """Sources the flood limit never counts: the localnets, ``flood.trusted`` and the
    processor's host when it is an IP address (a host name is not resolved here)."""
    trusted = [*config.localnets, *config.protection.flood.trusted]
    processor_host = processor_addr.rpartition(":")[0].strip("[]")
    with contextlib.suppress(ValueError):
        trusted.append(str(ipaddress.ip_network(processor_host)))
    return trusted


def _flood_limits(config: EdgePortConfig) -> FloodLimits:
    flood = config.protection.flood
    return FloodLimits(
        requests=flood.requests if flood.enabled else 0,
        window=flood.window,
        ban_time=flood.ban_time,
        max_tracked=flood.max_tracked,
    )


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
    the scope's deadline as the connection goes through its phases, and
    cancels it when the connection is one too many for its source.
    """

    __slots__ = ("counted", "host", "opened_at", "peer", "phase", "scope", "serial", "trimmed")

    def __init__(
        self, peer: Peer, deadline: float, *, counted: bool, serial: int = 0, opened_at: float = 0
    ) -> None:
        self.peer = peer
        self.host = source_key(peer.host)
        self.phase = Phase.HANDSHAKE
        self.scope = trio.CancelScope(deadline=deadline)
        self.counted = counted  # toward the per-source cap
        self.serial = serial  # names it to the other workers
        self.opened_at = opened_at  # system-wide monotonic time
        self.trimmed = False  # closed: one too many for its source across the workers


class GuardPeers(Protocol):
    """The other worker processes, as a guard tells them what it decided."""

    def ban_started(self, source: str, seconds: float) -> None: ...

    def counts_due(self) -> None:
        """A source's unreported requests should be reported now."""
        ...

    def counts_pending(self) -> None:
        """Requests were counted since the last report: report within a short while.

        Told once per report: the first count after :meth:`EdgeGuard.take_unreported`.
        """
        ...

    def connection_opened(self, source: str, serial: int, opened_at: float) -> None: ...

    def connection_closed(self, source: str, serial: int) -> None: ...


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
        stamp_clock: Callable[[], float] = time.monotonic,
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
        self.stamp_clock = stamp_clock  # comparable between worker processes
        # source -> serial -> ticket: open inbound connections counted toward the cap
        self._connections: dict[str, dict[int, ConnectionTicket]] = {}
        self._tickets: dict[Peer, ConnectionTicket] = {}
        self._serials = itertools.count(1)
        # edgeport.workers: the siblings, and what they reported.
        self.peers: GuardPeers | None = None
        self.worker = 0
        self._workers = 1
        self._unreported: UnreportedCounts | None = None
        self._counts_pending = False  # counted since the last take_unreported
        # source -> (worker, serial) -> (opened_at, snapshot): other workers' counted
        # connections, with the last snapshot of the worker's that listed each
        self._remote: dict[str, dict[tuple[int, int], tuple[float, int]]] = {}
        self._remote_total = 0
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
        return cls(
            allow=config.access_control.allow,
            deny=config.access_control.deny,
            trusted=_trusted(config, processor_addr),
            flood=_flood_limits(config),
            scanners=protection.scanners,
            max_connections_per_source=protection.max_connections_per_source,
            handshake_timeout=protection.handshake_timeout,
            first_message_timeout=protection.first_message_timeout,
        )

    def reconfigure(self, config: EdgePortConfig, processor_addr: str) -> None:
        """A reload: the lists, limits and deadlines of ``config`` from the next message
        or connection on. The bans in force and the requests counted are kept (a
        source banned before the reload stays banned for the rest of its ban);
        connections already open stay open, whatever the new lists say of them, and
        keep the deadline they were given."""
        protection = config.protection
        self.access = AccessList(config.access_control.allow, config.access_control.deny)
        self.trusted = NetworkSet(_trusted(config, processor_addr))
        limits = _flood_limits(config)
        if limits != self.flood.limits:
            self.flood.reconfigure(limits)
            if self.peers is not None:
                self._unreported = (
                    UnreportedCounts(
                        requests=limits.requests,
                        window=limits.window,
                        workers=self._workers,
                        max_tracked=limits.max_tracked,
                    )
                    if limits.enabled
                    else None
                )
        self.scanners = ScannerFilter(protection.scanners)
        self.max_connections_per_source = protection.max_connections_per_source
        self.handshake_timeout = protection.handshake_timeout
        self.first_message_timeout = protection.first_message_timeout

    def share(self, peers: GuardPeers, *, worker: int, workers: int) -> None:
        """Hold the limits together with the other workers (this one is ``worker``)."""
        self.peers = peers
        self.worker = worker
        self._workers = workers
        limits = self.flood.limits
        if limits.enabled:
            self._unreported = UnreportedCounts(
                requests=limits.requests,
                window=limits.window,
                workers=workers,
                max_tracked=limits.max_tracked,
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
            and self._count(source, now)
        ):
            return Verdict.BANNED
        return Verdict.ACCEPT

    def stray_response(self, peer: Peer) -> None:
        """A response from ``peer`` that matched nothing edgeport sent: it counts
        toward the source's flood limit as a request does (a forged response
        costs a parse and a lookup, and may be a probe)."""
        if not self.flood.limits.enabled or peer.host in self.trusted:
            return
        now = self.clock()
        source = source_key(peer.host)
        if not self.flood.banned(source, now):
            self._count(source, now)

    def _count(self, source: str, now: float) -> bool:
        """Count one request (or stray response) of ``source``; True when it starts a ban."""
        if self.flood.count(source, now):
            self._start_ban(source)
            return True
        unreported = self._unreported
        if unreported is not None:
            assert self.peers is not None
            if unreported.note(source, now):
                self._counts_pending = True
                self.peers.counts_due()
            elif not self._counts_pending:
                self._counts_pending = True
                self.peers.counts_pending()
        return False

    def _start_ban(self, source: str) -> None:
        limits = self.flood.limits
        self._bans.inc()
        self._log.warning(
            "banned %s for %g s: more than %d requests in %g s",
            source,
            limits.ban_time,
            limits.requests,
            limits.window,
        )
        if self.peers is not None:
            assert self._unreported is not None
            self._unreported.forget(source)
            self.peers.ban_started(source, limits.ban_time)

    def banned_now(self) -> float:
        return float(self.flood.banned_now(self.clock()))

    # -- what the other workers report ---------------------------------------

    def take_unreported(self, limit: int) -> list[tuple[str, int]]:
        """Requests counted here to report to the other workers now (busiest sources)."""
        self._counts_pending = False
        if self._unreported is None:
            return []
        return self._unreported.take(self.clock(), limit)

    def add_reported(self, source: str, requests: int) -> None:
        """Another worker counted ``requests`` from ``source``; they may start a ban here."""
        flood = self.flood
        now = self.clock()
        if (
            flood.limits.enabled
            and requests > 0
            and not flood.banned(source, now)
            and flood.count(source, now, requests)
        ):
            self._start_ban(source)

    def apply_ban(self, source: str, seconds: float) -> None:
        """Another worker banned ``source`` for ``seconds``."""
        self.flood.apply_ban(source, self.clock(), seconds)
        if self._unreported is not None:
            self._unreported.forget(source)

    def bans_in_force(self) -> list[tuple[str, float]]:
        """(source, seconds left) of every ban in force, for a worker that starts."""
        return self.flood.bans_in_force(self.clock())

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
            and self.open_connections(host) >= self.max_connections_per_source
        ):
            verdict = Verdict.CONNECTION_LIMIT
        if verdict is not Verdict.ACCEPT:
            self._closed.labels(reason=verdict.value).inc()
            if verdict is Verdict.CONNECTION_LIMIT:
                self._log.info(
                    "refused a connection from %s: %d open", host, self.max_connections_per_source
                )
            return None
        ticket = ConnectionTicket(
            peer,
            self.clock() + self.handshake_timeout,
            counted=counted,
            serial=next(self._serials),
            opened_at=self.stamp_clock(),
        )
        if counted:
            self._connections.setdefault(source, {})[ticket.serial] = ticket
            if self.peers is not None:
                self.peers.connection_opened(source, ticket.serial, ticket.opened_at)
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
            mine = self._connections.get(ticket.host)
            if mine is not None and mine.pop(ticket.serial, None) is not None:
                if not mine:
                    del self._connections[ticket.host]
                if self.peers is not None:
                    self.peers.connection_closed(ticket.host, ticket.serial)
        if ticket.scope.cancelled_caught and ticket.phase is not Phase.OPEN and not ticket.trimmed:
            self._closed.labels(reason=ticket.phase.value).inc()
            self._log.info("closed a connection from %s: %s", ticket.host, ticket.phase.value)

    def open_connections(self, host: str) -> int:
        """Open inbound connections counted against ``host``'s source (its /64 for IPv6),
        on every worker."""
        source = source_key(host)
        return len(self._connections.get(source, ())) + len(self._remote.get(source, ()))

    def local_connections(self) -> list[tuple[str, int, float]]:
        """(source, serial, opened_at) of every counted connection here, for a worker
        that starts."""
        return [
            (source, serial, ticket.opened_at)
            for source, tickets in self._connections.items()
            for serial, ticket in tickets.items()
        ]

    def remote_connection_opened(
        self, worker: int, source: str, serial: int, opened_at: float, snapshot: int = 0
    ) -> None:
        """Worker ``worker`` counted a connection from ``source``; when that puts the
        source over its cap, the ones here that came last are closed."""
        theirs = self._remote.setdefault(source, {})
        if (worker, serial) not in theirs:
            if self._remote_total >= MAX_REMOTE_CONNECTIONS:
                self._log.warning(
                    "other workers' connections: %d counted, no more", MAX_REMOTE_CONNECTIONS
                )
                if not theirs:
                    del self._remote[source]
                return
            self._remote_total += 1
        theirs[(worker, serial)] = (opened_at, snapshot)
        self._trim(source)

    def remote_connection_closed(self, worker: int, source: str, serial: int) -> None:
        theirs = self._remote.get(source)
        if theirs is not None and theirs.pop((worker, serial), None) is not None:
            self._remote_total -= 1
            if not theirs:
                del self._remote[source]

    def remote_snapshot_done(self, worker: int, snapshot: int) -> None:
        """Worker ``worker`` listed every connection it counts in ``snapshot``: any other
        one counted here for it was closed (its announcement was lost)."""
        self._drop_remote(lambda key, listed_in: key[0] == worker and listed_in != snapshot)

    def forget_worker(self, worker: int) -> None:
        """Worker ``worker`` restarted: the connections it held are gone."""
        self._drop_remote(lambda key, _listed_in: key[0] == worker)

    def _drop_remote(self, stale: Callable[[tuple[int, int], int], bool]) -> None:
        for source in list(self._remote):
            theirs = self._remote[source]
            for key in [key for key, (_at, listed_in) in theirs.items() if stale(key, listed_in)]:
                del theirs[key]
                self._remote_total -= 1
            if not theirs:
                del self._remote[source]

    def _trim(self, source: str) -> None:
        mine = self._connections.get(source)
        theirs = self._remote.get(source, {})
        cap = self.max_connections_per_source
        if not mine or len(mine) + len(theirs) <= cap:
            return
        ranked: list[tuple[float, int, int, ConnectionTicket | None]] = [
            (ticket.opened_at, self.worker, serial, ticket) for serial, ticket in mine.items()
        ]
        ranked.extend(
            (opened_at, w, serial, None) for (w, serial), (opened_at, _) in theirs.items()
        )
        ranked.sort(key=lambda entry: entry[:3])
        for _opened_at, _worker, _serial, ticket in ranked[cap:]:
            if ticket is not None and not ticket.trimmed:
                ticket.trimmed = True
                ticket.scope.cancel()
                self._closed.labels(reason=Verdict.CONNECTION_LIMIT.value).inc()
                self._log.info(
                    "closed a connection from %s: %d open on every worker", ticket.host, cap
                )
