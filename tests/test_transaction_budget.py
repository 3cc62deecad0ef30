"""Transaction tables under the memory budget: answered transactions make room,
live ones are refused only when nothing else can go, one source gets a quarter."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import trio
import trio.testing

from edgeport.convert.to_proto import to_sip_message
from edgeport.memory import Account, transaction_cost
from edgeport.proxy.model import Destination, on_stream
from edgeport.server import source_of
from edgeport.sip.message import Request, Response, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import TimerConfig
from edgeport.sip.transport import Transport
from edgeport.transaction_layer import (
    ClientTransactionHandle,
    Outgoing,
    ServerTransactionHandle,
    TransactionLayer,
    TransactionTableFull,
)
from edgeport.transports import Peer

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


async def send(outgoing: Outgoing, destination: object) -> None:
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


class IgnoringTU:
    def on_response(
        self, handle: ClientTransactionHandle[Address], response: Response, source: object
    ) -> None:
        return None

    def on_timeout(self, handle: ClientTransactionHandle[Address]) -> None:
        return None

    def on_transport_error(self, handle: ClientTransactionHandle[Address]) -> None:
        return None


def invite(n: int) -> Request:
    message = parse_message(
        (
            "INVITE sip:bob@192.0.2.20 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-i{n}\r\n"
            "Max-Forwards: 70\r\n"
            "To: <sip:bob@192.0.2.20>\r\n"
            f"From: <sip:alice@192.0.2.1>;tag=a{n}\r\n"
            f"Call-ID: refused-{n}@192.0.2.1\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:alice@192.0.2.1;transport=tcp>\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def busy(n: int) -> Response:
    message = parse_message(
        (
            "SIP/2.0 486 Busy Here\r\n"
            f"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-i{n}\r\n"
            "To: <sip:bob@192.0.2.20>;tag=b\r\n"
            f"From: <sip:alice@192.0.2.1>;tag=a{n}\r\n"
            f"Call-ID: refused-{n}@192.0.2.1\r\n"
            "CSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Response)
    return message


async def test_a_call_refused_over_a_reliable_transport_gives_back_what_its_ack_was_charged(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Over TCP an INVITE client transaction ends on its 486 at once (Timer D
    # is zero), and its ACK goes out after: the ACK used to be charged to
    # the budget after the transaction had given its charge back, and was
    # never given back.
    budget = Account("transactions", 400_000)
    layer = TransactionLayer[Address](TimerConfig(), send, budget=budget)
    await nursery.start(layer.serve)
    for n in range(5):
        await layer.send_request(invite(n), ("192.0.2.20", 5060), reliable=True, tu=IgnoringTU())
        assert await layer.receive_response(busy(n), ("192.0.2.20", 5060))
    assert layer.active_client_transactions == 0
    assert budget.used == 0


async def test_a_request_answered_over_a_reliable_transport_gives_back_all_it_was_charged(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Over TCP a non-INVITE server transaction ends with its final response
    # (Timer J is zero), which goes out after it ended.
    budget = Account("transactions", 400_000)
    layer = TransactionLayer[Address](TimerConfig(), send, budget=budget, source_of=by_host)
    await nursery.start(layer.serve)
    for n in range(5):
        handle = await layer.receive_request(options(n), ("198.51.100.9", 5060), reliable=True)
        assert isinstance(handle, ServerTransactionHandle)
        assert await handle.respond(make_response(handle.request, 200, to_tag="x"))
    assert layer.active_server_transactions == 0
    assert budget.used == 0


def register(n: int) -> bytes:
    return (
        "REGISTER sip:192.0.2.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.{n % 200}:5061;branch=z9hG4bK-r{n};rport=5061;"
        f"received=192.0.2.{n % 200}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:user{n % 100}@192.0.2.1>;tag={n}reg\r\n"
        f"To: <sip:user{n % 100}@192.0.2.1>\r\n"
        f"Call-ID: {n}-reg@192.0.2.10\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:user{n % 100}@192.0.2.10:5061>\r\n"
        "Expires: 3600\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def udp_source(n: int) -> Destination:
    # A fresh address per request, as the transport reads one per datagram.
    return Destination(Peer(Transport.UDP, f"192.0.2.{n % 200}", 5061))


async def answer_registers(layer: TransactionLayer[Destination], first: int, count: int) -> None:
    for n in range(first, first + count):
        raw = register(n)
        request = parse_message(raw)
        assert isinstance(request, Request)
        handle = await layer.receive_request(request, udp_source(n), reliable=False, size=len(raw))
        assert isinstance(handle, ServerTransactionHandle)
        response = make_response(request, 200, to_tag="5a8f2b1c")
        response.headers.add("Contact", f"<sip:user{n % 100}@192.0.2.10:5061>;expires=3600")
        assert await handle.respond(response)
        handle.release_views()


ANSWERED = 500  # transactions measured


def held_since(before: tracemalloc.Snapshot) -> float:
    """Bytes allocated since ``before`` and still held, per transaction measured;
    the conversion's own bounded cache of header lines is not the transactions'
    (nor are the parser's, which the callers warm)."""
    gc.collect()
    after = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, "*/edgeport/convert/*")]
    )
    before = before.filter_traces([tracemalloc.Filter(False, "*/edgeport/convert/*")])
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / ANSWERED


async def test_an_answered_udp_register_keeps_at_most_1_5_kib_while_it_lingers(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # An answered REGISTER lingers 32 s (Timer J) to absorb retransmissions.
    # It used to keep its parsed request and response (about 5 KiB); it
    # needs only its key and the bytes of its response. What it is charged
    # must still cover what it holds.
    budget = Account("transactions", 2**30)
    layer = TransactionLayer[Destination](
        TimerConfig(), send, budget=budget, source_of=source_of, fails_whole=on_stream
    )
    await nursery.start(layer.serve)
    await answer_registers(layer, ANSWERED, 50)
    # The parser's bounded tables of header lines seen before hold the lines
    # of these very messages once another layer has answered them: what is
    # measured below is then what the transactions hold, not those tables.
    warm = TransactionLayer[Destination](TimerConfig(), send)
    await answer_registers(warm, 0, ANSWERED)
    used = budget.used
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await answer_registers(layer, 0, ANSWERED)
        held = held_since(before)
    finally:
        tracemalloc.stop()
    assert layer.active_server_transactions == ANSWERED + 50
    assert held <= 1536
    assert (budget.used - used) / ANSWERED >= held
    # Every byte is given back when Timer J ends them.
    await trio.sleep(40)
    assert budget.used == 0


async def test_what_a_live_transaction_is_charged_covers_what_it_holds(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    budget = Account("transactions", 2**30)
    layer = TransactionLayer[Destination](
        TimerConfig(), send, budget=budget, source_of=source_of, fails_whole=on_stream
    )
    await nursery.start(layer.serve)
    handles: list[object] = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(ANSWERED):
            raw = register(n)
            request = parse_message(raw)
            assert isinstance(request, Request)
            to_sip_message(request)
            handles.append(
                await layer.receive_request(request, udp_source(n), reliable=False, size=len(raw))
            )
        held = held_since(before)
    finally:
        tracemalloc.stop()
    assert budget.used / ANSWERED >= held
