"""INVITE and non-INVITE client transactions (RFC 3261 §17.1, figures 5 and 6)."""

from __future__ import annotations

import pytest

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction import (
    CancelTimer,
    Deliver,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Send,
    StartTimer,
    Terminated,
    TimedOut,
    TransactionError,
    TransactionState,
    TransportFailed,
)

TIMERS = TimerConfig()  # T1 0.5 s, T2 4 s, T4 5 s, Timer C 185 s

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds8\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    "Route: <sip:ss2.biloxi.example.com;lr>\r\n"
    "Route: <sip:ss3.biloxi.example.com;lr>\r\n"
    "Max-Forwards: 69\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n"
)


def invite_response(code: int, reason: str, to_tag: str | None = "a6c85cf") -> str:
    to = "To: Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"SIP/2.0 {code} {reason}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds8\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
        ";received=192.0.2.1\r\n"
        f"{to}\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )


OPTIONS = (
    "OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKhjhs8ass877\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:carol@chicago.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710\r\n"
    "CSeq: 63104 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def options_response(code: int, reason: str) -> str:
    return (
        f"SIP/2.0 {code} {reason}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKhjhs8ass877\r\n"
        "To: <sip:carol@chicago.example.com>;tag=93810874\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        "CSeq: 63104 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )


def request(text: str) -> Request:
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def response(text: str) -> Response:
    message = parse_message(text.encode())
    assert isinstance(message, Response)
    return message


def invite_client(*, reliable: bool = False) -> InviteClientTransaction:
    return InviteClientTransaction(request(INVITE), reliable=reliable, timers=TIMERS)


def options_client(*, reliable: bool = False) -> NonInviteClientTransaction:
    return NonInviteClientTransaction(request(OPTIONS), reliable=reliable, timers=TIMERS)


# ---------------------------------------------------------------- INVITE client


def test_invite_start_unreliable_sends_and_starts_a_b_c() -> None:
    txn = invite_client()
    assert txn.state is TransactionState.CALLING
    assert txn.start() == [
        Send(txn.request),
        StartTimer(Timer.A, 0.5),
        StartTimer(Timer.B, 32.0),
        StartTimer(Timer.C, 185.0),
    ]


def test_invite_start_reliable_has_no_timer_a() -> None:
    txn = invite_client(reliable=True)
    assert txn.start() == [
        Send(txn.request),
        StartTimer(Timer.B, 32.0),
        StartTimer(Timer.C, 185.0),
    ]


def test_invite_start_twice_is_refused() -> None:
    txn = invite_client()
    txn.start()
    with pytest.raises(TransactionError):
        txn.start()


def test_timer_a_retransmits_and_doubles_without_cap() -> None:
    txn = invite_client()
    txn.start()
    delays = []
    for _ in range(6):
        actions = txn.on_timer(Timer.A)
        assert actions[0] == Send(txn.request, retransmission=True)
        assert isinstance(actions[1], StartTimer)
        assert actions[1].timer is Timer.A
        delays.append(actions[1].delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert txn.state is TransactionState.CALLING


def test_timer_b_in_calling_times_out() -> None:
    txn = invite_client()
    txn.start()
    assert txn.on_timer(Timer.B) == [TimedOut(Timer.B), Terminated()]
    assert txn.state is TransactionState.TERMINATED


def test_provisional_enters_proceeding_and_stops_retransmissions() -> None:
    txn = invite_client()
    txn.start()
    ringing = response(invite_response(180, "Ringing"))
    assert txn.on_response(ringing) == [
        CancelTimer(Timer.A),
        CancelTimer(Timer.B),
        StartTimer(Timer.C, 185.0),
        Deliver(ringing),
    ]
    assert txn.state is TransactionState.PROCEEDING
    # A stale Timer A or B does nothing in Proceeding.
    assert txn.on_timer(Timer.A) == []
    assert txn.on_timer(Timer.B) == []
    again = response(invite_response(183, "Session Progress"))
    assert txn.on_response(again) == [StartTimer(Timer.C, 185.0), Deliver(again)]


def test_100_trying_does_not_reset_timer_c() -> None:
    txn = invite_client()
    txn.start()
    trying = response(invite_response(100, "Trying", to_tag=None))
    assert txn.on_response(trying) == [CancelTimer(Timer.A), CancelTimer(Timer.B), Deliver(trying)]


def test_timer_c_in_calling_ends_the_transaction() -> None:
    txn = InviteClientTransaction(
        request(INVITE), reliable=False, timers=TimerConfig(t1=4.0, t2=4.0)
    )
    txn.start()
    assert txn.on_timer(Timer.C) == [TimedOut(Timer.C), Terminated()]


def test_timer_c_in_proceeding_asks_for_cancel_and_waits_for_the_487() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(180, "Ringing")))
    assert txn.on_timer(Timer.C) == [TimedOut(Timer.C), StartTimer(Timer.C, 32.0)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.timer_c_expired
    # A late provisional no longer pushes the guard back.
    ringing = response(invite_response(180, "Ringing"))
    assert txn.on_response(ringing) == [Deliver(ringing)]
    # The 487 the CANCEL brings is acknowledged as usual.
    terminated = response(invite_response(487, "Request Terminated"))
    actions = txn.on_response(terminated)
    assert txn.ack is not None
    assert Send(txn.ack) in actions
    assert Deliver(terminated) in actions


def test_timer_c_guard_ends_a_transaction_whose_cancel_got_nothing() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(180, "Ringing")))
    txn.on_timer(Timer.C)
    assert txn.on_timer(Timer.C) == [Terminated()]


@pytest.mark.parametrize("provisional", [False, True])
def test_2xx_goes_to_the_tu_and_terminates(provisional: bool) -> None:
    txn = invite_client()
    txn.start()
    if provisional:
        txn.on_response(response(invite_response(180, "Ringing")))
    ok = response(invite_response(200, "OK"))
    actions = txn.on_response(ok)
    assert actions[-2:] == [Deliver(ok), Terminated()]
    assert not any(isinstance(a, Send) for a in actions)
    assert txn.state is TransactionState.TERMINATED
    # A 2xx retransmission no longer concerns the transaction.
    assert txn.on_response(response(invite_response(200, "OK"))) == []


def test_non_2xx_final_sends_ack_and_waits_timer_d() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(180, "Ringing")))
    busy = response(invite_response(486, "Busy Here"))
    actions = txn.on_response(busy)
    assert txn.ack is not None
    assert actions == [
        CancelTimer(Timer.C),
        Send(txn.ack),
        Deliver(busy),
        StartTimer(Timer.D, 32.0),
    ]
    assert txn.state is TransactionState.COMPLETED


def test_ack_for_non_2xx_has_the_rfc_3261_17_1_1_3_headers() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(486, "Busy Here")))
    assert txn.ack is not None
    assert txn.ack.to_bytes() == (
        b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds8\r\n"
        b"Route: <sip:ss2.biloxi.example.com;lr>\r\n"
        b"Route: <sip:ss3.biloxi.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 ACK\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_final_from_calling_cancels_a_and_b() -> None:
    txn = invite_client()
    txn.start()
    actions = txn.on_response(response(invite_response(503, "Service Unavailable")))
    assert actions[:3] == [CancelTimer(Timer.A), CancelTimer(Timer.B), CancelTimer(Timer.C)]


def test_final_retransmission_in_completed_resends_the_same_ack_only() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(486, "Busy Here")))
    ack = txn.ack
    assert ack is not None
    assert txn.on_response(response(invite_response(486, "Busy Here"))) == [
        Send(ack, retransmission=True)
    ]
    # Provisional responses and 2xx are nothing to a completed transaction.
    assert txn.on_response(response(invite_response(180, "Ringing"))) == []
    assert txn.on_timer(Timer.D) == [Terminated()]
    assert txn.state is TransactionState.TERMINATED


def test_non_2xx_over_reliable_transport_terminates_at_once() -> None:
    txn = invite_client(reliable=True)
    txn.start()
    busy = response(invite_response(486, "Busy Here"))
    actions = txn.on_response(busy)
    assert txn.ack is not None
    assert actions[-3:] == [Send(txn.ack), Deliver(busy), Terminated()]
    assert not any(isinstance(a, StartTimer) for a in actions)


@pytest.mark.parametrize("provisional", [False, True])
def test_invite_transport_error_before_final_informs_tu(provisional: bool) -> None:
    txn = invite_client()
    txn.start()
    if provisional:
        txn.on_response(response(invite_response(180, "Ringing")))
    assert txn.on_transport_error() == [TransportFailed(), Terminated()]


def test_invite_transport_error_in_completed_just_ends() -> None:
    txn = invite_client()
    txn.start()
    txn.on_response(response(invite_response(486, "Busy Here")))
    assert txn.on_transport_error() == [Terminated()]


def test_invite_client_refuses_other_methods() -> None:
    with pytest.raises(ValueError, match="OPTIONS"):
        InviteClientTransaction(request(OPTIONS), reliable=False, timers=TIMERS)


# ---------------------------------------------------------------- non-INVITE client


def test_non_invite_start_unreliable() -> None:
    txn = options_client()
    assert txn.state is TransactionState.TRYING
    assert txn.start() == [Send(txn.request), StartTimer(Timer.E, 0.5), StartTimer(Timer.F, 32.0)]


def test_non_invite_start_reliable_has_no_timer_e() -> None:
    txn = options_client(reliable=True)
    assert txn.start() == [Send(txn.request), StartTimer(Timer.F, 32.0)]


def test_timer_e_doubles_up_to_t2_in_trying() -> None:
    txn = options_client()
    txn.start()
    delays = []
    for _ in range(6):
        actions = txn.on_timer(Timer.E)
        assert actions[0] == Send(txn.request, retransmission=True)
        assert isinstance(actions[1], StartTimer)
        delays.append(actions[1].delay)
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_timer_e_in_proceeding_uses_t2() -> None:
    txn = options_client()
    txn.start()
    trying = response(options_response(100, "Trying"))
    assert txn.on_response(trying) == [Deliver(trying)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.on_timer(Timer.E) == [
        Send(txn.request, retransmission=True),
        StartTimer(Timer.E, 4.0),
    ]


@pytest.mark.parametrize("provisional", [False, True])
def test_timer_f_times_out(provisional: bool) -> None:
    txn = options_client()
    txn.start()
    if provisional:
        txn.on_response(response(options_response(100, "Trying")))
    assert txn.on_timer(Timer.F) == [TimedOut(Timer.F), Terminated()]


@pytest.mark.parametrize("code", [200, 404])
def test_final_completes_and_waits_timer_k(code: int) -> None:
    txn = options_client()
    txn.start()
    final = response(options_response(code, "Whatever"))
    assert txn.on_response(final) == [
        CancelTimer(Timer.E),
        CancelTimer(Timer.F),
        Deliver(final),
        StartTimer(Timer.K, 5.0),
    ]
    assert txn.state is TransactionState.COMPLETED
    # Retransmissions of the final response are absorbed; stale E and F do nothing.
    assert txn.on_response(response(options_response(code, "Whatever"))) == []
    assert txn.on_timer(Timer.E) == []
    assert txn.on_timer(Timer.F) == []
    assert txn.on_timer(Timer.K) == [Terminated()]


def test_final_over_reliable_transport_terminates_at_once() -> None:
    txn = options_client(reliable=True)
    txn.start()
    ok = response(options_response(200, "OK"))
    assert txn.on_response(ok) == [
        CancelTimer(Timer.E),
        CancelTimer(Timer.F),
        Deliver(ok),
        Terminated(),
    ]


def test_non_invite_transport_error() -> None:
    txn = options_client()
    txn.start()
    assert txn.on_transport_error() == [TransportFailed(), Terminated()]
    assert txn.on_transport_error() == []


@pytest.mark.parametrize("method", ["INVITE", "ACK"])
def test_non_invite_client_refuses_invite_and_ack(method: str) -> None:
    text = INVITE.replace("INVITE", method)
    with pytest.raises(ValueError, match=method):
        NonInviteClientTransaction(request(text), reliable=False, timers=TIMERS)
