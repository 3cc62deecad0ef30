"""Hand-off sockets between two links in one process: real Unix datagram sockets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.workers.handoff import (
    HANDOFF_DROPS,
    HANDOFFS,
    MAX_OUTBOX,
    Handoff,
    HandoffLink,
)

if TYPE_CHECKING:
    from pathlib import Path

DEADLINE = 10  # seconds
PEER = Peer(Transport.UDP, "127.0.0.1", 40000)
LOCAL = Peer(Transport.UDP, "127.0.0.1", 5060)


def handoff(n: int) -> Handoff:
    return Handoff("response", f"SIP/2.0 200 OK\r\nCSeq: {n} INVITE\r\n\r\n".encode(), PEER, LOCAL)


def value(counter_labels: dict[str, str]) -> float:
    family = HANDOFF_DROPS if "reason" in counter_labels else HANDOFFS
    return family.labels(**counter_labels).value


async def test_a_burst_far_beyond_the_kernel_queue_arrives_whole_and_in_order(
    tmp_path: Path,
) -> None:
    # Linux queues about ten datagrams per Unix socket (net.unix.max_dgram_qlen):
    # the outbox waits for room instead of dropping.
    sender, receiver = HandoffLink(tmp_path, 0, 2), HandoffLink(tmp_path, 1, 2)
    got: list[bytes] = []
    done = trio.Event()
    burst = 500
    sent_before = value({"kind": "response"})

    async def deliver(item: Handoff) -> None:
        assert item.peer == PEER
        assert item.local == LOCAL
        got.append(item.data)
        if len(got) == burst:
            done.set()

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(receiver.serve, deliver)
            await nursery.start(sender.serve, deliver)
            assert all(sender.send(1, handoff(n)) for n in range(burst))
            await done.wait()
            nursery.cancel_scope.cancel()
    assert got == [handoff(n).data for n in range(burst)]
    assert value({"kind": "response"}) - sent_before == burst


async def test_a_full_outbox_drops_and_counts(tmp_path: Path) -> None:
    link = HandoffLink(tmp_path, 0, 2)  # not served: nothing empties the outbox
    full_before = value({"kind": "response", "reason": "full"})
    accepted = [link.send(1, handoff(n)) for n in range(MAX_OUTBOX + 5)]
    assert accepted == [True] * MAX_OUTBOX + [False] * 5
    assert value({"kind": "response", "reason": "full"}) - full_before == 5
    assert not link.send(7, handoff(0))  # no such worker


async def test_a_worker_that_is_not_there_costs_the_handoff_counted(tmp_path: Path) -> None:
    link = HandoffLink(tmp_path, 0, 2)
    unreachable_before = value({"kind": "response", "reason": "unreachable"})

    async def deliver(item: Handoff) -> None:
        raise AssertionError("nothing is handed to worker 0")

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.serve, deliver)
            assert link.reachable(1)  # until a write says otherwise
            assert link.send(1, handoff(1))  # queued; worker 1 never bound its socket
            while value({"kind": "response", "reason": "unreachable"}) == unreachable_before:
                await trio.sleep(0.01)
            assert not link.reachable(1)
            nursery.cancel_scope.cancel()
