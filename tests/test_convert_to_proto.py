"""SIP text -> SIPMessage / MessageRequest, field by field (contract §2, §3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2
from edgeport.convert import (
    ConversionError,
    MessageRequestBuilder,
    method_value,
    response_type_for_status,
    should_send_response,
    status_for_response_type,
    to_message_request,
    to_proto,
    to_sip_message,
)
from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message

RT = sipmessage_pb2.ResponseType

REGISTER = (
    "REGISTER sip:sip.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=40123;received=203.0.113.9\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@sip.example.com>;tag=f1;x-mark\r\n'
    "To: <sip:alice@sip.example.com>\r\n"
    "Call-ID: reg-1@192.168.1.20\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:alice@192.168.1.20:5062;transport=udp>;expires=600;q=0.5\r\n"
    "Expires: 3600\r\n"
    'Authorization: Digest username="alice", realm="sip.example.com", nonce="n1", '
    'uri="sip:sip.example.com", response="0123abcd", algorithm=MD5, cnonce="c1", '
    "qop=auth, nc=0000001a\r\n"
    "User-Agent: softphone/1.0\r\n"
    "x-Custom-Header: keep me\r\n"
    "Allow: INVITE, ACK, BYE\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

INVITE = (
    "INVITE sip:+15551234@sip.example.com:5080;transport=tcp;user=phone SIP/2.0\r\n"
    "v: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKinv1;rport\r\n"
    "v: SIP/2.0/UDP 10.0.0.8:5070;branch=z9hG4bKinv0;ttl=16;maddr=239.1.1.1\r\n"
    "Max-Forwards: 69\r\n"
    "f: <sip:bob@sip.example.com>;tag=b1\r\n"
    "t: <sip:+15551234@sip.example.com>\r\n"
    "i: inv-1@10.0.0.7\r\n"
    "CSeq: 1 INVITE\r\n"
    "m: <sip:bob@10.0.0.7;transport=tcp>\r\n"
    "k: timer\r\n"
    "c: application/sdp\r\n"
    "l: 35\r\n"
    "\r\n"
    "v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\n"
)

OK_WITH_RECORD_ROUTE = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKedge;rport=5060\r\n"
    "Via: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKinv1;rport=51000;received=203.0.113.7\r\n"
    "Record-Route: <sip:198.51.100.1;lr;r2=on;ftag=b1>\r\n"
    "Record-Route: <sip:10.1.0.1:5060;transport=tcp;lr>;r2=on, <sip:10.1.0.2;lr>\r\n"
    "From: <sip:bob@sip.example.com>;tag=b1\r\n"
    "To: <sip:+15551234@sip.example.com>;tag=t9\r\n"
    "Call-ID: inv-1@10.0.0.7\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:gw@10.1.0.9:5060>\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def parse(text: str | bytes) -> Request | Response:
    return parse_message(text.encode() if isinstance(text, str) else text)


def ext(message: sipmessage_pb2.SIPMessage) -> list[tuple[str, str]]:
    return [(e.name, e.value) for e in message.extensions]


def test_register_request_uri_and_via_conventions() -> None:
    message = to_sip_message(parse(REGISTER))
    assert message.WhichOneof("message_type") == "request_uri"
    uri = message.request_uri
    assert (uri.user, uri.host, uri.port, uri.ttl_param) == ("", "sip.example.com", -1, -1)
    assert not uri.secure
    assert not uri.lr_param
    (via,) = message.via
    assert via.host == "192.168.1.20"
    assert via.port == 5062
    assert via.transport == "UDP"
    assert via.branch == "z9hG4bKreg1"
    assert via.r_port_flag is True
    assert via.r_port == 40123
    assert via.received == "203.0.113.9"
    assert via.m_addr == ""
    assert via.ttl == -1


def test_register_typed_headers() -> None:
    message = to_sip_message(parse(REGISTER))
    sender = getattr(message, "from")
    assert sender.address.display_name == "Alice"
    assert sender.address.uri.user == "alice"
    assert sender.tag == "f1"
    assert dict(sender.parameters) == {"tag": "f1", "x-mark": ""}
    assert message.to.tag == ""
    assert dict(message.to.parameters) == {}
    assert message.contact.address.uri.host == "192.168.1.20"
    assert message.contact.address.uri.port == 5062
    assert message.contact.address.uri.transport_param == "udp"
    assert message.contact.expires == 600
    assert message.contact.q_value == pytest.approx(0.5)
    assert message.call_id.call_id == "reg-1@192.168.1.20"
    assert message.expires.expires == 3600
    assert message.max_forwards.max_forwards == 70
    assert message.content_length.content_length == 0
    auth = message.authorization
    assert auth.scheme == "Digest"
    assert (auth.username, auth.realm, auth.nonce) == ("alice", "sip.example.com", "n1")
    assert (auth.uri, auth.response, auth.algorithm) == ("sip:sip.example.com", "0123abcd", "MD5")
    assert (auth.c_nonce, auth.qop) == ("c1", "auth")
    assert auth.nonce_count == 26  # nc=0000001a is hexadecimal
    assert not message.HasField("www_authenticate")
    assert message.body == ""


def test_register_extensions_in_order_with_canonical_names() -> None:
    message = to_sip_message(parse(REGISTER))
    assert ext(message) == [
        ("CSeq", "2 REGISTER"),
        ("User-Agent", "softphone/1.0"),
        ("x-Custom-Header", "keep me"),
        ("Allow", "INVITE, ACK, BYE"),
    ]


def test_register_message_request_fields() -> None:
    sender = processor_pb2.NetInterface(
        host="192.168.1.20", port=5062, transport=common_pb2.Transport.UDP
    )
    lp = processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.UDP)
    request = to_message_request(
        parse(REGISTER),
        sender=sender,
        edge_port_ref="ep-1",
        listening_points=[lp],
        external_addrs=["198.51.100.1"],
        localnets=["10.0.0.0/8"],
    )
    assert request.ref == "reg-1@192.168.1.20"
    assert request.edge_port_ref == "ep-1"
    assert request.method == processor_pb2.Method.REGISTER
    assert request.sender == sender
    assert list(request.listening_points) == [lp]
    assert list(request.external_addrs) == ["198.51.100.1"]
    assert list(request.localnets) == ["10.0.0.0/8"]
    assert dict(request.metadata) == {}
    assert request.message == to_sip_message(parse(REGISTER))


def test_invite_compact_headers_and_body() -> None:
    message = to_sip_message(parse(INVITE))
    uri = message.request_uri
    assert (uri.user, uri.host, uri.port) == ("+15551234", "sip.example.com", 5080)
    assert (uri.transport_param, uri.user_param) == ("tcp", "phone")
    top, second = message.via
    assert (top.host, top.port, top.transport) == ("10.0.0.7", -1, "TCP")
    assert top.r_port_flag is True
    assert top.r_port == -1
    assert top.received == ""
    assert (second.port, second.ttl, second.m_addr) == (5070, 16, "239.1.1.1")
    assert second.r_port_flag is False
    assert second.r_port == -1
    assert getattr(message, "from").tag == "b1"
    assert message.to.address.uri.user == "+15551234"
    assert message.call_id.call_id == "inv-1@10.0.0.7"
    assert message.contact.address.uri.transport_param == "tcp"
    assert message.contact.expires == -1
    assert message.contact.q_value == -1.0
    assert ext(message) == [
        ("CSeq", "1 INVITE"),
        ("Supported", "timer"),
        ("Content-Type", "application/sdp"),
    ]
    assert message.content_length.content_length == 35
    assert message.body == "v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\n"


def test_ok_with_record_route() -> None:
    msg = parse(OK_WITH_RECORD_ROUTE)
    message = to_sip_message(msg)
    assert message.WhichOneof("message_type") == "response_type"
    assert message.response_type == RT.OK
    assert message.reason_phrase == "OK"
    hosts = [r.address.uri.host for r in message.record_route]
    assert hosts == ["198.51.100.1", "10.1.0.1", "10.1.0.2"]
    assert all(r.address.uri.lr_param for r in message.record_route)
    assert dict(message.record_route[0].parameters) == {}
    assert dict(message.record_route[1].parameters) == {"r2": "on"}
    assert message.record_route[1].address.uri.transport_param == "tcp"
    assert message.record_route[1].address.uri.port == 5060
    assert message.record_route[2].address.uri.port == -1
    assert message.via[1].r_port == 51000
    assert message.to.tag == "t9"
    request = to_message_request(
        msg,
        sender=processor_pb2.NetInterface(host="10.1.0.9", port=5060),
        edge_port_ref="ep",
        listening_points=[],
        external_addrs=[],
        localnets=[],
    )
    assert request.method == processor_pb2.Method.INVITE
    assert dict(request.metadata) == {"statusCode": "200"}


def _response(status_line: str, cseq: str = "1 INVITE", extra: str = "") -> str:
    return (
        f"SIP/2.0 {status_line}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        "From: <sip:a@example.com>;tag=1\r\n"
        "To: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c1\r\n"
        f"CSeq: {cseq}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n"
        "\r\n"
    )


def test_422_travels_as_class_value_with_status_code() -> None:
    msg = parse(_response("422 Session Interval Too Small", extra="Min-SE: 1800\r\n"))
    request = to_message_request(
        msg,
        sender=processor_pb2.NetInterface(),
        edge_port_ref="ep",
        listening_points=[],
        external_addrs=[],
        localnets=[],
    )
    assert request.message.response_type == RT.CLIENT_ERROR
    assert request.message.reason_phrase == "Session Interval Too Small"
    assert request.metadata["statusCode"] == "422"
    assert ext(request.message) == [("CSeq", "1 INVITE"), ("Min-SE", "1800")]


def test_180_ringing_and_a_provisional_without_value() -> None:
    assert to_sip_message(parse(_response("180 Ringing"))).response_type == RT.RINGING
    early = parse(_response("199 Early Dialog Terminated"))
    assert not should_send_response(199)
    with pytest.raises(ConversionError, match="199"):
        to_message_request(
            early,
            sender=processor_pb2.NetInterface(),
            edge_port_ref="ep",
            listening_points=[],
            external_addrs=[],
            localnets=[],
        )


def test_response_method_outside_the_enum_is_unknown() -> None:
    msg = parse(_response("200 OK", cseq="3 FOO"))
    request = to_message_request(
        msg,
        sender=processor_pb2.NetInterface(),
        edge_port_ref="ep",
        listening_points=[],
        external_addrs=[],
        localnets=[],
    )
    assert request.method == processor_pb2.Method.UNKNOWN


def test_401_challenges_and_proxy_authenticate() -> None:
    msg = parse(
        _response(
            "401 Unauthorized",
            cseq="1 REGISTER",
            extra=(
                'WWW-Authenticate: Digest realm="sip.example.com", nonce="abc", '
                'opaque="op", algorithm=SHA-256, qop="auth", stale=TRUE\r\n'
                'WWW-Authenticate: Digest realm="sip.example.com", nonce="abc", algorithm=MD5\r\n'
                'Proxy-Authenticate: Digest realm="p", nonce="q"\r\n'
            ),
        )
    )
    message = to_sip_message(msg)
    www = message.www_authenticate
    assert (www.scheme, www.realm, www.nonce, www.opaque) == (
        "Digest",
        "sip.example.com",
        "abc",
        "op",
    )
    assert (www.algorithm, www.qop, www.stale) == ("SHA-256", "auth", True)
    assert ext(message) == [
        ("CSeq", "1 REGISTER"),
        ("WWW-Authenticate", 'Digest realm="sip.example.com", nonce="abc", algorithm=MD5'),
        ("Proxy-Authenticate", 'Digest realm="p", nonce="q"'),
    ]


def test_non_utf8_body_is_empty_text() -> None:
    body = b"\xff\xfe\x00binary"
    data = (
        b"MESSAGE sip:b@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\n"
        b"To: <sip:b@example.com>\r\n"
        b"Call-ID: m1\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Length: 9\r\n"
        b"\r\n" + body
    )
    message = to_sip_message(parse(data))
    assert message.body == ""
    assert message.content_length.content_length == 9


REGISTER_STAR = (
    "REGISTER sip:sip.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
    "From: <sip:a@sip.example.com>;tag=1\r\n"
    "To: <sip:a@sip.example.com>\r\n"
    "Call-ID: r2\r\n"
    "CSeq: 5 REGISTER\r\n"
    "Contact: *\r\n"
    "Expires: 0\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def test_contact_wildcard() -> None:
    message = to_sip_message(parse(REGISTER_STAR))
    assert message.contact.address.wildcard is True
    assert message.contact.expires == -1
    assert message.expires.expires == 0
    assert message.HasField("expires")


def test_multiple_contacts_travel_as_extensions_in_order() -> None:
    text = REGISTER_STAR.replace(
        "Contact: *\r\n",
        "Contact: <sip:a@10.0.0.7>;q=0.9, <sip:a@10.0.0.8>;q=0.1\r\n"
        "X-Between: 1\r\n"
        "m: <sip:a@10.0.0.9>\r\n",
    )
    message = to_sip_message(parse(text))
    assert message.contact.address.uri.host == "10.0.0.7"
    assert message.contact.q_value == pytest.approx(0.9)
    assert ext(message) == [
        ("CSeq", "5 REGISTER"),
        ("Contact", "<sip:a@10.0.0.8>;q=0.1"),
        ("Contact", "<sip:a@10.0.0.9>"),
        ("X-Between", "1"),
    ]


def test_tel_request_uri() -> None:
    text = REGISTER_STAR.replace(
        "REGISTER sip:sip.example.com", "INVITE tel:+15551234;phone-context=example.com"
    ).replace("5 REGISTER", "5 INVITE")
    message = to_sip_message(parse(text))
    uri = message.request_uri
    assert (uri.user, uri.user_param, uri.host) == ("+15551234", "phone", "example.com")
    assert (uri.port, uri.ttl_param, uri.secure) == (-1, -1, False)


def test_ipv6_hosts_keep_brackets() -> None:
    text = (
        "OPTIONS sips:[2001:db8::1]:5061 SIP/2.0\r\n"
        "Via: SIP/2.0/TLS [2001:db8::7];branch=z9hG4bK1;received=2001:db8::9\r\n"
        "From: <sip:a@[2001:db8::7]>;tag=1\r\n"
        "To: <sips:[2001:db8::1]>\r\n"
        "Call-ID: o1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    message = to_sip_message(parse(text))
    assert message.request_uri.host == "[2001:db8::1]"
    assert message.request_uri.port == 5061
    assert message.request_uri.secure is True
    assert message.via[0].host == "[2001:db8::7]"
    assert message.via[0].port == -1
    assert message.via[0].received == "2001:db8::9"
    assert getattr(message, "from").address.uri.host == "[2001:db8::7]"


def test_status_tables() -> None:
    assert response_type_for_status(100) == RT.TRYING
    assert response_type_for_status(606) == RT.SESSION_NOT_ACCEPTABLE
    assert response_type_for_status(299) == RT.SUCCESS
    assert response_type_for_status(399) == RT.REDIRECTION
    assert response_type_for_status(429) == RT.CLIENT_ERROR
    assert response_type_for_status(599) == RT.SERVER_ERROR
    assert response_type_for_status(699) == RT.GLOBAL_ERROR
    assert response_type_for_status(110) is None
    assert response_type_for_status(700) is None
    assert status_for_response_type(RT.REQUEST_TERMINATED) == 487
    assert status_for_response_type(RT.CLIENT_ERROR) == 400
    assert status_for_response_type(RT.CLIENT_ERROR, {"statusCode": "429"}) == 429
    assert status_for_response_type(RT.CLIENT_ERROR, {"statusCode": "503"}) == 400
    assert status_for_response_type(RT.UNKNOWN) is None
    assert method_value("UPDATE") == processor_pb2.Method.UPDATE
    assert method_value("invite") == processor_pb2.Method.UNKNOWN


def test_message_request_wire_bytes_by_hand() -> None:
    msg = parse(
        "BYE sip:b@h SIP/2.0\r\n"
        "Via: SIP/2.0/UDP h2;branch=z9hG4bK1\r\n"
        "From: <sip:a@h2>;tag=1\r\n"
        "To: <sip:b@h>;tag=2\r\n"
        "Call-ID: c\r\n"
        "CSeq: 2 BYE\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    wire = to_message_request(
        msg,
        sender=processor_pb2.NetInterface(host="h2"),
        edge_port_ref="e",
        listening_points=[],
        external_addrs=[],
        localnets=[],
    ).SerializeToString()
    # ref=1 "c"; edge_port_ref=2 "e"; method=3 BYE=8; sender=4 {host=1 "h2"}.
    assert wire.startswith(b"\x0a\x01c\x12\x01e\x18\x08\x22\x04\x0a\x02h2")
    # message=8, length-delimited: tag (8 << 3) | 2 = 0x42.
    assert wire[14] == 0x42
    # its length is a two-byte varint: low 7 bits first, continuation bit set.
    assert (wire[15] & 0x7F) | (wire[16] << 7) == len(wire) - 17
    assert wire[15] & 0x80
    inner_wire = wire[17:]
    assert sipmessage_pb2.SIPMessage.FromString(inner_wire).request_uri.host == "h"
    # request_uri=2 (0x12) first: user=1 "b" (0x0a 01 62), host=3 "h" (0x1a 01 68),
    # ttl_param=8 = -1 as a 10-byte varint (0x40 ff.. 01), port=9 (0x48 ff.. 01).
    minus_one = b"\xff" * 9 + b"\x01"
    uri = b"\x0a\x01b\x1a\x01h\x40" + minus_one + b"\x48" + minus_one
    assert inner_wire.startswith(b"\x12" + bytes([len(uri)]) + uri)
    # extensions=12: tag (12 << 3) | 2 = 0x62 with name=1 "CSeq", value=2 "2 BYE".
    cseq = b"\x0a\x04CSeq\x12\x052 BYE"
    assert b"\x62" + bytes([len(cseq)]) + cseq in inner_wire
    # via=13: tag 0x6a, with port=2 = -1 (0x10 + minus_one) because h2 has no port.
    assert b"\x6a" in inner_wire
    assert b"\x0a\x02h2\x10" + minus_one in inner_wire


def test_response_type_wire_tag() -> None:
    message = to_sip_message(parse(_response("486 Busy Here")))
    # response_type=1 varint: 0x08, BUSY_HERE=39 (0x27).
    assert message.SerializeToString().startswith(b"\x08\x27")


def test_builder_makes_independent_requests() -> None:
    lp = processor_pb2.NetInterface(host="0.0.0.0", port=5060, transport=common_pb2.Transport.TCP)
    builder = MessageRequestBuilder(
        edge_port_ref="ep", listening_points=[lp], external_addrs=["x"], localnets=["y"]
    )
    sender = processor_pb2.NetInterface(host="192.168.1.20", port=5062)
    first = builder.build(parse(REGISTER), sender=sender)
    second = builder.build(parse(_response("180 Ringing")), sender=sender)
    assert first == to_message_request(
        parse(REGISTER),
        sender=sender,
        edge_port_ref="ep",
        listening_points=[lp],
        external_addrs=["x"],
        localnets=["y"],
    )
    assert second.method == processor_pb2.Method.INVITE
    assert dict(second.metadata) == {"statusCode": "180"}
    assert dict(first.metadata) == {}
    assert list(second.listening_points) == [lp]


def test_comma_separated_vias_and_a_malformed_typed_header() -> None:
    text = REGISTER_STAR.replace(
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n",
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1, SIP/2.0/TCP 10.0.0.8;branch=z9hG4bK0\r\n",
    )
    message = to_sip_message(parse(text))
    assert [(v.host, v.transport, v.branch) for v in message.via] == [
        ("10.0.0.7", "UDP", "z9hG4bK1"),
        ("10.0.0.8", "TCP", "z9hG4bK0"),
    ]
    with pytest.raises(ConversionError, match="Expires"):
        to_sip_message(parse(REGISTER_STAR.replace("Expires: 0", "Expires: soon")))


# Header lines seen before are merged as stored protobuf bytes. These tests
# hold the cached path to the bytes the same message gives with the cache empty.

TWO_CONTACT_LINES = (
    "REGISTER sip:sip.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 10.0.0.7:5060;branch=z9hG4bKtwo\r\n"
    "From: <sip:carol@sip.example.com>;tag=c1\r\n"
    "To: <sip:carol@sip.example.com>\r\n"
    "Call-ID: two-contacts\r\n"
    "CSeq: 3 REGISTER\r\n"
    "Contact: <sip:carol@10.0.0.7:5060>;expires=60\r\n"
    "Contact: <sip:carol@10.0.0.8:5060>;expires=30\r\n"
    "User-Agent: softphone/1.0\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

ONE_CONTACT_LINE = TWO_CONTACT_LINES.replace(
    "Contact: <sip:carol@10.0.0.8:5060>;expires=30\r\n", ""
)


@pytest.fixture
def empty_line_cache() -> Iterator[dict[tuple[str, ...], bytes]]:
    to_proto._CHUNKS.clear()
    yield to_proto._CHUNKS
    to_proto._CHUNKS.clear()


def _cold_bytes(text: str) -> bytes:
    to_proto._CHUNKS.clear()
    return to_sip_message(parse(text)).SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "text", [REGISTER, INVITE, OK_WITH_RECORD_ROUTE, TWO_CONTACT_LINES, ONE_CONTACT_LINE]
)
def test_a_message_seen_again_gives_the_same_protobuf(
    text: str, empty_line_cache: dict[tuple[str, ...], bytes]
) -> None:
    cold = _cold_bytes(text)
    assert empty_line_cache, "nothing was cached"
    warm = to_sip_message(parse(text)).SerializeToString(deterministic=True)
    assert warm == cold


def test_lines_cached_from_other_messages_give_the_same_protobuf(
    empty_line_cache: dict[tuple[str, ...], bytes],
) -> None:
    expected = {text: _cold_bytes(text) for text in (TWO_CONTACT_LINES, ONE_CONTACT_LINE)}
    # Each message after the other one filled the cache with lines it shares.
    for first, second in [
        (ONE_CONTACT_LINE, TWO_CONTACT_LINES),
        (TWO_CONTACT_LINES, ONE_CONTACT_LINE),
    ]:
        empty_line_cache.clear()
        to_sip_message(parse(first))
        assert (
            to_sip_message(parse(second)).SerializeToString(deterministic=True)
            == (expected[second])
        )
    message = to_sip_message(parse(TWO_CONTACT_LINES))
    assert message.contact.address.uri.host == "10.0.0.7"
    assert ("Contact", "<sip:carol@10.0.0.8:5060>;expires=30") in ext(message)


def test_the_same_text_under_another_header_is_not_confused(
    empty_line_cache: dict[tuple[str, ...], bytes],
) -> None:
    value = "<sip:carol@sip.example.com>;tag=c1"
    swapped = ONE_CONTACT_LINE.replace(
        "From: <sip:carol@sip.example.com>;tag=c1\r\nTo: <sip:carol@sip.example.com>\r\n",
        f"From: <sip:carol@sip.example.com>\r\nTo: {value}\r\nX-Copy: {value}\r\n",
    )
    to_sip_message(parse(ONE_CONTACT_LINE))
    message = to_sip_message(parse(swapped))
    assert getattr(message, "from").tag == ""
    assert message.to.tag == "c1"
    assert ("X-Copy", value) in ext(message)


def test_the_line_cache_stays_bounded(empty_line_cache: dict[tuple[str, ...], bytes]) -> None:
    long_value = "y" * (to_proto._CHUNK_TEXT_MAX + 1)
    message = to_sip_message(parse(REGISTER.replace("keep me", long_value)))
    assert ("x-Custom-Header", long_value) in ext(message)
    assert all(item[-1] != long_value for item in empty_line_cache)
    for index in range(to_proto._CHUNKS_MAX + 10):
        to_sip_message(parse(REGISTER.replace("keep me", f"value {index}")))
        assert len(empty_line_cache) <= to_proto._CHUNKS_MAX
    message = to_sip_message(parse(REGISTER.replace("keep me", "value 3")))
    assert ("x-Custom-Header", "value 3") in ext(message)


OK_WITH_VIAS_ON_ONE_LINE = (
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKedge2, "
    "SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKinv2;rport=51000\r\n"
    "Via: SIP/2.0/UDP 10.0.0.8:5070;branch=z9hG4bKinv3;maddr=239.1.1.1;ttl=16\r\n"
    "From: <sip:bob@sip.example.com>;tag=b1\r\n"
    "To: <sip:+15551234@sip.example.com>;tag=t9\r\n"
    "Call-ID: inv-2@10.0.0.7\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


@pytest.mark.parametrize("text", [OK_WITH_RECORD_ROUTE, OK_WITH_VIAS_ON_ONE_LINE])
def test_a_response_converted_again_keeps_every_via_in_order(
    text: str, empty_line_cache: dict[tuple[str, ...], bytes]
) -> None:
    cold = _cold_bytes(text)
    warm_message = to_sip_message(parse(text))
    assert warm_message.SerializeToString(deterministic=True) == cold
    hosts = [(via.host, via.branch) for via in warm_message.via]
    response = parse(text)
    assert hosts == [(via.host, via.branch or "") for via in response.via]
    # The same lower Vias under another top Via (the next response of the transaction).
    retopped = text.replace(
        "198.51.100.1:5060;branch=z9hG4bKedge", "198.51.100.2:5060;branch=z9hG4bKnew"
    )
    again = to_sip_message(parse(retopped))
    assert again.via[0].host == "198.51.100.2"
    assert [(via.host, via.branch) for via in again.via][1:] == hosts[1:]


def test_a_response_with_a_broken_lower_via_is_a_conversion_error_cold_and_warm(
    empty_line_cache: dict[tuple[str, ...], bytes],
) -> None:
    broken = OK_WITH_RECORD_ROUTE.replace(
        "Via: SIP/2.0/TCP 10.0.0.7;branch", "Via: SIP/2.0/TCP 10.0.0.7:99999;branch"
    )
    for _ in range(2):
        with pytest.raises(ConversionError):
            to_sip_message(parse(broken))
        to_sip_message(parse(OK_WITH_RECORD_ROUTE))
