"""Headers, typed-view caching, serialisation and make_response (RFC 3261 §7, §8.2.6)."""

from __future__ import annotations

import pytest

from edgeport.sip import (
    REASON_PHRASES,
    Headers,
    Request,
    Response,
    SipParseError,
    SipSerializeError,
    SipUri,
    Via,
    make_response,
    parse_message,
    parse_uri,
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1;rport,"
    b" SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKm0\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: Alice <sip:alice@example.com>;tag=a1\r\n"
    b"t: <sip:bob@example.com>\r\n"
    b"i: m1@10.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


# --- Headers -------------------------------------------------------------------


def test_headers_lookup_is_case_insensitive_and_folds_compact_forms() -> None:
    headers = Headers(
        [("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("VIA", "SIP/2.0/UDP b"), ("x-a", "1")]
    )
    assert headers.get("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert headers.get_all("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b"]
    assert "V" in headers
    assert "X-A" in headers
    assert "Route" not in headers
    assert headers.get("Route") is None
    assert headers.get_all("Route") == []
    assert list(headers) == [
        ("v", "SIP/2.0/UDP a;branch=z9hG4bK1"),
        ("VIA", "SIP/2.0/UDP b"),
        ("x-a", "1"),
    ]
    assert next(iter(headers.canonical_items())) == ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1")
    assert len(headers) == 3


def test_headers_add_prepend_set_remove() -> None:
    headers = Headers([("A", "1"), ("Route", "<sip:r1;lr>"), ("B", "2"), ("Route", "<sip:r2;lr>")])
    headers.prepend("route", "<sip:r0;lr>")
    assert list(headers)[1] == ("route", "<sip:r0;lr>")
    headers.prepend("Record-Route", "<sip:rr;lr>")
    assert next(iter(headers)) == ("Record-Route", "<sip:rr;lr>")
    headers.add("Route", "<sip:r3;lr>")
    assert headers.get_all("Route") == ["<sip:r0;lr>", "<sip:r1;lr>", "<sip:r2;lr>", "<sip:r3;lr>"]
    headers.set("ROUTE", "<sip:only;lr>")
    assert list(headers) == [
        ("Record-Route", "<sip:rr;lr>"),
        ("A", "1"),
        ("ROUTE", "<sip:only;lr>"),
        ("B", "2"),
    ]
    headers.set("C", "3")
    assert list(headers)[-1] == ("C", "3")
    headers.remove("a")
    headers.remove("Missing")
    assert [name for name, _ in headers] == ["Record-Route", "ROUTE", "B", "C"]


def test_headers_copy_is_independent() -> None:
    headers = Headers([("A", "1")])
    copy = headers.copy()
    copy.add("B", "2")
    assert list(headers) == [("A", "1")]
    assert copy == Headers([("A", "1"), ("B", "2")])
    assert headers != copy


# --- typed views and their cache ----------------------------------------------


def test_typed_views() -> None:
    msg = invite()
    assert [v.branch for v in msg.via] == ["z9hG4bKm1", "z9hG4bKm0"]
    assert msg.via[0] is msg.top_via
    assert msg.top_via.has_rport
    assert msg.from_.display_name == "Alice"
    assert msg.to.tag is None
    assert msg.call_id == "m1@10.0.0.1"
    assert msg.cseq.seq == 1
    assert msg.max_forwards == 70
    assert msg.expires is None
    assert msg.content_length == 4
    assert msg.content_type == "application/sdp"
    assert msg.routes == []
    assert msg.authorization is None
    assert msg.www_authenticate is None


def test_views_are_cached() -> None:
    msg = invite()
    assert msg.contacts is msg.contacts
    assert msg.from_ is msg.from_


def test_cache_is_dropped_when_headers_change() -> None:
    msg = invite()
    before = msg.contacts
    msg.headers.set("Contact", "<sip:other@10.0.0.2>")
    after = msg.contacts
    assert after is not before
    assert isinstance(after[0].uri, SipUri)
    assert after[0].uri.host == "10.0.0.2"
    msg.headers.add("Route", "<sip:edge.example.com;lr>")
    assert [str(r.uri) for r in msg.routes] == ["sip:edge.example.com;lr"]
    msg.headers.remove("Max-Forwards")
    assert msg.max_forwards is None
    msg.headers = Headers([("Expires", "30")])
    assert msg.expires == 30


def test_lazy_view_errors_are_parse_errors() -> None:
    msg = invite()
    msg.headers.set("Expires", "soon")
    with pytest.raises(SipParseError, match="Expires"):
        _ = msg.expires
    msg.headers.set("Contact", "<sip:broken")
    with pytest.raises(SipParseError):
        _ = msg.contacts
    msg.headers.remove("Call-ID")
    with pytest.raises(SipParseError, match="Missing Call-ID"):
        _ = msg.call_id


def test_auth_views() -> None:
    msg = invite()
    msg.headers.add("Proxy-Authorization", 'Digest username="a", realm="r", nonce="n", uri="sip:x"')
    msg.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n2"')
    msg.headers.add("Proxy-Authenticate", 'Digest realm="p", nonce="n3", stale=true')
    msg.headers.add("Authorization", 'Digest username="b"')
    assert msg.proxy_authorization is not None
    assert msg.proxy_authorization.username == "a"
    assert msg.authorization is not None
    assert msg.authorization.username == "b"
    assert msg.www_authenticate is not None
    assert msg.www_authenticate.nonce == "n2"
    assert msg.proxy_authenticate is not None
    assert msg.proxy_authenticate.stale


def test_set_top_via_rewrites_only_the_first_value() -> None:
    msg = invite()
    via = msg.top_via
    stamped = Via(via.transport, via.host, via.port, dict(via.params))
    stamped.params["rport"] = "40000"
    stamped.params["received"] = "203.0.113.5"
    msg.set_top_via(stamped)
    assert msg.top_via.rport == 40000
    assert msg.top_via.received == "203.0.113.5"
    assert [v.branch for v in msg.via] == ["z9hG4bKm1", "z9hG4bKm0"]
    wire = msg.to_bytes()
    assert (
        b"\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1;rport=40000;received=203.0.113.5,"
        b" SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKm0\r\n"
    ) in wire


# --- serialisation -------------------------------------------------------------


def test_to_bytes_uses_canonical_names_and_recomputes_content_length() -> None:
    msg = invite()
    msg.body = b"v=0\r\ns=-\r\n"
    wire = msg.to_bytes()
    assert wire.startswith(b"INVITE sip:bob@example.com SIP/2.0\r\nVia: ")
    assert b"\r\nFrom: Alice <sip:alice@example.com>;tag=a1\r\n" in wire
    assert b"\r\nCall-ID: m1@10.0.0.1\r\n" in wire
    assert b"\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n" in wire
    assert wire.count(b"Content-Length") == 1


def test_to_bytes_adds_content_length_when_missing() -> None:
    response = Response(200, "OK", Headers([("Call-ID", "x")]), b"abc")
    assert response.to_bytes() == b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc"


def test_to_bytes_keeps_unknown_names_as_given_and_drops_duplicate_lengths() -> None:
    request = Request(
        "OPTIONS",
        parse_uri("sip:example.com"),
        Headers([("x-Odd-Name", "1"), ("l", "99"), ("Content-Length", "7")]),
    )
    assert request.to_bytes() == (
        b"OPTIONS sip:example.com SIP/2.0\r\nx-Odd-Name: 1\r\nContent-Length: 0\r\n\r\n"
    )


@pytest.mark.parametrize(
    "value", ["a\r\nVia: SIP/2.0/UDP evil", "a\nb", "a\rb", "\r\n", "x\r\n\r\nINVITE"]
)
def test_to_bytes_refuses_line_breaks_in_values(value: str) -> None:
    msg = invite()
    msg.headers.add("X-Injected", value)
    with pytest.raises(SipSerializeError):
        msg.to_bytes()
    with pytest.raises(ValueError, match="CR or LF"):
        msg.to_bytes()


def test_to_bytes_refuses_line_breaks_elsewhere() -> None:
    msg = invite()
    msg.headers.add("X-Evil\r\nVia", "x")
    with pytest.raises(SipSerializeError):
        msg.to_bytes()
    bad_name = invite()
    bad_name.headers.add("Bad: Name", "x")
    with pytest.raises(SipSerializeError):
        bad_name.to_bytes()
    response = Response(200, "OK\r\nX-Evil: 1", invite().headers)
    with pytest.raises(SipSerializeError):
        response.to_bytes()
    request = Request("OPTIONS", SipUri(host="example.com", params={"x": "a\r\nb"}))
    with pytest.raises(SipSerializeError):
        request.to_bytes()


def test_non_ascii_values_are_utf8() -> None:
    msg = invite()
    msg.headers.set("Subject", "caf\u00e9")
    assert "Subject: café\r\n".encode() in msg.to_bytes()


# --- make_response -------------------------------------------------------------


def test_make_response_copies_dialog_headers_in_order() -> None:
    request = invite()
    response = make_response(request, 486)
    assert (response.status_code, response.reason) == (486, "Busy Here")
    assert [name for name, _ in response.headers] == ["v", "f", "t", "i", "CSeq"]
    assert response.body == b""
    assert response.to_bytes() == (
        b"SIP/2.0 486 Busy Here\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1;rport,"
        b" SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKm0\r\n"
        b"From: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: m1@10.0.0.1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_make_response_adds_to_tag_once() -> None:
    request = invite()
    response = make_response(request, 200, "Fine", to_tag="srv1")
    assert response.reason == "Fine"
    assert response.to.tag == "srv1"
    assert request.to.tag is None
    request.headers.set("To", "<sip:bob@example.com>;tag=existing")
    assert make_response(request, 200, to_tag="srv2").to.tag == "existing"


def test_make_response_100_copies_timestamp() -> None:
    request = invite()
    assert make_response(request, 100).headers.get("Timestamp") == "54"
    assert make_response(request, 180).headers.get("Timestamp") is None


def test_make_response_reason_defaults() -> None:
    request = invite()
    assert make_response(request, 199).reason == REASON_PHRASES[199]
    assert make_response(request, 499).reason == "Unknown"
    with pytest.raises(ValueError, match="out of range"):
        make_response(request, 99)


def test_reason_phrases_cover_rfc3261() -> None:
    for code in (100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404):
        assert code in REASON_PHRASES
    for code in (405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480, 481, 482, 483):
        assert code in REASON_PHRASES
    for code in (484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505, 513, 600, 603):
        assert code in REASON_PHRASES
    assert REASON_PHRASES[481] == "Call/Transaction Does Not Exist"
    assert REASON_PHRASES[606] == "Not Acceptable"


def test_response_parses_back() -> None:
    response = make_response(invite(), 407)
    response.headers.add("Proxy-Authenticate", 'Digest realm="example.com", nonce="abc"')
    again = parse_message(response.to_bytes())
    assert isinstance(again, Response)
    assert again.status_code == 407
    assert again.proxy_authenticate is not None
    assert again.proxy_authenticate.realm == "example.com"


def test_top_via_after_via_list_is_the_same_object() -> None:
    msg = invite()
    msg.headers.add("X-Touch", "1")  # drop the parser's cached views
    vias = msg.via
    assert msg.top_via is vias[0]


def test_views_are_copies_not_live() -> None:
    msg = invite()
    msg.top_via.params["received"] = "192.0.2.99"
    assert b"received=192.0.2.99" not in msg.to_bytes()
    msg.set_top_via(msg.top_via)
    assert b"received=192.0.2.99" in msg.to_bytes()


def test_replace_first_of_a_missing_header() -> None:
    with pytest.raises(KeyError):
        Headers().replace_first("Via", "x")
    with pytest.raises(SipParseError, match="Missing Via"):
        Request("OPTIONS", parse_uri("sip:x")).set_top_via(Via("UDP", "h"))


def test_set_top_via_keeps_the_other_views_and_matches_a_fresh_parse() -> None:
    msg = invite()
    from_view, cseq_view = msg.from_, msg.cseq
    assert len(msg.via) == 2
    stamped = Via(msg.top_via.transport, msg.top_via.host, msg.top_via.port, {"branch": "z9hG4bKs"})
    msg.set_top_via(stamped)
    assert msg.from_ is from_view  # not parsed again
    assert msg.cseq is cseq_view
    stamped.params["branch"] = "z9hG4bKchanged"  # the message kept a copy
    assert msg.top_via.branch == "z9hG4bKs"
    assert msg.headers.get_all("via")[0].startswith("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKs,")
    reparsed = parse_message(msg.to_bytes())
    assert [str(v) for v in msg.via] == [str(v) for v in reparsed.via]
    assert msg.top_via == reparsed.top_via


def test_a_response_reads_cseq_and_call_id_like_its_request() -> None:
    request = invite()
    response = make_response(request, 486, to_tag="t9")
    assert response.cseq == request.cseq
    assert response.call_id == "m1@10.0.0.1"
    assert parse_message(response.to_bytes()).cseq == request.cseq


def test_dropped_views_are_parsed_again_the_same() -> None:
    msg = invite()
    before = (msg.top_via, msg.via, msg.from_, msg.to, msg.cseq, msg.call_id, msg.contacts)
    assert msg.headers.get("CSeq") == "1 INVITE"
    msg.drop_views()
    assert msg.from_ is not before[2]  # parsed anew, not kept
    assert (msg.top_via, msg.via, msg.from_, msg.to, msg.cseq, msg.call_id, msg.contacts) == before
    assert msg.headers.get("cseq") == "1 INVITE"
    assert msg.headers.get_all("Via") == [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKm0"
    ]
