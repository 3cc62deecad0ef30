"""The guard facade: verdicts in order, counters, connection caps and deadlines, sans IO."""

from __future__ import annotations

import math

import pytest

from edgeport.config import (
    AccessControlConfig,
    FloodConfig,
    ProcessorConfig,
    ProtectionConfig,
)
from edgeport.metrics import EdgeportMetrics
from edgeport.protection import EdgeGuard, Verdict
from edgeport.protection.flood import FloodLimits
from edgeport.protection.guard import ConnectionTicket, Phase, source_key
from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer
from tests.e2e.conftest import make_config
from tests.protection.test_scanners import LEGIT_REGISTER, SVMAP_OPTIONS
from tests.support.ua import sip

RESPONSE = sip(
    """SIP/2.0 200 OK
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-r
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: resp-1
CSeq: 1 OPTIONS
Content-Length: 0

"""
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def udp(host: str, port: int = 5060) -> Peer:
    return Peer(Transport.UDP, host, port)


def tcp(host: str, port: int = 40000) -> Peer:
    return Peer(Transport.TCP, host, port)


def guard(clock: Clock, metrics: EdgeportMetrics, **kwargs: object) -> EdgeGuard:
    settings: dict[str, object] = {
        "flood": FloodLimits(requests=5, window=10.0, ban_time=30.0, max_tracked=100),
        "clock": clock,
        "metrics": metrics,
    }
    settings.update(kwargs)
    return EdgeGuard(**settings)  # type: ignore[arg-type]


def dropped(metrics: EdgeportMetrics, reason: str) -> float:
    return metrics.dropped_messages.labels(reason=reason).value


def closed(metrics: EdgeportMetrics, reason: str) -> float:
    return metrics.protection_closed_connections.labels(reason=reason).value


def test_denied_source_is_dropped_and_counted() -> None:
    metrics = EdgeportMetrics()
    edge = guard(Clock(), metrics, deny=["203.0.113.0/24"])
    assert edge.admit(udp("203.0.113.9"), LEGIT_REGISTER) is Verdict.DENIED
    assert edge.admit(udp("192.0.2.4"), LEGIT_REGISTER) is Verdict.ACCEPT
    assert dropped(metrics, "denied") == 1


def test_scanner_is_dropped_and_counted_legit_passes() -> None:
    metrics = EdgeportMetrics()
    edge = guard(Clock(), metrics)
    assert edge.admit(udp("203.0.113.5"), SVMAP_OPTIONS) is Verdict.SCANNER
    assert edge.admit(udp("192.0.2.4"), LEGIT_REGISTER) is Verdict.ACCEPT
    assert dropped(metrics, "scanner") == 1


def test_flooding_source_is_banned_then_unbanned() -> None:
    clock = Clock()
    metrics = EdgeportMetrics()
    edge = guard(clock, metrics)
    source = udp("203.0.113.7")
    assert [edge.admit(source, LEGIT_REGISTER) for _ in range(5)] == [Verdict.ACCEPT] * 5
    assert edge.admit(source, LEGIT_REGISTER) is Verdict.BANNED
    assert metrics.bans.labels().value == 1
    assert metrics.banned_sources.labels().value == 1
    clock.now += 29.0
    assert edge.admit(source, LEGIT_REGISTER) is Verdict.BANNED
    assert edge.open_connection(tcp("203.0.113.7")) is None
    assert closed(metrics, "banned") == 1
    assert edge.admit(udp("192.0.2.4"), LEGIT_REGISTER) is Verdict.ACCEPT  # others unaffected
    clock.now += 1.0
    assert metrics.banned_sources.labels().value == 0
    assert edge.admit(source, LEGIT_REGISTER) is Verdict.ACCEPT
    assert dropped(metrics, "banned") == 2
    assert metrics.bans.labels().value == 1  # one ban, however many drops


def test_responses_are_not_counted_toward_the_flood_limit() -> None:
    edge = guard(Clock(), EdgeportMetrics())
    assert all(edge.admit(udp("203.0.113.7"), RESPONSE) is Verdict.ACCEPT for _ in range(50))


def test_trusted_sources_are_never_limited() -> None:
    edge = guard(Clock(), EdgeportMetrics(), trusted=["10.0.0.0/8", "2001:db8::/32"])
    for host in ("10.1.2.3", "2001:db8::7"):
        assert all(edge.admit(udp(host), LEGIT_REGISTER) is Verdict.ACCEPT for _ in range(100))


def test_a_denied_trusted_source_is_still_denied() -> None:
    edge = guard(Clock(), EdgeportMetrics(), trusted=["10.0.0.0/8"], deny=["10.9.0.0/16"])
    assert edge.admit(udp("10.9.0.1"), LEGIT_REGISTER) is Verdict.DENIED


def test_flood_limit_off() -> None:
    edge = guard(Clock(), EdgeportMetrics(), flood=FloodLimits(requests=0))
    assert all(edge.admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.ACCEPT for _ in range(500))


def test_connections_per_source_are_capped_and_released() -> None:
    metrics = EdgeportMetrics()
    edge = guard(Clock(), metrics, max_connections_per_source=2, trusted=["10.0.0.0/8"])
    first = edge.open_connection(tcp("203.0.113.7", 1))
    second = edge.open_connection(tcp("203.0.113.7", 2))
    assert first is not None
    assert second is not None
    assert edge.open_connection(tcp("203.0.113.7", 3)) is None
    assert closed(metrics, "per_source_limit") == 1
    assert edge.open_connection(tcp("198.51.100.1", 1)) is not None  # another source
    edge.connection_closed(first)
    assert edge.open_connections("203.0.113.7") == 1
    assert edge.open_connection(tcp("203.0.113.7", 4)) is not None
    # Trusted sources are not capped.
    assert all(edge.open_connection(tcp("10.0.0.1", port)) for port in range(10))


def test_denied_connection_is_refused() -> None:
    metrics = EdgeportMetrics()
    edge = guard(Clock(), metrics, allow=["192.0.2.0/24"])
    assert edge.open_connection(tcp("203.0.113.7")) is None
    assert edge.open_connection(tcp("192.0.2.1")) is not None
    assert closed(metrics, "denied") == 1


def test_connection_deadlines_move_through_the_phases() -> None:
    clock = Clock(500.0)
    edge = guard(clock, EdgeportMetrics(), handshake_timeout=4.0, first_message_timeout=7.0)
    peer = tcp("203.0.113.7")
    ticket = edge.open_connection(peer)
    assert ticket is not None
    assert ticket.phase is Phase.HANDSHAKE
    assert ticket.scope.deadline == 504.0
    clock.now = 502.0
    edge.connection_ready(peer)
    assert ticket.phase is Phase.FIRST_MESSAGE
    assert ticket.scope.deadline == 509.0
    assert edge.admit(peer, LEGIT_REGISTER) is Verdict.ACCEPT
    assert ticket.phase is Phase.OPEN
    assert ticket.scope.deadline == math.inf
    edge.connection_closed(ticket)
    assert edge.open_connections("203.0.113.7") == 0


def test_a_dropped_first_message_does_not_lift_the_deadline() -> None:
    edge = guard(Clock(), EdgeportMetrics())
    peer = tcp("203.0.113.7")
    ticket = edge.open_connection(peer)
    assert ticket is not None
    edge.connection_ready(peer)
    assert edge.admit(peer, SVMAP_OPTIONS) is Verdict.SCANNER
    assert ticket.phase is Phase.FIRST_MESSAGE


@pytest.mark.parametrize("processor", ["127.0.0.9:50051", "[::1]:50051", "dispatcher:51901"])
def test_from_config_trusts_localnets_listed_and_processor(processor: str) -> None:
    config = make_config(
        localnets=("10.0.0.0/8",),
        access_control=AccessControlConfig(deny=("203.0.113.0/24",)),
        protection=ProtectionConfig(
            flood=FloodConfig(requests=3, trusted=("198.51.100.0/24",)),
            scanners=("evil-agent",),
            max_connections_per_source=4,
        ),
        processor=ProcessorConfig("builtin"),
    )
    edge = EdgeGuard.from_config(config, processor)
    assert "10.1.1.1" in edge.trusted
    assert "198.51.100.5" in edge.trusted
    assert ("127.0.0.9" in edge.trusted) is processor.startswith("127.")
    assert ("::1" in edge.trusted) is processor.startswith("[")
    assert not edge.access.permits("203.0.113.1")
    assert edge.flood.limits.requests == 3
    assert edge.scanners.patterns == ("evil-agent",)
    assert edge.max_connections_per_source == 4


def test_from_config_flood_disabled() -> None:
    config = make_config(protection=ProtectionConfig(flood=FloodConfig(enabled=False)))
    assert not EdgeGuard.from_config(config, "127.0.0.1:1").flood.limits.enabled


def test_ipv6_sources_are_limited_by_their_64() -> None:
    metrics = EdgeportMetrics()
    edge = guard(Clock(), metrics, max_connections_per_source=2)
    # Five requests from five addresses of one /64, then one more: banned.
    for i in range(5):
        assert edge.admit(udp(f"2001:db8:1:2::{i + 1}"), LEGIT_REGISTER) is Verdict.ACCEPT
    assert edge.admit(udp("2001:db8:1:2:ffff::9"), LEGIT_REGISTER) is Verdict.BANNED
    assert edge.admit(udp("2001:db8:1:3::1"), LEGIT_REGISTER) is Verdict.ACCEPT  # next /64
    assert edge.open_connection(tcp("2001:db8:1:2::77")) is None  # the /64 is banned
    assert edge.open_connection(tcp("2001:db8:9::1", 1)) is not None
    assert edge.open_connection(tcp("2001:db8:9::2", 2)) is not None
    assert edge.open_connection(tcp("2001:db8:9::3", 3)) is None  # two per /64
    assert edge.open_connections("2001:db8:9::ab") == 2


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("[2001:db8::1]", "2001:db8::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_source_key(host: str, key: str) -> None:
    assert source_key(host) == key


class Relay:
    """Worker processes' guards wired together in memory: what one tells its peers
    reaches the others at once (``counts_due`` reports right away, as the exchange
    does a few milliseconds later)."""

    def __init__(self, guards: list[EdgeGuard]) -> None:
        self.guards = guards
        self.peers = [_RelayPeer(self, index) for index in range(len(guards))]
        for index, edge in enumerate(guards):
            edge.share(self.peers[index], worker=index, workers=len(guards))
        self.bans_sent = 0

    def others(self, index: int) -> list[EdgeGuard]:
        return [edge for i, edge in enumerate(self.guards) if i != index]


class _RelayPeer:
    def __init__(self, relay: Relay, index: int) -> None:
        self.relay = relay
        self.index = index

    def ban_started(self, source: str, seconds: float) -> None:
        self.relay.bans_sent += 1
        for edge in self.relay.others(self.index):
            edge.apply_ban(source, seconds)

    def counts_due(self) -> None:
        for source, requests in self.relay.guards[self.index].take_unreported(256):
            for edge in self.relay.others(self.index):
                edge.add_reported(source, requests)

    def counts_pending(self) -> None:
        """Reported later, by the exchange's timer: here, not at all."""

    def connection_opened(self, source: str, serial: int, opened_at: float) -> None:
        for edge in self.relay.others(self.index):
            edge.remote_connection_opened(self.index, source, serial, opened_at)

    def connection_closed(self, source: str, serial: int) -> None:
        for edge in self.relay.others(self.index):
            edge.remote_connection_closed(self.index, source, serial)


def workers(clock: Clock, count: int, **kwargs: object) -> tuple[list[EdgeGuard], Relay]:
    settings: dict[str, object] = {
        "flood": FloodLimits(requests=40, window=10.0, ban_time=30.0, max_tracked=100),
        "stamp_clock": clock,
    }
    settings.update(kwargs)
    guards = [guard(clock, EdgeportMetrics(), **settings) for _ in range(count)]
    return guards, Relay(guards)


def test_protection_is_per_worker_a_source_spread_over_the_workers_is_banned_at_the_limit() -> None:
    clock = Clock()
    guards, relay = workers(clock, 2)
    source = udp("203.0.113.7")
    accepted = 0
    for n in range(200):  # the kernel spreads the source's ports over both workers
        clock.now += 0.01
        if guards[n % 2].admit(source, LEGIT_REGISTER) is Verdict.ACCEPT:
            accepted += 1
    # Each worker hides at most a quarter of the limit from the other.
    assert 40 <= accepted <= 40 + 40 // 4
    assert relay.bans_sent == 1
    for edge in guards:
        assert edge.admit(udp("203.0.113.7", 40001), LEGIT_REGISTER) is Verdict.BANNED
        assert edge.open_connection(tcp("203.0.113.7")) is None
        assert edge.admit(udp("192.0.2.4"), LEGIT_REGISTER) is Verdict.ACCEPT


def test_a_ban_another_worker_started_ends_with_it() -> None:
    clock = Clock()
    guards, _ = workers(clock, 3)
    guards[0].peers.ban_started("203.0.113.7", 30.0)  # type: ignore[union-attr]
    assert guards[0].admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.ACCEPT  # not its own
    for edge in guards[1:]:
        assert edge.admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.BANNED
        assert edge.banned_now() == 1
        assert edge.bans_in_force() == [("203.0.113.7", 30.0)]
    clock.now += 30.0
    assert all(edge.banned_now() == 0 for edge in guards)
    assert guards[1].admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.ACCEPT


def test_reported_counts_are_bounded_and_need_the_flood_limit() -> None:
    clock = Clock()
    edge = guard(clock, EdgeportMetrics())
    edge.add_reported("203.0.113.7", 3)
    assert edge.admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.ACCEPT  # 4 of 5
    edge.add_reported("203.0.113.7", 2)  # 6 of 5: banned here
    assert edge.admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.BANNED
    off = guard(clock, EdgeportMetrics(), flood=FloodLimits(requests=0))
    off.add_reported("203.0.113.7", 10_000)
    assert off.admit(udp("203.0.113.7"), LEGIT_REGISTER) is Verdict.ACCEPT


def test_connections_on_every_worker_count_toward_the_per_source_cap() -> None:
    clock = Clock()
    guards, _ = workers(clock, 2, max_connections_per_source=3)
    first = guards[0].open_connection(tcp("203.0.113.7", 1))
    clock.now += 1
    second = guards[1].open_connection(tcp("203.0.113.7", 2))
    clock.now += 1
    third = guards[0].open_connection(tcp("203.0.113.7", 3))
    assert first is not None
    assert second is not None
    assert third is not None
    assert [edge.open_connections("203.0.113.7") for edge in guards] == [3, 3]
    assert guards[1].open_connection(tcp("203.0.113.7", 4)) is None
    assert guards[0].open_connection(tcp("203.0.113.7", 5)) is None
    guards[1].connection_closed(second)
    assert [edge.open_connections("203.0.113.7") for edge in guards] == [2, 2]
    assert guards[1].open_connection(tcp("203.0.113.7", 6)) is not None


def test_connections_opened_at_once_on_two_workers_beyond_the_cap_close_the_latest() -> None:
    clock = Clock()
    metrics = [EdgeportMetrics(), EdgeportMetrics()]
    guards = [
        guard(
            clock,
            metrics[i],
            max_connections_per_source=2,
            stamp_clock=clock,
        )
        for i in range(2)
    ]
    # Each worker admits two before hearing of the other's (no relay yet).
    tickets: list[list[ConnectionTicket]] = [[], []]
    for n, i in enumerate((0, 1, 1, 0)):
        clock.now += 1
        ticket = guards[i].open_connection(tcp("203.0.113.7", n))
        assert ticket is not None
        tickets[i].append(ticket)
    # Then they hear of each other: the two opened last (worker 1's second, worker 0's
    # second) are closed by the worker holding them.
    for i in range(2):
        for ticket in tickets[i]:
            guards[1 - i].remote_connection_opened(i, ticket.host, ticket.serial, ticket.opened_at)
    assert [t.trimmed for t in tickets[0]] == [False, True]
    assert [t.trimmed for t in tickets[1]] == [False, True]
    assert [closed(m, "per_source_limit") for m in metrics] == [1, 1]


def test_a_restarted_worker_takes_its_connections_with_it() -> None:
    clock = Clock()
    guards, _ = workers(clock, 2, max_connections_per_source=2)
    assert guards[1].open_connection(tcp("203.0.113.7", 1)) is not None
    assert guards[1].open_connection(tcp("203.0.113.7", 2)) is not None
    assert guards[0].open_connection(tcp("203.0.113.7", 3)) is None
    guards[0].forget_worker(1)
    assert guards[0].open_connections("203.0.113.7") == 0
    assert guards[0].local_connections() == []
    assert guards[1].local_connections()[0][0] == "203.0.113.7"
