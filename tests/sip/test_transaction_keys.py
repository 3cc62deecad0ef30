"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2), CANCEL building (§9.1), timers."""

from __future__ import annotations

import dataclasses

import pytest

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction import build_cancel, client_key, matching_invite_key, server_key

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n"
    "Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
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


def variant(method: str, *, via: str | None = None, to_tag: str | None = None) -> Request:
    text = INVITE.replace("INVITE sip:", f"{method} sip:").replace(
        "CSeq: 314159 INVITE", f"CSeq: 314159 {method}"
    )
    if via is not None:
        text = text.replace(
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds",
            f"Via: {via}",
        )
    if to_tag is not None:
        text = text.replace(
            "To: Bob <sip:bob@biloxi.example.com>", f"To: Bob <sip:bob@biloxi.example.com>;{to_tag}"
        )
    return request(text)


# ---------------------------------------------------------------- server keys


def test_retransmission_has_the_same_key() -> None:
    assert server_key(request(INVITE)) == server_key(request(INVITE))


def test_ack_matches_its_invite() -> None:
    ack = variant("ACK", to_tag="tag=a6c85cf")
    assert server_key(ack) == server_key(request(INVITE))


def test_cancel_is_its_own_transaction_but_finds_its_invite() -> None:
    cancel = variant("CANCEL")
    assert server_key(cancel) != server_key(request(INVITE))
    assert matching_invite_key(cancel) == server_key(request(INVITE))


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhdX",  # branch
        "SIP/2.0/UDP pc34.atlanta.example.com:5060;branch=z9hG4bK776asdhds",  # sent-by host
        "SIP/2.0/UDP pc33.atlanta.example.com:5070;branch=z9hG4bK776asdhds",  # sent-by port
    ],
)
def test_other_branch_or_sent_by_is_another_transaction(via: str) -> None:
    assert server_key(variant("INVITE", via=via)) != server_key(request(INVITE))


def test_received_stamping_does_not_change_the_key() -> None:
    stamped = variant(
        "INVITE",
        via="SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"
        ";received=192.0.2.1;rport=5061",
    )
    assert server_key(stamped) == server_key(request(INVITE))


RFC2543_VIA = "SIP/2.0/UDP pc33.atlanta.example.com:5060"


def test_rfc2543_fallback_matches_retransmission_and_ack() -> None:
    invite = variant("INVITE", via=RFC2543_VIA)
    assert server_key(invite) == server_key(variant("INVITE", via=RFC2543_VIA))
    # The ACK carries the To tag of the response; it still matches.
    ack = variant("ACK", via=RFC2543_VIA, to_tag="tag=a6c85cf")
    assert server_key(ack) == server_key(invite)
    assert matching_invite_key(variant("CANCEL", via=RFC2543_VIA)) == server_key(invite)


def test_rfc2543_fallback_tells_apart_cseq_and_call_id() -> None:
    invite = variant("INVITE", via=RFC2543_VIA)
    other_cseq = request(
        INVITE.replace("CSeq: 314159", "CSeq: 314160").replace(
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds",
            f"Via: {RFC2543_VIA}",
        )
    )
    other_call = request(
        INVITE.replace("a84b4c76e66710@", "b84b4c76e66710@").replace(
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds",
            f"Via: {RFC2543_VIA}",
        )
    )
    assert server_key(other_cseq) != server_key(invite)
    assert server_key(other_call) != server_key(invite)


def test_rfc2543_fallback_non_invite_includes_to_tag() -> None:
    bye = variant("BYE", via=RFC2543_VIA, to_tag="tag=1")
    assert server_key(bye) != server_key(variant("BYE", via=RFC2543_VIA, to_tag="tag=2"))


# ---------------------------------------------------------------- client keys

RESPONSE = (
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def test_response_matches_the_request_by_branch_and_cseq_method() -> None:
    assert client_key(response(RESPONSE)) == client_key(request(INVITE))
    assert client_key(request(INVITE)) == ("z9hG4bK776asdhds", "INVITE")


def test_response_to_cancel_shares_the_branch_but_not_the_transaction() -> None:
    cancel_ok = response(
        RESPONSE.replace("180 Ringing", "200 OK").replace("314159 INVITE", "314159 CANCEL")
    )
    assert client_key(cancel_ok) != client_key(request(INVITE))
    assert client_key(cancel_ok) == client_key(build_cancel(request(INVITE)))


# ---------------------------------------------------------------- build_cancel


def test_build_cancel_follows_rfc_3261_9_1() -> None:
    invite = request(
        INVITE.replace(
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n",
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n"
            "Via: SIP/2.0/TCP client.atlanta.example.com;branch=z9hG4bKfirst\r\n",
        )
    )
    assert build_cancel(invite).to_bytes() == (
        b"CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds\r\n"
        b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 CANCEL\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


# ---------------------------------------------------------------- timers


def test_timer_durations_unreliable() -> None:
    timers = TimerConfig()
    expected = {
        Timer.A: 0.5,
        Timer.B: 32.0,
        Timer.C: 185.0,
        Timer.D: 32.0,
        Timer.E: 0.5,
        Timer.F: 32.0,
        Timer.G: 0.5,
        Timer.H: 32.0,
        Timer.I: 5.0,
        Timer.J: 32.0,
        Timer.K: 5.0,
    }
    assert {t: timers.duration(t, reliable=False) for t in Timer} == expected


def test_wait_timers_are_zero_on_reliable_transports() -> None:
    timers = TimerConfig(t1=1.0)
    assert [timers.duration(t, reliable=True) for t in (Timer.D, Timer.I, Timer.J, Timer.K)] == [
        0.0,
        0.0,
        0.0,
        0.0,
    ]
    assert timers.duration(Timer.B, reliable=True) == 64.0


def test_next_interval() -> None:
    timers = TimerConfig(t1=0.5, t2=2.0)
    assert timers.next_interval(Timer.A, 2.0) == 4.0
    assert timers.next_interval(Timer.E, 1.0) == 2.0
    assert timers.next_interval(Timer.G, 2.0) == 2.0
    with pytest.raises(ValueError, match="B"):
        timers.next_interval(Timer.B, 1.0)


@pytest.mark.parametrize(
    "change", [{"t1": 0.0}, {"t1": 5.0}, {"t4": 0.0}, {"timer_c": 180.0}], ids=str
)
def test_timer_config_refuses_nonsense(change: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"t1|t4|timer_c"):
        dataclasses.replace(TimerConfig(), **change)


def test_timer_config_is_frozen() -> None:
    timers = TimerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        timers.t1 = 1.0  # type: ignore[misc]
