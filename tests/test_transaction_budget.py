"""Transaction tables under the memory budget: answered transactions make room,
live ones are refused only when nothing else can go, one source gets a quarter."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from edgeport.memory import Account, transaction_cost
from edgeport.sip.message import Request, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import TimerConfig
from edgeport.transaction_layer import Outgoing, TransactionLayer, TransactionTableFull

Address = tuple[str, int]


def options(n: int, padding: int = 0) -> Request:
    message = parse_message(
        (
            "OPTIONS sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.51.100.{n % 250}:5060;branch=z9hG4bK-b{n}\r\n"
            "Max-Forwards: 70\r\n"
            "To: <sip:bob@example.com>\r\n"
            f"From: <sip:alice@example.com>;tag=t{n}\r\n"
            f"Call-ID: budget-{n}@example.com\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"X-Padding: {'p' * padding}\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


async def send(outgoing: Outgoing, destination: Address) -> None:
    await trio.lowlevel.checkpoint()


def by_host(destination: Address) -> str:
    return destination[0]


async def test_a_flood_of_answered_transactions_from_spoofed_sources_never_fills_the_table(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Each spoofed request is answered and then lingers for Timer J (32 s) to
    # absorb retransmissions. The table used to fill with them, and every new
    # request after got 503: now the oldest answered ones make room.
    layer = TransactionLayer[Address](TimerConfig(), send, max_transactions=100)
    await nursery.start(layer.serve)
    for n in range(1_000):
        handle = await layer.receive_request(
            options(n), (f"198.51.{n // 250}.{n % 250}", 5060), reliable=False
        )
        assert handle is not None
        await handle.respond(make_response(handle.request, 200, to_tag="x"))  # type: ignore[union-attr]
    assert layer.active_server_transactions == 100
    assert layer.evicted == 900


async def test_the_budget_holds_with_answered_transactions_making_room(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    budget = Account("transactions", 400_000)
    evictions: list[None] = []
    layer = TransactionLayer[Address](
        TimerConfig(),
        send,
        budget=budget,
        source_of=by_host,
        on_evicted=lambda: evictions.append(None),
    )
    await nursery.start(layer.serve)
    for n in range(2_000):
        handle = await layer.receive_request(
            options(n, padding=1_000), (f"198.51.{n // 250}.{n % 250}", 5060), reliable=False
        )
        await handle.respond(make_response(handle.request, 200, to_tag="x"))  # type: ignore[union-attr]
        # A response is charged when sent; the next new transaction makes room.
        assert budget.used <= budget.limit + 2_000
    assert evictions
    assert layer.evicted == len(evictions)
    assert 0 < layer.active_server_transactions < 2_000
    # Timer J ends them all: every byte is given back.
    await trio.sleep(40)
    assert layer.active_server_transactions == 0
    assert budget.used == 0


async def test_live_transactions_are_refused_only_when_nothing_can_make_room(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    cost = transaction_cost(len(options(0).to_bytes()), len(options(0).headers))
    budget = Account("transactions", 10 * cost + cost // 2)
    layer = TransactionLayer[Address](TimerConfig(), send, budget=budget, source_of=by_host)
    await nursery.start(layer.serve)
    for n in range(10):
        await layer.receive_request(
            options(n), (f"198.51.100.{n}", 5060), reliable=False, size=len(options(n).to_bytes())
        )
    with pytest.raises(TransactionTableFull, match="memory budget"):
        await layer.receive_request(options(10), ("198.51.100.10", 5060), reliable=False)
    assert budget.refused == 1


async def test_one_source_holds_at_most_a_quarter_of_the_budget(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    budget = Account("transactions", 400_000)
    layer = TransactionLayer[Address](TimerConfig(), send, budget=budget, source_of=by_host)
    await nursery.start(layer.serve)
    accepted = 0
    refused: TransactionTableFull | None = None
    for n in range(1_000):
        # Never answered: live transactions of one flooding source.
        try:
            await layer.receive_request(
                options(n, padding=500), ("203.0.113.66", 5060), reliable=False
            )
        except TransactionTableFull as error:
            refused = error
            break
        accepted += 1
    assert refused is not None
    assert "its share" in str(refused)
    assert accepted > 0
    held = budget.used
    assert held <= budget.limit // 4
    # Everyone else still gets in.
    for n in range(1_000, 1_020):
        assert await layer.receive_request(
            options(n), (f"198.51.100.{n % 250}", 5060), reliable=False
        )
    # The flooding source's own answered transactions make room for its new ones.
    layer2_budget = Account("transactions", 400_000)
    layer2 = TransactionLayer[Address](TimerConfig(), send, budget=layer2_budget, source_of=by_host)
    await nursery.start(layer2.serve)
    for n in range(1_000):
        handle = await layer2.receive_request(
            options(n, padding=500), ("203.0.113.66", 5060), reliable=False
        )
        await handle.respond(make_response(handle.request, 200, to_tag="x"))  # type: ignore[union-attr]
    assert layer2.evicted > 0
