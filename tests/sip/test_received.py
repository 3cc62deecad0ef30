"""Stamping the top Via with the packet's source (RFC 3261 §18.2.1, RFC 3581 §4),
and edgeport's forced rport on connection transports (contract §2)."""

from __future__ import annotations

import pytest

from edgeport.convert import to_proto
from edgeport.sip import Request, parse_message
from edgeport.sip.received import stamp_received


def request_with_via(via: str) -> Request:
    text = (
        "REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-second\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:alice@example.com>\r\n"
        "Call-ID: stamp@test\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def top_via_line(request: Request) -> str:
    return request.to_bytes().decode().split("\r\n")[1]


def test_rport_without_value_is_filled_and_received_added() -> None:
    request = request_with_via("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-a;rport")
    stamp_received(request, "203.0.113.7", 40123)
    assert top_via_line(request) == (
        "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-a;rport=40123;received=203.0.113.7"
    )


def test_rport_with_same_address_still_gets_received() -> None:
    # RFC 3581 §4: with rport, received is added even when the address matches.
    request = request_with_via("SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-a;rport")
    stamp_received(request, "203.0.113.7", 5060)
    assert top_via_line(request).endswith(";rport=5060;received=203.0.113.7")


def test_without_rport_only_received_when_host_differs() -> None:
    request = request_with_via("SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-a")
    stamp_received(request, "203.0.113.7", 40123)
    assert top_via_line(request) == (
        "Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-a;received=203.0.113.7"
    )


def test_without_rport_and_same_host_nothing_changes() -> None:
    request = request_with_via("SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-a")
    before = request.to_bytes()
    stamp_received(request, "203.0.113.7", 5060)
    assert request.to_bytes() == before


def test_forced_rport_on_a_websocket_via_without_rport() -> None:
    # A browser: random .invalid sent-by, no port, no rport.
    request = request_with_via("SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws")
    stamp_received(request, "198.51.100.4", 52011, force_rport=True)
    assert top_via_line(request) == (
        "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws;rport=52011;received=198.51.100.4"
    )
    via = to_proto.to_sip_message(request).via[0]
    assert (via.host, via.port, via.received, via.r_port, via.r_port_flag) == (
        "df7jal23ls0d.invalid",
        -1,
        "198.51.100.4",
        52011,
        True,
    )


def test_forced_rport_when_the_client_sent_its_real_address() -> None:
    # Even a matching sent-by gets both: the route must name the connection's port.
    request = request_with_via("SIP/2.0/TCP 198.51.100.4:5060;branch=z9hG4bK-tcp")
    stamp_received(request, "198.51.100.4", 52012, force_rport=True)
    assert top_via_line(request).endswith(";branch=z9hG4bK-tcp;rport=52012;received=198.51.100.4")


def test_forced_rport_replaces_a_forged_value() -> None:
    request = request_with_via(
        "SIP/2.0/TCP 10.9.9.9:5099;branch=z9hG4bK-f;rport=1111;received=10.9.9.9"
    )
    stamp_received(request, "198.51.100.4", 52013, force_rport=True)
    assert top_via_line(request) == (
        "Via: SIP/2.0/TCP 10.9.9.9:5099;branch=z9hG4bK-f;rport=52013;received=198.51.100.4"
    )


def test_only_the_top_via_is_stamped() -> None:
    request = request_with_via("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-top")
    stamp_received(request, "198.51.100.4", 52014, force_rport=True)
    vias = [via.params for via in request.via]
    assert vias[1] == {"branch": "z9hG4bK-second"}


@pytest.mark.parametrize("source", ["2001:db8::7", "[2001:db8::7]"])
def test_ipv6_source(source: str) -> None:
    request = request_with_via("SIP/2.0/TCP [2001:db8::7]:5060;branch=z9hG4bK-v6")
    stamp_received(request, source, 50000, force_rport=True)
    assert request.top_via.rport == 50000
    assert request.top_via.received == source
