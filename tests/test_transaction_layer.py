"""The trio transaction layer: tables, timers on a mock clock, retransmitted bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction import TransactionState, matching_invite_key
from edgeport.transaction_layer import (
    ClientTransactionHandle,
    Outgoing,
    SendFailed,
    ServerTransactionHandle,
    StrayAck,
    TransactionLayer,
    TransactionTableFull,
)

UAC = ("192.0.2.10", 5060)  # where requests come from
NEXT_HOP = ("192.0.2.20", 5060)  # where requests go
OTHER_HOP = ("192.0.2.30", 5060)


def invite(branch: str = "z9hG4bKclient1", method: str = "INVITE") -> Request:
    message = parse_message(
        (
            f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "To: Bob <sip:bob@biloxi.example.com>\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@192.0.2.10\r\n"
            f"CSeq: 314159 {method}\r\n"
            "Contact: <sip:alice@192.0.2.10>\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def ack(branch: str = "z9hG4bKclient1") -> Request:
    message = parse_message(
        (
            "ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@192.0.2.10\r\n"
            "CSeq: 314159 ACK\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def reply(
    code: int, reason: str, *, branch: str = "z9hG4bKclient1", method: str = "INVITE"
) -> Response:
    message = parse_message(
        (
            f"SIP/2.0 {code} {reason}\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n"
            "To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@192.0.2.10\r\n"
            f"CSeq: 314159 {method}\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Response)
    return message


Address = tuple[str, int]


@dataclass
class Wire:
    """A fake transport: records what goes out and when; fails for chosen destinations."""

    sent: list[tuple[float, Outgoing, Address]] = field(default_factory=list)
    broken: set[Address] = field(default_factory=set)
    buggy: set[Address] = field(default_factory=set)  # retransmissions raise a bug

    async def send(self, outgoing: Outgoing, destination: Address) -> None:
        await trio.lowlevel.checkpoint()
        if destination in self.broken:
            raise SendFailed(f"{destination} is down")
        if destination in self.buggy and outgoing.retransmission:
            raise RuntimeError("bug in the transport")
        self.sent.append((trio.current_time(), outgoing, destination))

    def lines(self) -> list[tuple[float, str, bool]]:
        """(time, start line, retransmission) for every message sent."""
        return [
            (at, out.data.split(b"\r\n", 1)[0].decode(), out.retransmission)
            for at, out, _ in self.sent
        ]


@dataclass
class RecordingTU:
    events: list[tuple[float, str, int | None]] = field(default_factory=list)
    raise_on_timeout: bool = False

    def on_response(
        self,
        handle: ClientTransactionHandle[Address],
        response: Response,
        source: Address | None = None,
    ) -> None:
        self.events.append((trio.current_time(), "response", response.status_code))

    def on_timeout(self, handle: ClientTransactionHandle[Address]) -> None:
        self.events.append((trio.current_time(), "timeout", None))
        if self.raise_on_timeout:
            raise RuntimeError("TU bug")

    def on_transport_error(self, handle: ClientTransactionHandle[Address]) -> None:
        self.events.append((trio.current_time(), "transport error", None))


@pytest.fixture
async def wire() -> Wire:
    return Wire()


# pytest-trio runs a test on a clock only when the test itself takes the
# clock fixture, so every test below names ``autojump_clock``.
@pytest.fixture
async def layer(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, wire: Wire
) -> TransactionLayer[Address]:
    layer = TransactionLayer[Address](TimerConfig(), wire.send)
    await nursery.start(layer.serve)
    return layer


# ---------------------------------------------------------------- client side


async def test_invite_retransmissions_then_timer_b_timeout(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    start = trio.current_time()
    handle = await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    assert layer.active_client_transactions == 1
    await trio.sleep(40)
    times = [at - start for at, _, _ in wire.sent]
    # Timer A: 0.5, 1, 2, 4, 8, 16 s apart; Timer B (32 s) ends it.
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [out.retransmission for _, out, _ in wire.sent] == [False] + [True] * 6
    first = wire.sent[0][1].data
    assert all(out.data is first for _, out, _ in wire.sent)
    assert all(dest == NEXT_HOP for _, _, dest in wire.sent)
    assert tu.events == [(start + 32.0, "timeout", None)]
    assert handle.state is TransactionState.TERMINATED
    assert handle.timed_out is Timer.B
    assert layer.active_client_transactions == 0
    assert layer.retransmissions == 6
    assert layer.timeouts == 1


async def test_non_invite_retransmissions_cap_at_t2_then_timer_f(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    start = trio.current_time()
    await layer.send_request(invite(method="OPTIONS"), NEXT_HOP, reliable=False, tu=tu)
    await trio.sleep(40)
    times = [at - start for at, _, _ in wire.sent]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tu.events == [(start + 32.0, "timeout", None)]
    assert layer.active_client_transactions == 0


async def test_reliable_transport_has_no_retransmissions(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    start = trio.current_time()
    await layer.send_request(invite(), NEXT_HOP, reliable=True, tu=tu)
    await trio.sleep(40)
    assert len(wire.sent) == 1
    assert tu.events == [(start + 32.0, "timeout", None)]


async def test_provisional_stops_timer_a_and_timer_c_asks_for_cancel(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    start = trio.current_time()
    handle = await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    await trio.sleep(0.7)  # one retransmission at 0.5 s
    assert await layer.receive_response(reply(180, "Ringing"), NEXT_HOP)
    await trio.sleep(100)
    assert len(wire.sent) == 2
    assert tu.events == [(start + 0.7, "response", 180)]
    # Timer C (185 s, restarted by the 180) fires: the TU is to CANCEL.
    await trio.sleep(85.1)
    assert tu.events[-1] == (start + 0.7 + 185.0, "timeout", None)
    assert handle.timed_out is Timer.C
    assert handle.state is TransactionState.PROCEEDING
    # Without a 487 either, the transaction ends 64*T1 later.
    await trio.sleep(31)
    assert layer.active_client_transactions == 1
    await trio.sleep(2)
    assert layer.active_client_transactions == 0


async def test_non_2xx_is_acked_and_absorbed_until_timer_d(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    assert await layer.receive_response(reply(486, "Busy Here"), NEXT_HOP)
    assert await layer.receive_response(reply(486, "Busy Here"), NEXT_HOP)
    assert [(line, again) for _, line, again in wire.lines()] == [
        ("INVITE sip:bob@biloxi.example.com SIP/2.0", False),
        ("ACK sip:bob@biloxi.example.com SIP/2.0", False),
        ("ACK sip:bob@biloxi.example.com SIP/2.0", True),
    ]
    assert wire.sent[1][1].data is wire.sent[2][1].data
    assert [name for _, name, _ in tu.events] == ["response"]
    await trio.sleep(31)
    assert layer.active_client_transactions == 1
    await trio.sleep(2)  # Timer D: 32 s
    assert layer.active_client_transactions == 0
    # Now a retransmission is a stray response for the proxy to forward.
    assert not await layer.receive_response(reply(486, "Busy Here"), NEXT_HOP)


async def test_2xx_terminates_and_its_retransmission_is_stray(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    assert await layer.receive_response(reply(200, "OK"), NEXT_HOP)
    assert layer.active_client_transactions == 0
    assert not await layer.receive_response(reply(200, "OK"), NEXT_HOP)
    assert [code for _, _, code in tu.events] == [200]
    await trio.sleep(60)
    assert len(wire.sent) == 1  # no retransmission after the 2xx


async def test_non_invite_final_leaves_the_table_after_timer_k(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    tu = RecordingTU()
    await layer.send_request(invite(method="OPTIONS"), NEXT_HOP, reliable=False, tu=tu)
    assert await layer.receive_response(reply(200, "OK", method="OPTIONS"), NEXT_HOP)
    assert await layer.receive_response(reply(200, "OK", method="OPTIONS"), NEXT_HOP)
    assert [code for _, _, code in tu.events] == [200]
    await trio.sleep(4.9)
    assert layer.active_client_transactions == 1
    await trio.sleep(0.2)  # Timer K: 5 s
    assert layer.active_client_transactions == 0


async def test_cancel_is_a_separate_client_transaction(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    tu = RecordingTU()
    await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    await layer.send_request(invite(method="CANCEL"), NEXT_HOP, reliable=False, tu=tu)
    assert layer.active_client_transactions == 2
    assert await layer.receive_response(reply(200, "OK", method="CANCEL"), NEXT_HOP)
    assert await layer.receive_response(reply(487, "Request Terminated"), NEXT_HOP)
    assert [code for _, _, code in tu.events] == [200, 487]


async def test_send_failure_is_a_transport_error(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu = RecordingTU()
    wire.broken.add(NEXT_HOP)
    handle = await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    assert [name for _, name, _ in tu.events] == ["transport error"]
    assert handle.state is TransactionState.TERMINATED
    assert layer.active_client_transactions == 0
    assert layer.transport_failures == 1
    await trio.sleep(60)
    assert wire.sent == []


async def test_fail_destination_fails_only_its_transactions(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    tu_a, tu_b = RecordingTU(), RecordingTU()
    await layer.send_request(invite("z9hG4bKa"), NEXT_HOP, reliable=True, tu=tu_a)
    await layer.send_request(invite("z9hG4bKb"), OTHER_HOP, reliable=True, tu=tu_b)
    server = await layer.receive_request(invite("z9hG4bKs"), NEXT_HOP, reliable=True)
    assert isinstance(server, ServerTransactionHandle)
    assert layer.fail_destination(NEXT_HOP) == 2
    assert [name for _, name, _ in tu_a.events] == ["transport error"]
    assert tu_b.events == []
    assert server.state is TransactionState.TERMINATED
    assert layer.active_client_transactions == 1
    assert layer.active_server_transactions == 0


@dataclass(frozen=True)
class CountedAddress:
    """A destination that counts how often it is compared with another."""

    host: str
    port: int
    comparisons: list[int] = field(default_factory=lambda: [0], compare=False, hash=False)

    def __eq__(self, other: object) -> bool:
        self.comparisons[0] += 1
        if isinstance(other, CountedAddress):
            other.comparisons[0] += 1
            return (self.host, self.port) == (other.host, other.port)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.host, self.port))


async def test_a_closed_connection_fails_its_transactions_without_scanning_the_tables(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, wire: Wire
) -> None:
    # Connection churn times live transactions must not be a CPU cost: failing
    # one destination looks at that destination's transactions only.
    comparisons = [0]

    def address(n: int) -> CountedAddress:
        return CountedAddress("192.0.2.40", 10_000 + n, comparisons)

    async def send(outgoing: Outgoing, destination: CountedAddress) -> None:
        await trio.lowlevel.checkpoint()

    layer = TransactionLayer[CountedAddress](TimerConfig(), send)
    await nursery.start(layer.serve)
    for n in range(500):
        await layer.receive_request(invite(f"z9hG4bKs{n}"), address(n), reliable=True)
        await layer.send_request(
            invite(f"z9hG4bKc{n}"), address(n), reliable=True, tu=RecordingTU()
        )
    comparisons[0] = 0
    for n in range(100):
        assert layer.fail_destination(address(n)) == 2
    # A scan compares each of the 1,000 live transactions per call: 100,000.
    assert comparisons[0] <= 100 * 10
    assert layer.active_server_transactions == 400
    assert layer.active_client_transactions == 400


async def test_only_destinations_that_fail_whole_are_indexed(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, wire: Wire
) -> None:
    layer = TransactionLayer[Address](
        TimerConfig(), wire.send, fails_whole=lambda destination: destination == NEXT_HOP
    )
    await nursery.start(layer.serve)
    await layer.receive_request(invite("z9hG4bKs1"), NEXT_HOP, reliable=True)
    await layer.receive_request(invite("z9hG4bKs2"), OTHER_HOP, reliable=True)
    assert layer.fail_destination(OTHER_HOP) == 0
    assert layer.fail_destination(NEXT_HOP) == 1
    assert layer.active_server_transactions == 1


async def test_a_raising_tu_does_not_stop_the_timers(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    bad, good = RecordingTU(raise_on_timeout=True), RecordingTU()
    await layer.send_request(invite("z9hG4bKbad"), NEXT_HOP, reliable=True, tu=bad)
    await trio.sleep(1)
    await layer.send_request(invite("z9hG4bKgood"), NEXT_HOP, reliable=True, tu=good)
    await trio.sleep(40)
    assert [name for _, name, _ in bad.events] == ["timeout"]
    assert [name for _, name, _ in good.events] == ["timeout"]


async def test_a_running_timer_can_be_brought_due_now(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address]
) -> None:
    tu = RecordingTU()
    handle = await layer.send_request(invite(), NEXT_HOP, reliable=False, tu=tu)
    start = trio.current_time()
    assert await layer.receive_response(reply(180, "Ringing"), NEXT_HOP)
    assert not handle.expire_timer(Timer.A)  # stopped by the 180
    assert handle.expire_timer(Timer.C)
    await trio.testing.wait_all_tasks_blocked()
    assert tu.events[-1] == (start, "timeout", None)
    assert handle.timed_out is Timer.C


async def test_send_request_refuses_a_running_branch(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address]
) -> None:
    await layer.send_request(invite(), NEXT_HOP, reliable=True, tu=RecordingTU())
    with pytest.raises(ValueError, match="already running"):
        await layer.send_request(invite(), NEXT_HOP, reliable=True, tu=RecordingTU())


async def test_stray_response(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address]
) -> None:
    assert not await layer.receive_response(reply(200, "OK", branch="z9hG4bKnobody"), NEXT_HOP)


# ---------------------------------------------------------------- server side


async def test_invite_server_100_trying_and_absorbed_retransmission(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert handle.request.method == "INVITE"
    assert layer.active_server_transactions == 1
    assert await layer.receive_request(invite(), UAC, reliable=False) is None
    assert [(line, again) for _, line, again in wire.lines()] == [
        ("SIP/2.0 100 Trying", False),
        ("SIP/2.0 100 Trying", True),
    ]
    assert wire.sent[0][1].data is wire.sent[1][1].data
    assert all(dest == UAC for _, _, dest in wire.sent)


async def test_non_2xx_retransmitted_until_ack_then_gone_after_timer_i(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    start = trio.current_time()
    assert await handle.respond(reply(486, "Busy Here"))
    await trio.sleep(12)
    finals = [(at - start, again) for at, line, again in wire.lines() if "486" in line]
    # Timer G: 0.5, 1, 2, 4, 4 s apart (capped at T2).
    assert finals == [
        (0.0, False),
        (0.5, True),
        (1.5, True),
        (3.5, True),
        (7.5, True),
        (11.5, True),
    ]
    # A retransmitted INVITE gets the final again.
    assert await layer.receive_request(invite(), UAC, reliable=False) is None
    assert wire.lines()[-1][1:] == ("SIP/2.0 486 Busy Here", True)
    sent = len(wire.sent)
    # The ACK is absorbed and stops the retransmissions.
    assert await layer.receive_request(ack(), UAC, reliable=False) is None
    assert handle.state is TransactionState.CONFIRMED
    assert await layer.receive_request(ack(), UAC, reliable=False) is None
    await trio.sleep(4.9)
    assert len(wire.sent) == sent
    assert layer.active_server_transactions == 1
    await trio.sleep(0.2)  # Timer I: 5 s
    assert layer.active_server_transactions == 0


async def test_timer_h_ends_a_transaction_whose_ack_never_comes(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=True)
    assert isinstance(handle, ServerTransactionHandle)
    await handle.respond(reply(486, "Busy Here"))
    await trio.sleep(31.9)
    assert layer.active_server_transactions == 1
    await trio.sleep(0.2)
    assert handle.state is TransactionState.TERMINATED
    assert layer.active_server_transactions == 0
    assert layer.timeouts == 1


async def test_2xx_ends_the_server_transaction_and_its_ack_is_stray(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert await handle.respond(reply(200, "OK"))
    assert layer.active_server_transactions == 0
    assert not await handle.respond(reply(200, "OK"))
    ack_for_2xx = ack("z9hG4bKotherbranch")
    result = await layer.receive_request(ack_for_2xx, UAC, reliable=False)
    assert result == StrayAck(ack_for_2xx)


async def test_non_invite_server_absorbs_and_leaves_after_timer_j(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    handle = await layer.receive_request(invite(method="REGISTER"), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert wire.sent == []  # no 100 Trying for a non-INVITE
    assert await layer.receive_request(invite(method="REGISTER"), UAC, reliable=False) is None
    assert wire.sent == []
    assert await handle.respond(reply(200, "OK", method="REGISTER"))
    assert not await handle.respond(reply(500, "Server Internal Error", method="REGISTER"))
    assert await layer.receive_request(invite(method="REGISTER"), UAC, reliable=False) is None
    assert [(line, again) for _, line, again in wire.lines()] == [
        ("SIP/2.0 200 OK", False),
        ("SIP/2.0 200 OK", True),
    ]
    await trio.sleep(31.9)
    assert layer.active_server_transactions == 1
    await trio.sleep(0.2)  # Timer J: 32 s
    assert layer.active_server_transactions == 0
    assert layer.retransmissions == 1


async def test_an_answered_transaction_resends_the_bytes_of_its_final_response(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    # It keeps the bytes, not the response: a retransmission reads back as
    # the response it is (the send callback counts it by method and status).
    handle = await layer.receive_request(invite(method="REGISTER"), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert await handle.respond(reply(200, "OK", method="REGISTER"))
    assert await layer.receive_request(invite(method="REGISTER"), UAC, reliable=False) is None
    (_, first, _), (_, again, _) = wire.sent
    assert again.retransmission
    assert again.data is first.data
    resent = again.message
    assert isinstance(resent, Response)
    assert resent is not first.message
    assert (resent.status_code, resent.cseq.method) == (200, "REGISTER")
    # The TU's handle keeps the request as long as the TU keeps the handle.
    assert handle.request.method == "REGISTER"


async def test_a_resent_response_that_does_not_read_back_whole_still_reads_as_a_response(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    # A relayed response keeps the headers the processor wrote, which need
    # not make a message fit to route (here two To lines).
    handle = await layer.receive_request(invite(method="MESSAGE"), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    response = reply(404, "Not Found", method="MESSAGE")
    response.headers.add("To", "<sip:carol@biloxi.example.com>")
    assert await handle.respond(response)
    assert await layer.receive_request(invite(method="MESSAGE"), UAC, reliable=False) is None
    resent = wire.sent[-1][1]
    assert resent.retransmission
    assert isinstance(resent.message, Response)
    assert (resent.message.status_code, resent.message.cseq.method) == (404, "MESSAGE")


async def test_an_answered_invite_is_found_for_a_cancel_without_its_request(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address]
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert await handle.respond(reply(486, "Busy Here"))
    found = layer.server_transaction(matching_invite_key(invite(method="CANCEL")))
    assert found is not None
    assert found.key == handle.key
    assert found.destination == UAC
    assert not found.can_respond
    assert found.state is TransactionState.COMPLETED
    with pytest.raises(LookupError):
        found.request  # noqa: B018
    assert not await found.respond(reply(487, "Request Terminated"))
    assert handle.request.method == "INVITE"


async def test_cancel_finds_the_invite_server_transaction(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    cancel = invite(method="CANCEL")
    cancel_handle = await layer.receive_request(cancel, UAC, reliable=False)
    assert isinstance(cancel_handle, ServerTransactionHandle)
    assert cancel_handle is not handle
    assert layer.server_transaction(matching_invite_key(cancel)) is handle


async def test_send_failure_ends_a_server_transaction(
    autojump_clock: trio.testing.MockClock, layer: TransactionLayer[Address], wire: Wire
) -> None:
    wire.broken.add(UAC)
    handle = await layer.receive_request(invite(), UAC, reliable=False)
    assert isinstance(handle, ServerTransactionHandle)
    assert handle.state is TransactionState.TERMINATED
    assert layer.active_server_transactions == 0
    assert not await handle.respond(reply(486, "Busy Here"))


async def test_tables_are_capped(autojump_clock: trio.testing.MockClock, wire: Wire) -> None:
    layer = TransactionLayer[Address](TimerConfig(), wire.send, max_transactions=1)
    await layer.receive_request(invite("z9hG4bK1"), UAC, reliable=True)
    with pytest.raises(TransactionTableFull):
        await layer.receive_request(invite("z9hG4bK2"), UAC, reliable=True)
    # A retransmission of a known transaction still gets through.
    assert await layer.receive_request(invite("z9hG4bK1"), UAC, reliable=True) is None
    await layer.send_request(invite("z9hG4bK3"), NEXT_HOP, reliable=True, tu=RecordingTU())
    with pytest.raises(TransactionTableFull):
        await layer.send_request(invite("z9hG4bK4"), NEXT_HOP, reliable=True, tu=RecordingTU())


async def test_a_failing_timer_send_does_not_stop_the_other_timers(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
    wire: Wire,
) -> None:
    wire.buggy.add(OTHER_HOP)
    tu = RecordingTU()
    await layer.send_request(invite("z9hG4bKbuggy"), OTHER_HOP, reliable=False, tu=tu)
    await layer.send_request(invite("z9hG4bKfine"), NEXT_HOP, reliable=False, tu=tu)
    await trio.sleep(40)
    assert [dest for _, _, dest in wire.sent].count(NEXT_HOP) == 7
    assert [name for _, name, _ in tu.events] == ["timeout", "timeout"]


async def test_cancelled_timers_do_not_pile_up(
    autojump_clock: trio.testing.MockClock,
    layer: TransactionLayer[Address],
) -> None:
    tu = RecordingTU()
    for n in range(3000):
        branch = f"z9hG4bKopt{n}"
        await layer.send_request(invite(branch, method="OPTIONS"), NEXT_HOP, reliable=True, tu=tu)
        # A final response over a reliable transport ends the transaction at once,
        # leaving its cancelled Timer F behind in the heap.
        await layer.receive_response(reply(200, "OK", branch=branch, method="OPTIONS"), NEXT_HOP)
    assert layer.active_client_transactions == 0
    assert len(layer.timer_heap) < 2100  # compacted, not 3000 stale entries
