"""Two workers' guards over real hand-off sockets: bans, counted requests and
connections reach the other worker; what arrives malformed is ignored."""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import trio
import trio.testing

from edgeport.metrics import EdgeportMetrics
from edgeport.protection import EdgeGuard, Verdict
from edgeport.protection.flood import FloodLimits
from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.workers.guard_sync import (
    MAX_ITEMS,
    REPORT_INTERVAL,
    SNAPSHOT_INTERVAL,
    SNAPSHOTS_AFTER_A_CHANGE,
    GuardExchange,
)
from edgeport.workers.handoff import Handoff, HandoffLink
from tests.protection.test_scanners import LEGIT_REGISTER

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

DEADLINE = 10  # seconds
LIMIT = 40  # requests per window


def new_guard(**kwargs: Any) -> EdgeGuard:
    settings: dict[str, Any] = {
        "flood": FloodLimits(requests=LIMIT, window=30.0, ban_time=60.0, max_tracked=1000),
        "metrics": EdgeportMetrics(),
    }
    settings.update(kwargs)
    return EdgeGuard(**settings)


def udp(host: str, port: int = 5060) -> Peer:
    return Peer(Transport.UDP, host, port)


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not met")


@asynccontextmanager
async def two_guards(
    tmp_path: Path, **kwargs: Any
) -> AsyncIterator[tuple[list[GuardExchange], list[EdgeGuard]]]:
    guards = [new_guard(**kwargs) for _ in range(2)]
    exchanges = [GuardExchange(HandoffLink(tmp_path, i, 2), guards[i]) for i in range(2)]

    async def deliver_to(index: int, handoff: Any) -> None:
        exchanges[index].receive(handoff.data)  # the current exchange of that worker

    async with trio.open_nursery() as nursery:
        for index, exchange in enumerate(exchanges):
            await nursery.start(exchange.link.serve, lambda h, i=index: deliver_to(i, h))
            nursery.start_soon(exchange.run)
        yield exchanges, guards
        nursery.cancel_scope.cancel()


async def test_protection_is_per_worker_a_source_spread_over_two_workers_is_banned_at_the_limit(
    tmp_path: Path,
) -> None:
    with trio.fail_after(DEADLINE):
        async with two_guards(tmp_path) as (_, guards):
            accepted = 0
            for n in range(3 * LIMIT):  # a flood of a few hundred a second, on both
                if guards[n % 2].admit(udp("203.0.113.7", 40000 + n), LEGIT_REGISTER) is (
                    Verdict.ACCEPT
                ):
                    accepted += 1
                await trio.sleep(0.002)
            assert LIMIT <= accepted <= LIMIT + LIMIT // 4
            # Whichever worker banned it, both drop it now.
            await wait_for(lambda: all(edge.banned_now() == 1 for edge in guards))


async def test_a_ban_reaches_the_other_worker_at_once(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with two_guards(tmp_path) as (_, guards):
            for _ in range(LIMIT):  # all on worker 0 (one source port)
                assert guards[0].admit(udp("203.0.113.9"), LEGIT_REGISTER) is Verdict.ACCEPT
            assert guards[0].admit(udp("203.0.113.9"), LEGIT_REGISTER) is Verdict.BANNED
            banned_at = trio.current_time()
            await wait_for(lambda: guards[1].banned_now() == 1)
            assert trio.current_time() - banned_at < 1.0
            assert guards[1].admit(udp("203.0.113.9", 40001), LEGIT_REGISTER) is Verdict.BANNED


async def test_connections_are_counted_on_both_and_a_restarted_worker_learns_them(
    tmp_path: Path,
) -> None:
    with trio.fail_after(DEADLINE):
        async with two_guards(tmp_path, max_connections_per_source=2) as (exchanges, guards):
            first = guards[0].open_connection(Peer(Transport.TCP, "203.0.113.7", 1))
            assert first is not None
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 1)
            for _ in range(LIMIT + 1):
                guards[0].admit(udp("198.51.100.1"), LEGIT_REGISTER)
            # Worker 1 restarts: a fresh guard, told what is in force when it says hello.
            guards[1] = new_guard(max_connections_per_source=2)
            exchanges[1] = GuardExchange(exchanges[1].link, guards[1])
            exchanges[0].hello_from(1)
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 1)
            await wait_for(lambda: guards[1].banned_now() == 1)
            assert guards[1].open_connection(Peer(Transport.TCP, "198.51.100.1", 2)) is None
            guards[0].connection_closed(first)
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 0)


async def test_malformed_reports_are_ignored(tmp_path: Path) -> None:
    edge = new_guard()
    exchange = GuardExchange(HandoffLink(tmp_path, 0, 2), edge)
    long_source = "x" * 65
    for document in (
        b"not json",
        b"[]",
        json.dumps({"from": "one"}).encode(),
        json.dumps({"from": 0, "ban": [["203.0.113.1", 60]]}).encode(),  # from itself
        json.dumps({"from": 5, "ban": [["203.0.113.1", 60]]}).encode(),  # no such worker
        json.dumps(
            {
                "from": 1,
                "ban": [["203.0.113.2", "60"], ["203.0.113.3", -1], [long_source, 60], [7, 60]],
                "counts": [["203.0.113.4", 1.5], ["203.0.113.5", True], ["203.0.113.6", 1e309]],
                "open": [["203.0.113.7", 0, 1.0], ["203.0.113.7", 1, "then"], "x"],
                "close": {"203.0.113.7": 1},
            }
        ).encode(),
        json.dumps({"from": 1, "snapshot": "1", "open": [["203.0.113.7", 9, 1.0]]}).encode(),
        json.dumps({"from": 1, "snapshot": True, "open": [["203.0.113.7", 9, 1.0]]}).encode(),
        b'{"from": 1, "open": [["203.0.113.7", 9, NaN]]}',
    ):
        exchange.receive(document)
    assert edge.banned_now() == 0
    assert edge.flood.tracked == 0
    assert edge.open_connections("203.0.113.7") == 0
    # A well-formed one counts; reported requests are capped at what bans.
    exchange.receive(json.dumps({"from": 1, "counts": [["203.0.113.8", 10**9]]}).encode())
    assert edge.banned_now() == 1
    items = [[f"198.51.{i // 250}.{i % 250}", 60] for i in range(MAX_ITEMS + 10)]
    exchange.receive(json.dumps({"from": 1, "ban": items}).encode())
    assert edge.banned_now() == 1 + MAX_ITEMS  # one datagram carries no more


async def test_a_lost_close_stops_counting_at_the_next_snapshot(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with two_guards(tmp_path, max_connections_per_source=2) as (exchanges, guards):
            kept = guards[0].open_connection(Peer(Transport.TCP, "203.0.113.7", 1))
            lost = guards[0].open_connection(Peer(Transport.TCP, "203.0.113.7", 2))
            assert kept is not None
            assert lost is not None
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 2)
            # Worker 0's announcement of the close never reaches worker 1.
            peers, guards[0].peers = guards[0].peers, None
            guards[0].connection_closed(lost)
            guards[0].peers = peers
            await trio.sleep(0.1)
            assert guards[1].open_connections("203.0.113.7") == 2
            exchanges[0].send_snapshot()
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 1)
            assert guards[1].open_connection(Peer(Transport.TCP, "203.0.113.7", 3)) is not None


async def test_a_snapshot_adds_what_an_open_announcement_lost(tmp_path: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with two_guards(tmp_path, max_connections_per_source=1) as (exchanges, guards):
            peers, guards[0].peers = guards[0].peers, None
            assert guards[0].open_connection(Peer(Transport.TCP, "203.0.113.7", 1)) is not None
            guards[0].peers = peers
            assert guards[1].open_connections("203.0.113.7") == 0
            exchanges[0].send_snapshot()
            await wait_for(lambda: guards[1].open_connections("203.0.113.7") == 1)
            assert guards[1].open_connection(Peer(Transport.TCP, "203.0.113.7", 2)) is None


class RecordingLink:
    """Worker 0 of 2, keeping what it sends (with the time) instead of sending it."""

    index = 0
    count = 2

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []

    def send(self, worker: int, handoff: Handoff) -> bool:
        self.sent.append((trio.current_time(), json.loads(handoff.data)))
        return True

    def of(self, key: str) -> list[tuple[float, Any]]:
        return [(at, document[key]) for at, document in self.sent if key in document]


async def no_deadline_ahead() -> bool:
    await trio.testing.wait_all_tasks_blocked()
    return trio.lowlevel.current_statistics().seconds_to_next_deadline == math.inf


@asynccontextmanager
async def recorded_exchange(**kwargs: Any) -> AsyncIterator[tuple[RecordingLink, EdgeGuard]]:
    link = RecordingLink()
    edge = new_guard(**kwargs)
    exchange = GuardExchange(cast("HandoffLink", link), edge)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(exchange.run)
        yield link, edge
        nursery.cancel_scope.cancel()


async def test_an_exchange_with_nothing_counted_schedules_no_wake_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with recorded_exchange() as (link, _):
        assert await no_deadline_ahead()
        await trio.sleep(120)
        assert link.sent == []


async def test_counted_requests_go_out_one_report_interval_after_the_first_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with recorded_exchange() as (link, edge):
        await trio.sleep(10)
        first = trio.current_time()
        # Three requests (significant: 3 of a limit of 40 over 2 workers; due: 5).
        for port in (1, 2, 3):
            assert edge.admit(udp("203.0.113.7", port), LEGIT_REGISTER) is Verdict.ACCEPT
            await trio.sleep(0.05)
        for port in (1, 2):  # two: not significant yet
            assert edge.admit(udp("203.0.113.8", port), LEGIT_REGISTER) is Verdict.ACCEPT
        await trio.sleep(1)
        assert link.of("counts") == [(first + REPORT_INTERVAL, [["203.0.113.7", 3]])]
        # Reported: nothing more is due, and nothing wakes the exchange for it.
        assert await no_deadline_ahead()
        # A third request of the other source is counted: reported in its turn.
        again = trio.current_time()
        assert edge.admit(udp("203.0.113.8", 3), LEGIT_REGISTER) is Verdict.ACCEPT
        await trio.sleep(1)
        assert link.of("counts")[1:] == [(again + REPORT_INTERVAL, [["203.0.113.8", 3]])]
        assert await no_deadline_ahead()


async def test_a_source_due_is_reported_at_once_after_an_idle_spell(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with recorded_exchange() as (link, edge):
        await trio.sleep(60)
        for port in range(LIMIT // 8):  # a quarter of the limit over two workers: due
            assert edge.admit(udp("203.0.113.7", port), LEGIT_REGISTER) is Verdict.ACCEPT
        due_at = trio.current_time()
        await trio.sleep(1)
        assert link.of("counts") == [(due_at, [["203.0.113.7", LIMIT // 8]])]


async def test_connections_are_listed_twice_after_a_change_then_no_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with recorded_exchange(max_connections_per_source=2) as (link, edge):
        await trio.sleep(5)
        opened_at = trio.current_time()
        assert edge.open_connection(Peer(Transport.TCP, "203.0.113.7", 1)) is not None
        await trio.sleep(10 * SNAPSHOT_INTERVAL)
        snapshots = link.of("snapshot")
        assert [at - opened_at for at, _ in snapshots] == [
            SNAPSHOT_INTERVAL * n for n in range(1, SNAPSHOTS_AFTER_A_CHANGE + 1)
        ]
        assert all(document["open"][0][0] == "203.0.113.7" for _, document in link.sent[1:])
        assert await no_deadline_ahead()
