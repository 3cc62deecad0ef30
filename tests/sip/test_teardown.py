"""The ACK and BYE edgeport sends for a 2xx that crossed the caller's CANCEL."""

from __future__ import annotations

import pytest

from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.teardown import end_dialog

FORWARDED_INVITE = (
    b"INVITE sip:bob@192.0.2.20:5070 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKedge1\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKalice;rport=5060\r\n"
    b"Record-Route: <sip:192.0.2.1:5060;lr>\r\n"
    b"Max-Forwards: 69\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: crossed@example.com\r\n"
    b"CSeq: 31 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)

OK_WITH_ROUTES = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKedge1\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKalice;rport=5060\r\n"
    b"Record-Route: <sip:203.0.113.9;lr>, <sip:203.0.113.8;lr>\r\n"
    b"Record-Route: <sip:192.0.2.1:5060;lr>\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>;tag=b9\r\n"
    b"Call-ID: crossed@example.com\r\n"
    b"CSeq: 31 INVITE\r\n"
    b"Contact: <sip:bob@192.0.2.20:5070;transport=udp>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _parse(data: bytes) -> Request | Response:
    return parse_message(data)


def test_ack_and_bye_follow_the_dialog_the_2xx_set_up() -> None:
    invite = _parse(FORWARDED_INVITE)
    ok = _parse(OK_WITH_ROUTES)
    assert isinstance(invite, Request)
    assert isinstance(ok, Response)
    ack, bye = end_dialog(invite, ok, branch="z9hG4bKend")
    for request, cseq in ((ack, "31 ACK"), (bye, "32 BYE")):
        text = request.to_bytes().decode()
        lines = text.split("\r\n")
        assert lines[0].startswith(f"{request.method} sip:bob@192.0.2.20:5070;transport=udp ")
        vias = [line for line in lines if line.startswith("Via:")]
        assert len(vias) == 1  # only edgeport's own, never the caller's
        assert vias[0].startswith("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKend")
        # Only the hops below edgeport, reversed (RFC 3261 §12.1.2).
        routes = [line for line in lines if line.startswith("Route:")]
        assert routes == ["Route: <sip:203.0.113.8;lr>", "Route: <sip:203.0.113.9;lr>"]
        assert f"CSeq: {cseq}" in lines
        assert "To: <sip:bob@example.com>;tag=b9" in lines
        assert "From: <sip:alice@example.com>;tag=a1" in lines
    assert ack.headers.get("Via") != bye.headers.get("Via")  # two transactions


def test_a_2xx_without_contact_cannot_be_ended() -> None:
    invite = _parse(FORWARDED_INVITE)
    ok = _parse(
        OK_WITH_ROUTES.replace(b"Contact: <sip:bob@192.0.2.20:5070;transport=udp>\r\n", b"")
    )
    assert isinstance(invite, Request)
    assert isinstance(ok, Response)
    with pytest.raises(ValueError, match="Contact"):
        end_dialog(invite, ok, branch="z9hG4bKend")
