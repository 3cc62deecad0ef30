"""A browser's ``.invalid`` Via host as the processor sees it, and the Via on the wire.

Sans-IO: literal SIP text, stamped as edgeport stamps it, converted, then
``show_browser_source`` applied as the processor call applies it.
"""

from __future__ import annotations

import pytest

from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2
from edgeport.convert import build_forward_request, show_browser_source, to_message_request
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message
from edgeport.sip.received import stamp_received

SOURCE = ("192.168.1.50", 53124)
BROWSER_REGISTER = (
    "REGISTER sip:pbx.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101\r\n"
    "Max-Forwards: 69\r\n"
    "To: <sip:bob@pbx.example.com>\r\n"
    "From: <sip:bob@pbx.example.com>;tag=r1\r\n"
    "Call-ID: browser-reg-1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:bob@h7g6f5d4s3a2.invalid;transport=ws;ob>;+sip.ice;reg-id=1;expires=600\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)
LISTENING = (
    processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.UDP),
    processor_pb2.NetInterface(host="0.0.0.0", port=5062, transport=common_pb2.WS),
)


def received(text: str, transport: common_pb2.Transport.ValueType) -> Request:
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    stream = transport != common_pb2.UDP
    stamp_received(message, *SOURCE, force_rport=stream)
    return message


def shown(
    text: str,
    transport: common_pb2.Transport.ValueType,
    *,
    external_addrs: tuple[str, ...] = (),
) -> tuple[processor_pb2.MessageRequest, processor_pb2.MessageRequest, bool]:
    """(the MessageRequest as converted, as shown to the processor, whether it changed)."""
    request = to_message_request(
        received(text, transport),
        sender=processor_pb2.NetInterface(host=SOURCE[0], port=SOURCE[1], transport=transport),
        edge_port_ref="edge-1",
        listening_points=LISTENING,
        external_addrs=external_addrs,
        localnets=("192.168.1.0/24",),
    )
    before = processor_pb2.MessageRequest()
    before.CopyFrom(request)
    changed = show_browser_source(request)
    return before, request, changed


@pytest.mark.parametrize("transport", [common_pb2.WS, common_pb2.WSS])
def test_a_browser_s_invalid_via_host_is_shown_as_its_source_address(
    transport: common_pb2.Transport.ValueType,
) -> None:
    before, after, changed = shown(BROWSER_REGISTER, transport)
    assert changed
    assert before.message.via[0].host == "h7g6f5d4s3a2.invalid"
    assert after.message.via[0].host == "192.168.1.50"
    # Only the host: port (absent), branch, transport, received and rport stay.
    expected = sipmessage_pb2.Via()
    expected.CopyFrom(before.message.via[0])
    expected.host = "192.168.1.50"
    assert after.message.via[0] == expected
    assert (after.message.via[0].port, after.message.via[0].r_port) == (-1, 53124)
    # The rest of the MessageRequest is what it was.
    del before.message.via[:]
    del after.message.via[:]
    assert after == before


@pytest.mark.parametrize("transport", [common_pb2.UDP, common_pb2.TCP, common_pb2.TLS])
def test_a_client_that_is_not_on_a_websocket_is_shown_unchanged(
    transport: common_pb2.Transport.ValueType,
) -> None:
    text = BROWSER_REGISTER.replace("SIP/2.0/WSS", "SIP/2.0/UDP")
    before, after, changed = shown(text, transport)
    assert not changed
    assert after == before
    assert after.message.via[0].host == "h7g6f5d4s3a2.invalid"


def test_with_external_addrs_a_browser_is_shown_unchanged() -> None:
    before, after, changed = shown(
        BROWSER_REGISTER, common_pb2.WSS, external_addrs=("203.0.113.7",)
    )
    assert not changed
    assert after == before
    assert after.message.via[0].host == "h7g6f5d4s3a2.invalid"


def test_a_websocket_client_that_writes_its_address_is_shown_unchanged() -> None:
    text = BROWSER_REGISTER.replace(
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;", "Via: SIP/2.0/WSS 192.168.1.50:53124;"
    )
    before, after, changed = shown(text, common_pb2.WSS)
    assert not changed
    assert after == before


def test_only_the_top_via_is_shown_differently() -> None:
    text = BROWSER_REGISTER.replace(
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101\r\n",
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101\r\n"
        "Via: SIP/2.0/WSS other.invalid;branch=z9hG4bK5550100\r\n",
    )
    _before, after, changed = shown(text, common_pb2.WS)
    assert changed
    assert [via.host for via in after.message.via] == ["192.168.1.50", "other.invalid"]


def test_a_response_from_a_websocket_is_shown_unchanged() -> None:
    """A response's top Via is the EdgePort's; one naming a .invalid host is left alone."""
    text = (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/WS h7g6f5d4s3a2.invalid;branch=z9hG4bK77\r\n"
        "To: <sip:bob@pbx.example.com>;tag=b\r\n"
        "From: <sip:alice@pbx.example.com>;tag=a\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    request = to_message_request(
        parse_message(text.encode()),
        sender=processor_pb2.NetInterface(host=SOURCE[0], port=SOURCE[1], transport=common_pb2.WS),
        edge_port_ref="edge-1",
        listening_points=LISTENING,
        external_addrs=(),
        localnets=("192.168.1.0/24",),
    )
    assert not show_browser_source(request)
    assert request.message.via[0].host == "h7g6f5d4s3a2.invalid"


@pytest.mark.parametrize(
    "via_lines",
    [
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101\r\n",
        # Two values on one line: paired by value, not by line.
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101, "
        "SIP/2.0/WSS 10.1.1.1:5062;branch=z9hG4bK5550100\r\n",
    ],
)
def test_the_browser_s_via_goes_on_the_wire_as_the_browser_sent_it(via_lines: str) -> None:
    """A processor that adds its Via and returns the browser's unchanged: the
    forwarded request carries the browser's ``.invalid`` sent-by, as received."""
    text = BROWSER_REGISTER.replace(
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101\r\n", via_lines
    )
    original = received(text, common_pb2.WSS)
    request = to_message_request(
        original,
        sender=processor_pb2.NetInterface(host=SOURCE[0], port=SOURCE[1], transport=common_pb2.WSS),
        edge_port_ref="edge-1",
        listening_points=LISTENING,
        external_addrs=(),
        localnets=("192.168.1.0/24",),
    )
    assert show_browser_source(request)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(request.message)
    own = sipmessage_pb2.Via(host="192.168.1.1", port=5060, transport="UDP", r_port_flag=True)
    reply.message.via.insert(0, own)
    out = build_forward_request(
        reply, original, branch_factory=lambda: "z9hG4bKedge", sent=request.message
    ).request
    vias = out.headers.get_all("via")
    assert vias[0] == "SIP/2.0/UDP 192.168.1.1:5060;branch=z9hG4bKedge;rport"
    # Below edgeport's own Via, the request's Vias as received (and stamped).
    assert ", ".join(vias[1:]) == ", ".join(original.headers.get_all("via"))
    assert vias[1].startswith("SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101;")


@pytest.mark.parametrize(
    ("host", "shown_as"),
    [
        ("H7G6F5D4S3A2.INVALID", "192.168.1.50"),  # RFC 3261 §19.1.4: hosts compare caselessly
        ("h7g6f5d4s3a2.invalid.", "192.168.1.50"),  # a fully qualified name
        ("h7g6f5d4s3a2.invalid.example.com", "h7g6f5d4s3a2.invalid.example.com"),
        ("invalid", "invalid"),
        ("10.0.0.9", "10.0.0.9"),
    ],
)
def test_only_a_name_under_invalid_is_shown_as_the_source(host: str, shown_as: str) -> None:
    text = BROWSER_REGISTER.replace(
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;", f"Via: SIP/2.0/WSS {host};"
    )
    _before, after, changed = shown(text, common_pb2.WSS)
    assert after.message.via[0].host == shown_as
    assert changed == (shown_as != host)


def test_a_browser_cannot_choose_the_address_it_is_shown_by() -> None:
    """received and rport written by the client are replaced by edgeport's stamp,
    and the host shown is the connection's, whatever the Via claims."""
    text = BROWSER_REGISTER.replace(
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid;branch=z9hG4bK5550101",
        "Via: SIP/2.0/WSS h7g6f5d4s3a2.invalid:5099;branch=z9hG4bK5550101;"
        "received=10.9.9.9;rport=5099;maddr=10.9.9.9",
    )
    _before, after, changed = shown(text, common_pb2.WSS)
    assert changed
    via = after.message.via[0]
    assert (via.host, via.received, via.r_port) == ("192.168.1.50", "192.168.1.50", 53124)
    assert (via.port, via.m_addr) == (5099, "10.9.9.9")  # shown as written, as for any client
