"""Processor replies -> SIP text on the wire (contract §4), checked byte for byte."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert import (
    NextHop,
    ReplyError,
    build_answer,
    build_forward_request,
    build_forward_response,
    next_hop,
    to_sip_message,
)
from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.sip.transport import Transport

RT = sipmessage_pb2.ResponseType

REGISTER = (
    "REGISTER sip:sip.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=40123;received=203.0.113.9\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice" <sip:alice@sip.example.com>;tag=f1;x-mark\r\n'
    "To: <sip:alice@sip.example.com>\r\n"
    "Call-ID: reg-1@192.168.1.20\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:alice@192.168.1.20:5062;transport=udp;ob>"
    ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=600\r\n'
    "Expires: 3600\r\n"
    'Authorization: Digest username="alice", realm="sip.example.com", nonce="n1", '
    'uri="sip:sip.example.com", response="0123abcd", algorithm=MD5\r\n'
    "User-Agent: softphone/1.0\r\n"
    "x-Custom-Header: keep me\r\n"
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
    "Server: gw/2\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def parse_request(text: str | bytes) -> Request:
    msg = parse_message(text.encode() if isinstance(text, str) else text)
    assert isinstance(msg, Request)
    return msg


def parse_response(text: str) -> Response:
    msg = parse_message(text.encode())
    assert isinstance(msg, Response)
    return msg


def echo(msg: Request | Response) -> processor_pb2.MessageResponse:
    """What a processor that changes nothing sends back, through the wire."""
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(msg))
    return wire(reply)


def wire(reply: processor_pb2.MessageResponse) -> processor_pb2.MessageResponse:
    return processor_pb2.MessageResponse.FromString(reply.SerializeToString())


def fixed_branch() -> str:
    return "z9hG4bKfixed"


def lines(data: bytes) -> list[str]:
    return data.decode().split("\r\n")


def test_unchanged_invite_is_forwarded_with_canonical_names() -> None:
    original = parse_request(INVITE)
    forwarded = build_forward_request(echo(original), original, branch_factory=fixed_branch)
    assert forwarded.gateway_auth is None
    assert forwarded.request.to_bytes() == (
        b"INVITE sip:+15551234@sip.example.com:5080;transport=tcp;user=phone SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKinv1;rport\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.8:5070;branch=z9hG4bKinv0;ttl=16;maddr=239.1.1.1\r\n"
        b"Max-Forwards: 69\r\n"
        b"From: <sip:bob@sip.example.com>;tag=b1\r\n"
        b"To: <sip:+15551234@sip.example.com>\r\n"
        b"Call-ID: inv-1@10.0.0.7\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:bob@10.0.0.7;transport=tcp>\r\n"
        b"Supported: timer\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 35\r\n"
        b"\r\n"
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.7\r\ns=-\r\n"
    )
    assert next_hop(forwarded.request) == NextHop("sip.example.com", 5080, Transport.TCP)


def test_sent_message_gives_the_same_bytes() -> None:
    original = parse_request(INVITE)
    sent = to_sip_message(original)
    reply = echo(original)
    reply.message.via.add(host="10.0.0.1")
    without = build_forward_request(reply, original, branch_factory=fixed_branch)
    with_sent = build_forward_request(reply, original, branch_factory=fixed_branch, sent=sent)
    assert with_sent.request.to_bytes() == without.request.to_bytes()
    response = parse_response(OK_WITH_RECORD_ROUTE)
    reply = echo(response)
    del reply.message.via[0]
    assert (
        build_forward_response(reply, response, sent=to_sip_message(response)).to_bytes()
        == build_forward_response(reply, response).to_bytes()
    )


def test_unchanged_values_keep_their_text_as_received() -> None:
    original = parse_request(
        INVITE.replace(
            "f: <sip:bob@sip.example.com>;tag=b1", "f: Bob   <sip:bob@sip.example.com> ; tag=b1"
        )
    )
    text = lines(
        build_forward_request(
            echo(original), original, branch_factory=fixed_branch
        ).request.to_bytes()
    )
    assert "From: Bob   <sip:bob@sip.example.com> ; tag=b1" in text


def routr_register_reply(original: Request) -> processor_pb2.MessageResponse:
    """The changes a Routr processor makes to a REGISTER it forwards to a peer."""
    reply = echo(original)
    message = reply.message
    old_vias = list(message.via)
    del message.via[:]
    message.via.add(host="198.51.100.1", port=5060, transport="UDP", r_port_flag=True)
    message.via.extend(old_vias)
    route = message.route.add()
    route.address.uri.host = "10.0.0.5"
    route.address.uri.port = 5070
    route.address.uri.transport_param = "TCP"
    route.address.uri.lr_param = True
    message.max_forwards.max_forwards -= 1
    message.ClearField("authorization")
    old_extensions = list(message.extensions)
    del message.extensions[:]
    message.extensions.add(name="X-EdgePort-Ref", value="ep-1")
    message.extensions.extend(old_extensions)
    message.extensions.add(name="X-Gateway-Auth", value="YWxpY2U6c2VjcmV0")
    return wire(reply)


def test_forwarded_register_as_a_routr_processor_changes_it() -> None:
    original = parse_request(REGISTER)
    forwarded = build_forward_request(
        routr_register_reply(original), original, branch_factory=fixed_branch
    )
    assert forwarded.gateway_auth == "YWxpY2U6c2VjcmV0"
    assert lines(forwarded.request.to_bytes()) == [
        "REGISTER sip:sip.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKfixed;rport",
        "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=40123;received=203.0.113.9",
        "Route: <sip:10.0.0.5:5070;transport=tcp;lr>",
        "Max-Forwards: 69",
        'From: "Alice" <sip:alice@sip.example.com>;tag=f1;x-mark',
        "To: <sip:alice@sip.example.com>",
        "Call-ID: reg-1@192.168.1.20",
        "CSeq: 2 REGISTER",
        # Unchanged, so every parameter the protobuf cannot hold is still there.
        "Contact: <sip:alice@192.168.1.20:5062;transport=udp;ob>"
        ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=600',
        "Expires: 3600",
        "X-EdgePort-Ref: ep-1",
        "User-Agent: softphone/1.0",
        "x-Custom-Header: keep me",
        "Content-Length: 0",
        "",
        "",
    ]
    assert next_hop(forwarded.request) == NextHop("10.0.0.5", 5070, Transport.TCP)


def test_changed_values_are_written_from_their_fields() -> None:
    original = parse_request(REGISTER)
    reply = echo(original)
    message = reply.message
    contact_uri = message.contact.address.uri
    contact_uri.host = "203.0.113.9"
    contact_uri.port = 40123
    message.contact.q_value = 0.7
    message.request_uri.user = "carol"
    message.request_uri.port = 5090
    message.request_uri.secure = True
    getattr(message, "from").address.display_name = 'Al "the" \\ ice'
    message.to.tag = "newtag"
    message.authorization.nonce_count = 2
    message.authorization.qop = "auth"
    message.authorization.c_nonce = "cn"
    message.record_route.add(parameters={"r2": "on"}).address.uri.host = "10.9.9.9"
    request = build_forward_request(wire(reply), original, branch_factory=fixed_branch).request
    text = lines(request.to_bytes())
    assert text[0] == "REGISTER sips:carol@sip.example.com:5090 SIP/2.0"
    assert "Record-Route: <sip:10.9.9.9>;r2=on" in text
    assert 'From: "Al \\"the\\" \\\\ ice" <sip:alice@sip.example.com>;x-mark;tag=f1' in text
    assert "To: <sip:alice@sip.example.com>;tag=newtag" in text
    assert "Contact: <sip:alice@203.0.113.9:40123;transport=udp>;expires=600;q=0.7" in text
    assert (
        'Authorization: Digest username="alice", realm="sip.example.com", nonce="n1", '
        'uri="sip:sip.example.com", response="0123abcd", algorithm=MD5, cnonce="cn", '
        "qop=auth, nc=00000002"
    ) in text
    assert next_hop(request) == NextHop("sip.example.com", 5090, Transport.TLS)


def test_processor_built_via_and_ipv6() -> None:
    original = parse_request(INVITE)
    reply = echo(original)
    top = sipmessage_pb2.Via(
        host="2001:db8::1", port=5060, transport="tcp", r_port=5070, received="2001:db8::9"
    )
    vias = [top, *reply.message.via]
    del reply.message.via[:]
    reply.message.via.extend(vias)
    reply.message.request_uri.host = "2001:db8::5"
    reply.message.request_uri.transport_param = ""
    reply.message.request_uri.port = -1
    request = build_forward_request(wire(reply), original, branch_factory=fixed_branch).request
    text = lines(request.to_bytes())
    assert text[0] == "INVITE sip:+15551234@[2001:db8::5];user=phone SIP/2.0"
    assert text[1] == (
        "Via: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKfixed;rport=5070;received=2001:db8::9"
    )
    assert next_hop(request) == NextHop("2001:db8::5", 5060, Transport.UDP)


def test_missing_max_forwards_is_added_and_tel_uri_kept() -> None:
    original = parse_request(
        INVITE.replace(
            "sip:+15551234@sip.example.com:5080;transport=tcp;user=phone", "tel:+1555"
        ).replace("Max-Forwards: 69\r\n", "")
    )
    reply = echo(original)
    assert reply.message.request_uri.user == "+1555"
    request = build_forward_request(reply, original, branch_factory=fixed_branch).request
    text = lines(request.to_bytes())
    assert text[0] == "INVITE tel:+1555 SIP/2.0"
    assert text[3] == "Max-Forwards: 70"
    with pytest.raises(ReplyError, match="tel"):
        next_hop(request)


def test_non_utf8_body_is_forwarded_byte_exact() -> None:
    body = b"\xff\xfe\x00binary"
    original = parse_request(
        b"MESSAGE sip:b@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:a@example.com>;tag=1\r\n"
        b"To: <sip:b@example.com>\r\n"
        b"Call-ID: m1\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Length: 9\r\n"
        b"\r\n" + body
    )
    reply = echo(original)
    assert reply.message.body == ""
    data = build_forward_request(reply, original, branch_factory=fixed_branch).request.to_bytes()
    assert data.endswith(
        b"Content-Type: application/octet-stream\r\nContent-Length: 9\r\n\r\n" + body
    )


def test_reply_body_replaces_the_original() -> None:
    original = parse_request(INVITE)
    reply = echo(original)
    reply.message.body = "v=1\r\n"
    data = build_forward_request(reply, original, branch_factory=fixed_branch).request.to_bytes()
    assert data.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=1\r\n")


def _record_route_with_param(value: str) -> Callable[[sipmessage_pb2.SIPMessage], None]:
    def change(message: sipmessage_pb2.SIPMessage) -> None:
        route = message.record_route.add(parameters={"x": value})
        route.address.uri.host = "10.0.0.9"

    return change


def test_quoted_parameter_values_pass() -> None:
    original = parse_request(INVITE)
    reply = echo(original)
    _record_route_with_param('"a;b, c"')(reply.message)
    request = build_forward_request(reply, original, branch_factory=fixed_branch).request
    assert 'Record-Route: <sip:10.0.0.9>;x="a;b, c"' in lines(request.to_bytes())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.extensions.add(name="X-Evil", value="a\r\nVia: x"), "CR, LF"),
        (lambda m: m.extensions.add(name="Bad Name", value="a"), "header name"),
        (lambda m: setattr(m.to.address, "display_name", "a\nb"), "CR, LF"),
        (lambda m: setattr(m.request_uri, "user", "a b"), "user part"),
        (lambda m: setattr(m.request_uri, "user", "a@b"), "user part"),
        (lambda m: setattr(m.request_uri, "host", "h;lr"), "host"),
        (lambda m: setattr(m.via[0], "branch", "z9hG4bK1,SIP/2.0/UDP evil"), "branch"),
        (lambda m: setattr(m.to, "tag", "t;x=1"), "tag"),
        (_record_route_with_param("a;b"), "parameter value"),
        (lambda m: setattr(m.request_uri, "host", ""), "no host"),
        (lambda m: setattr(m.via[0], "received", "1.2.3.4\r\n"), "Via"),
        (lambda m: m.to.parameters.__setitem__("x", "1\n"), "not a token"),
        (lambda m: setattr(m.call_id, "call_id", "a\rb"), "CR, LF"),
        (lambda m: setattr(m.max_forwards, "max_forwards", -1), "Max-Forwards"),
        (lambda m: m.ClearField("via"), "Via"),
        (lambda m: m.ClearField("extensions"), "CSeq"),
    ],
)
def test_reply_values_that_cannot_go_on_the_wire(change: object, match: str) -> None:
    original = parse_request(INVITE)
    reply = echo(original)
    change(reply.message)  # type: ignore[operator]
    with pytest.raises(ReplyError, match=match):
        build_forward_request(reply, original, branch_factory=fixed_branch)


@pytest.mark.parametrize(
    ("extensions", "match"),
    [
        ([("X-Evil", "a\r\nVia: x"), ("Bad Name", "a")], "^X-Evil holds CR, LF or NUL$"),
        ([("Bad Name", "a"), ("X-Evil", "a\r\nVia: x")], "^invalid header name 'Bad Name'$"),
        ([("X-Ok", "1"), ("X-Nul", "a\x00b"), ("X-Lf", "\n")], "^X-Nul holds CR, LF or NUL$"),
    ],
)
def test_the_first_bad_extension_of_a_reply_is_the_one_reported(
    extensions: list[tuple[str, str]], match: str
) -> None:
    original = parse_request(INVITE)
    reply = echo(original)
    for name, value in extensions:
        reply.message.extensions.add(name=name, value=value)
    with pytest.raises(ReplyError, match=match):
        build_forward_request(reply, original, branch_factory=fixed_branch)


def test_forward_request_needs_request_uri() -> None:
    original = parse_request(INVITE)
    reply = processor_pb2.MessageResponse()
    reply.message.response_type = RT.OK
    with pytest.raises(ReplyError, match="request_uri"):
        build_forward_request(reply, original, branch_factory=fixed_branch)


def answer_reply(response_type: int, **fields: object) -> processor_pb2.MessageResponse:
    reply = processor_pb2.MessageResponse()
    reply.message.response_type = response_type  # type: ignore[assignment]
    for name, value in fields.items():
        setattr(reply.message, name, value)
    return reply


def test_answer_401_with_challenge() -> None:
    request = parse_request(REGISTER)
    reply = answer_reply(RT.UNAUTHORIZED)
    www = reply.message.www_authenticate
    www.scheme = "Digest"
    www.realm = "sip.example.com"
    www.nonce = "n2"
    www.algorithm = "MD5"
    www.qop = "auth"
    response = build_answer(wire(reply), request, to_tag="tt")
    assert response.to_bytes() == (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=40123;"
        b"received=203.0.113.9\r\n"
        b'From: "Alice" <sip:alice@sip.example.com>;tag=f1;x-mark\r\n'
        b"To: <sip:alice@sip.example.com>;tag=tt\r\n"
        b"Call-ID: reg-1@192.168.1.20\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b'WWW-Authenticate: Digest realm="sip.example.com", nonce="n2", '
        b'algorithm=MD5, qop="auth"\r\n'
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_answer_register_ok_echoes_contact_and_extensions() -> None:
    request = parse_request(REGISTER)
    request_message = to_sip_message(request)
    reply = answer_reply(RT.OK)
    reply.message.contact.CopyFrom(request_message.contact)
    reply.message.extensions.add(name="X-Edge", value="1")
    # A processor that echoes the whole request: its CSeq and Via must not be doubled.
    reply.message.extensions.add(name="CSeq", value="9 REGISTER")
    reply.message.via.add(host="evil.example.com")
    response = build_answer(wire(reply), request, to_tag="tt")
    assert lines(response.to_bytes()) == [
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKreg1;rport=40123;received=203.0.113.9",
        'From: "Alice" <sip:alice@sip.example.com>;tag=f1;x-mark',
        "To: <sip:alice@sip.example.com>;tag=tt",
        "Call-ID: reg-1@192.168.1.20",
        "CSeq: 2 REGISTER",
        "Contact: <sip:alice@192.168.1.20:5062;transport=udp;ob>"
        ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=600',
        "X-Edge: 1",
        "Content-Length: 0",
        "",
        "",
    ]


def test_answer_status_codes_and_reasons() -> None:
    request = parse_request(INVITE)
    exact = answer_reply(RT.CLIENT_ERROR)
    exact.metadata["statusCode"] = "422"
    response = build_answer(exact, request, to_tag="tt")
    assert (response.status_code, response.reason) == (422, "Session Interval Too Small")
    response = build_answer(answer_reply(RT.SERVER_ERROR), request, to_tag="tt")
    assert (response.status_code, response.reason) == (500, "Server Internal Error")
    response = build_answer(
        answer_reply(RT.FORBIDDEN, reason_phrase="Go away"), request, to_tag="t"
    )
    assert (response.status_code, response.reason) == (403, "Go away")
    assert response.to.tag == "t"
    trying = build_answer(answer_reply(RT.TRYING), request, to_tag="tt")
    assert trying.status_code == 100
    assert trying.to.tag is None
    with pytest.raises(ReplyError, match="response_type"):
        build_answer(answer_reply(RT.UNKNOWN), request, to_tag="tt")
    with pytest.raises(ReplyError, match="CR, LF"):
        build_answer(answer_reply(RT.OK, reason_phrase="OK\r\nX: 1"), request, to_tag="tt")


def test_answer_with_body_and_content_type() -> None:
    request = parse_request(INVITE)
    reply = answer_reply(RT.OK, body="v=0\r\n")
    reply.message.extensions.add(name="Content-Type", value="application/sdp")
    data = build_answer(reply, request, to_tag="tt").to_bytes()
    assert data.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")


def test_forward_ok_with_record_route_after_top_via_removed() -> None:
    original = parse_response(OK_WITH_RECORD_ROUTE)
    reply = echo(original)
    del reply.message.via[0]
    response = build_forward_response(wire(reply), original)
    assert response.to_bytes() == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.7;branch=z9hG4bKinv1;rport=51000;received=203.0.113.7\r\n"
        b"Record-Route: <sip:198.51.100.1;lr;r2=on;ftag=b1>\r\n"
        b"Record-Route: <sip:10.1.0.1:5060;transport=tcp;lr>;r2=on\r\n"
        b"Record-Route: <sip:10.1.0.2;lr>\r\n"
        b"From: <sip:bob@sip.example.com>;tag=b1\r\n"
        b"To: <sip:+15551234@sip.example.com>;tag=t9\r\n"
        b"Call-ID: inv-1@10.0.0.7\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:gw@10.1.0.9:5060>\r\n"
        b"Server: gw/2\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_forward_422_keeps_its_code_and_replaces_headers_by_name() -> None:
    original = parse_response(
        "SIP/2.0 422 Session Interval Too Small\r\n"
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKedge\r\n"
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        "From: <sip:a@example.com>;tag=1\r\n"
        "To: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Min-SE: 1800\r\n"
        "Contact: <sip:gw@10.1.0.9>\r\n"
        "Server: gw/2\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    )
    reply = echo(original)
    message = reply.message
    assert message.response_type == RT.CLIENT_ERROR
    del message.via[0]
    message.ClearField("contact")
    message.reason_phrase = "Too Small"
    for extension in message.extensions:
        if extension.name == "Min-SE":
            extension.value = "2000"
    message.extensions.add(name="X-New", value="1")
    response = build_forward_response(wire(reply), original, cseq="7 INVITE")
    assert lines(response.to_bytes()) == [
        "SIP/2.0 422 Too Small",
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1",
        "From: <sip:a@example.com>;tag=1",
        "To: <sip:b@example.com>;tag=2",
        "Call-ID: c1",
        "CSeq: 7 INVITE",
        "Min-SE: 2000",
        "Server: gw/2",
        "X-New: 1",
        "Content-Length: 0",
        "",
        "",
    ]


def test_forward_response_needs_a_via() -> None:
    original = parse_response(OK_WITH_RECORD_ROUTE)
    reply = echo(original)
    reply.message.ClearField("via")
    with pytest.raises(ReplyError, match="Via"):
        build_forward_response(reply, original)


def _with_route(route: str, uri: str = "sip:b@example.com") -> Request:
    return parse_request(
        f"BYE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1\r\n"
        f"{route}"
        "From: <sip:a@example.com>;tag=1\r\n"
        "To: <sip:b@example.com>;tag=2\r\n"
        "Call-ID: c1\r\n"
        "CSeq: 2 BYE\r\n"
        "\r\n"
    )


@pytest.mark.parametrize(
    ("route", "uri", "hop"),
    [
        ("", "sip:b@example.com", NextHop("example.com", 5060, Transport.UDP)),
        ("", "sips:b@example.com", NextHop("example.com", 5061, Transport.TLS)),
        ("", "sip:b@h;transport=TLS", NextHop("h", 5061, Transport.TLS)),
        ("", "sip:b@h:80;transport=ws", NextHop("h", 80, Transport.WS)),
        ("", "sips:b@h;transport=ws", NextHop("h", 5061, Transport.WSS)),
        ("Route: <sip:10.0.0.1:5070;lr>\r\n", "sip:b@h", NextHop("10.0.0.1", 5070, Transport.UDP)),
        ("Route: <sip:10.0.0.1;transport=tcp>\r\n", "sip:b@h", NextHop("h", 5060, Transport.UDP)),
        (
            "Route: <sip:[2001:db8::1];lr;transport=tcp>, <sip:x;lr>\r\n",
            "sip:b@h",
            NextHop("2001:db8::1", 5060, Transport.TCP),
        ),
    ],
)
def test_next_hop(route: str, uri: str, hop: NextHop) -> None:
    assert next_hop(_with_route(route, uri)) == hop


def test_next_hop_refuses_an_unknown_transport() -> None:
    with pytest.raises(ReplyError, match="sctp"):
        next_hop(_with_route("", "sip:b@h;transport=sctp"))


def test_codec_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    sys.path.insert(0, root)
    try:
        from benchmarks import codec
    finally:
        sys.path.remove(root)
    codec.main(iterations=3)
    out = capsys.readouterr().out
    for name in ("codec build: ", "REGISTER", "INVITE+SDP", "200 OK+RR", "INVITE budget"):
        assert name in out


def test_a_processor_via_seen_again_gets_a_fresh_branch() -> None:
    """The text of a processor's Via is kept between messages; its branch is not."""
    original = parse_request(INVITE)
    edge_via = sipmessage_pb2.Via(host="198.51.100.1", port=5060, transport="UDP", r_port_flag=True)
    own_branch = sipmessage_pb2.Via(host="198.51.100.2", port=5070, transport="TCP", branch="b-own")
    seen = []
    for branch in ["z9hG4bKone", "z9hG4bKtwo", "z9hG4bKthree"]:
        for top in (edge_via, own_branch):
            reply = echo(original)
            vias = [top, *reply.message.via]
            del reply.message.via[:]
            reply.message.via.extend(vias)
            request = build_forward_request(
                wire(reply), original, branch_factory=lambda value=branch: value
            ).request
            seen.append(lines(request.to_bytes())[1])
    assert seen == [
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKone;rport",
        "Via: SIP/2.0/TCP 198.51.100.2:5070;branch=b-own",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKtwo;rport",
        "Via: SIP/2.0/TCP 198.51.100.2:5070;branch=b-own",
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKthree;rport",
        "Via: SIP/2.0/TCP 198.51.100.2:5070;branch=b-own",
    ]
