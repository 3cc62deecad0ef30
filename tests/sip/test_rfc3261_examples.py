"""The RFC 3261 §24 example flows, written out as literal text, parsed and re-serialised."""

from __future__ import annotations

from edgeport.sip import OpaqueUri, Request, Response, SipUri, parse_message

# RFC 3261 §24.2, F1: Alice's INVITE to atlanta.com proxy.
INVITE_F1 = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 151\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

# F4: the INVITE after the atlanta proxy: two Vias, a Record-Route.
INVITE_F4 = (
    b"INVITE sip:bob@client.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# F8-like: Bob's 200 OK travelling back, with the proxy's Record-Route.
OK_F8 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP ss1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.111\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"Record-Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:bob@client.biloxi.example.com;transport=tcp>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# F11: the ACK goes along the route set.
ACK_F11 = (
    b"ACK sip:bob@client.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74b76\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 ACK\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# F14: Bob hangs up.
BYE_F14 = (
    b"BYE sip:alice@client.atlanta.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:ss1.atlanta.example.com;lr>\r\n"
    b"From: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n"
    b"To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 3261 §24.1 style REGISTER with a 200 listing the binding.
REGISTER = (
    b"REGISTER sips:ss2.biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
    b"To: Bob <sips:bob@biloxi.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sips:bob@client.biloxi.example.com>\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_invite_f1_fields() -> None:
    msg = parse_message(INVITE_F1)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri == SipUri("sip", "bob", None, "biloxi.example.com")
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP",
        "client.atlanta.example.com",
        5060,
        "z9hG4bK74bf9",
    )
    assert msg.max_forwards == 70
    assert msg.from_.display_name == "Alice"
    assert msg.from_.tag == "9fxced76sl"
    assert msg.to.tag is None
    assert msg.call_id == "3848276298220188511@atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "INVITE")
    [contact] = msg.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.transport == "tcp"
    assert msg.content_type == "application/sdp"
    assert msg.body.startswith(b"v=0\r\n")
    assert msg.body.endswith(b"a=rtpmap:0 PCMU/8000\r\n")
    assert len(msg.body) == 151


def test_invite_f4_vias_and_record_route() -> None:
    msg = parse_message(INVITE_F4)
    assert [v.branch for v in msg.via] == ["z9hG4bK2d4790.1", "z9hG4bK74bf9"]
    assert msg.via[1].received == "192.0.2.101"
    [rr] = msg.record_routes
    assert isinstance(rr.uri, SipUri)
    assert rr.uri.lr
    assert rr.uri.host == "ss1.atlanta.example.com"
    assert msg.routes == []


def test_ok_f8_fields() -> None:
    msg = parse_message(OK_F8)
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason) == (200, "OK")
    assert msg.to.tag == "314159"
    assert len(msg.via) == 2
    assert msg.cseq.method == "INVITE"
    assert msg.body == b""


def test_ack_and_bye_carry_routes() -> None:
    ack = parse_message(ACK_F11)
    bye = parse_message(BYE_F14)
    assert isinstance(ack, Request)
    assert isinstance(bye, Request)
    assert ack.cseq.method == "ACK"
    assert bye.cseq.method == "BYE"
    assert [str(r.uri) for r in bye.routes] == ["sip:ss1.atlanta.example.com;lr"]
    assert bye.from_.tag == "314159"
    assert bye.to.tag == "9fxced76sl"


def test_register_sips() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.secure
    assert msg.top_via.transport == "TLS"
    assert msg.expires == 7200
    assert not isinstance(msg.contacts[0].uri, OpaqueUri)


def test_canonical_examples_round_trip_byte_exact() -> None:
    # These are written with canonical names and a display name that is a
    # single token, so only the From/To display-name quoting could change;
    # the raw header values are kept, so the bytes come back unchanged.
    for raw in (INVITE_F1, INVITE_F4, OK_F8, ACK_F11, BYE_F14, REGISTER):
        assert parse_message(raw).to_bytes() == raw
