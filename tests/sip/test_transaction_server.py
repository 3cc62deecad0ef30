"""INVITE and non-INVITE server transactions (RFC 3261 §17.2, figures 7 and 8)."""

from __future__ import annotations

import pytest

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction import (
    CancelTimer,
    InviteServerTransaction,
    NonInviteServerTransaction,
    Send,
    StartTimer,
    Terminated,
    TimedOut,
    TransactionError,
    TransactionState,
    TransportFailed,
)

TIMERS = TimerConfig()  # T1 0.5 s, T2 4 s, T4 5 s

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Timestamp: 54\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

# The ACK a UAC sends for a non-2xx final: same branch, To tag of the response.
ACK = (
    "ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 ACK\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

REGISTER = (
    "REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
    "Call-ID: 843817637684230@998sdasdh09\r\n"
    "CSeq: 1826 REGISTER\r\n"
    "Contact: <sip:bob@192.0.2.4>\r\n"
    "Expires: 7200\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def invite_response(code: int, reason: str) -> Response:
    message = parse_message(
        (
            f"SIP/2.0 {code} {reason}\r\n"
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
            "To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
            "CSeq: 314159 INVITE\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Response)
    return message


def register_response(code: int, reason: str) -> Response:
    message = parse_message(
        (
            f"SIP/2.0 {code} {reason}\r\n"
            "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
            "To: Bob <sip:bob@biloxi.example.com>;tag=2493k59kd\r\n"
            "From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
            "Call-ID: 843817637684230@998sdasdh09\r\n"
            "CSeq: 1826 REGISTER\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Response)
    return message


def request(text: str) -> Request:
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def invite_server(*, reliable: bool = False) -> tuple[InviteServerTransaction, Response]:
    txn = InviteServerTransaction(request(INVITE), reliable=reliable, timers=TIMERS)
    [send] = txn.start()
    assert isinstance(send, Send)
    assert isinstance(send.message, Response)
    return txn, send.message


def register_server(*, reliable: bool = False) -> NonInviteServerTransaction:
    txn = NonInviteServerTransaction(request(REGISTER), reliable=reliable, timers=TIMERS)
    assert txn.start() == []
    return txn


# ---------------------------------------------------------------- INVITE server


def test_invite_server_starts_proceeding_with_100_trying() -> None:
    txn, trying = invite_server()
    assert txn.state is TransactionState.PROCEEDING
    assert trying.to_bytes() == (
        b"SIP/2.0 100 Trying\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Timestamp: 54\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_retransmitted_invite_in_proceeding_resends_latest_provisional() -> None:
    txn, trying = invite_server()
    assert txn.on_request(request(INVITE)) == [Send(trying, retransmission=True)]
    ringing = invite_response(180, "Ringing")
    assert txn.send_response(ringing) == [Send(ringing)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.on_request(request(INVITE)) == [Send(ringing, retransmission=True)]


def test_2xx_from_tu_is_sent_and_terminates() -> None:
    txn, _ = invite_server()
    ok = invite_response(200, "OK")
    assert txn.send_response(ok) == [Send(ok), Terminated()]
    assert txn.state is TransactionState.TERMINATED
    assert not txn.can_send_response


def test_non_2xx_from_tu_completes_with_timers_g_and_h() -> None:
    txn, _ = invite_server()
    busy = invite_response(486, "Busy Here")
    assert txn.send_response(busy) == [
        Send(busy),
        StartTimer(Timer.G, 0.5),
        StartTimer(Timer.H, 32.0),
    ]
    assert txn.state is TransactionState.COMPLETED
    assert not txn.can_send_response


def test_non_2xx_over_reliable_transport_has_no_timer_g() -> None:
    txn, _ = invite_server(reliable=True)
    busy = invite_response(486, "Busy Here")
    assert txn.send_response(busy) == [Send(busy), StartTimer(Timer.H, 32.0)]


def test_timer_g_retransmits_the_final_doubling_up_to_t2() -> None:
    txn, _ = invite_server()
    busy = invite_response(486, "Busy Here")
    txn.send_response(busy)
    delays = []
    for _ in range(6):
        actions = txn.on_timer(Timer.G)
        assert actions[0] == Send(busy, retransmission=True)
        assert isinstance(actions[1], StartTimer)
        delays.append(actions[1].delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_retransmitted_invite_in_completed_resends_the_final() -> None:
    txn, _ = invite_server()
    busy = invite_response(486, "Busy Here")
    txn.send_response(busy)
    assert txn.on_request(request(INVITE)) == [Send(busy, retransmission=True)]


def test_ack_confirms_and_starts_timer_i() -> None:
    txn, _ = invite_server()
    txn.send_response(invite_response(486, "Busy Here"))
    assert txn.on_request(request(ACK)) == [
        CancelTimer(Timer.G),
        CancelTimer(Timer.H),
        StartTimer(Timer.I, 5.0),
    ]
    assert txn.state is TransactionState.CONFIRMED
    # Confirmed absorbs further ACKs and INVITE retransmissions; stale G/H do nothing.
    assert txn.on_request(request(ACK)) == []
    assert txn.on_request(request(INVITE)) == []
    assert txn.on_timer(Timer.G) == []
    assert txn.on_timer(Timer.H) == []
    assert txn.on_timer(Timer.I) == [Terminated()]


def test_ack_over_reliable_transport_terminates_at_once() -> None:
    txn, _ = invite_server(reliable=True)
    txn.send_response(invite_response(486, "Busy Here"))
    assert txn.on_request(request(ACK)) == [
        CancelTimer(Timer.G),
        CancelTimer(Timer.H),
        Terminated(),
    ]


def test_timer_h_without_ack_is_a_failure() -> None:
    txn, _ = invite_server()
    txn.send_response(invite_response(486, "Busy Here"))
    assert txn.on_timer(Timer.H) == [TimedOut(Timer.H), Terminated()]


def test_ack_in_proceeding_is_ignored() -> None:
    txn, _ = invite_server()
    assert txn.on_request(request(ACK)) == []
    assert txn.state is TransactionState.PROCEEDING


def test_a_second_final_response_is_refused() -> None:
    txn, _ = invite_server()
    txn.send_response(invite_response(486, "Busy Here"))
    with pytest.raises(TransactionError):
        txn.send_response(invite_response(200, "OK"))
    with pytest.raises(TransactionError):
        txn.send_response(invite_response(180, "Ringing"))


@pytest.mark.parametrize("completed", [False, True])
def test_invite_server_transport_error(completed: bool) -> None:
    txn, _ = invite_server()
    if completed:
        txn.send_response(invite_response(486, "Busy Here"))
    assert txn.on_transport_error() == [TransportFailed(), Terminated()]


def test_invite_server_refuses_other_methods() -> None:
    with pytest.raises(ValueError, match="REGISTER"):
        InviteServerTransaction(request(REGISTER), reliable=False, timers=TIMERS)


# ---------------------------------------------------------------- non-INVITE server


def test_retransmission_in_trying_is_discarded() -> None:
    txn = register_server()
    assert txn.state is TransactionState.TRYING
    assert txn.on_request(request(REGISTER)) == []


def test_provisional_enters_proceeding_and_is_resent() -> None:
    txn = register_server()
    trying = register_response(100, "Trying")
    assert txn.send_response(trying) == [Send(trying)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.on_request(request(REGISTER)) == [Send(trying, retransmission=True)]


@pytest.mark.parametrize(("code", "provisional"), [(200, False), (200, True), (401, False)])
def test_final_completes_with_timer_j(code: int, provisional: bool) -> None:
    txn = register_server()
    if provisional:
        txn.send_response(register_response(100, "Trying"))
    final = register_response(code, "Whatever")
    assert txn.send_response(final) == [Send(final), StartTimer(Timer.J, 32.0)]
    assert txn.state is TransactionState.COMPLETED
    assert txn.on_request(request(REGISTER)) == [Send(final, retransmission=True)]
    assert txn.on_timer(Timer.J) == [Terminated()]


def test_final_over_reliable_transport_terminates_at_once() -> None:
    txn = register_server(reliable=True)
    ok = register_response(200, "OK")
    assert txn.send_response(ok) == [Send(ok), Terminated()]


def test_non_invite_second_final_is_refused() -> None:
    txn = register_server()
    txn.send_response(register_response(200, "OK"))
    assert not txn.can_send_response
    with pytest.raises(TransactionError):
        txn.send_response(register_response(500, "Server Internal Error"))


@pytest.mark.parametrize("state", ["trying", "proceeding", "completed"])
def test_non_invite_server_transport_error(state: str) -> None:
    txn = register_server()
    if state != "trying":
        txn.send_response(register_response(100, "Trying"))
    if state == "completed":
        txn.send_response(register_response(200, "OK"))
    assert txn.on_transport_error() == [TransportFailed(), Terminated()]
    assert txn.state is TransactionState.TERMINATED
