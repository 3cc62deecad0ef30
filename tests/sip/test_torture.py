"""Torture messages in the spirit of RFC 4475: odd but valid ones parse, broken ones are refused.

Every message here is written by hand for these tests.
"""

from __future__ import annotations

import pytest

from edgeport.sip import (
    MAX_MESSAGE_BYTES,
    OpaqueUri,
    Request,
    Response,
    SipParseError,
    SipUri,
    parse_message,
)

BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"


def request(text: str, body: bytes = b"") -> bytes:
    return text.encode("utf-8") + body


# --- valid -------------------------------------------------------------------

WHITESPACE_AND_FOLDING = request(
    "INVITE sip:carol@torture.example.com;oddparam SIP/2.0\r\n"
    "tO :\r\n"
    " sip:carol@torture.example.com ;   tag    = 77aa\r\n"
    'fROM   : "Dan \\"the man\\" \\\\ K" <sip:dan@example.org>\r\n'
    "  ;\r\n"
    "   tag = d4n\r\n"
    "mAx-FoRwArDs: 0042\r\n"
    "Call-ID: folding.1@192.0.2.7\r\n"
    "Content-Length   : " + str(len(BODY)) + "\r\n"
    "cseq: 0007\r\n"
    "\tINVITE\r\n"
    "Via  : SIP  /   2.0\r\n"
    " /UDP\r\n"
    "    192.0.2.7;branch=z9hG4bKfold1\r\n"
    "s :\r\n"
    "X-Strange:   first part\r\n"
    "  second part\r\n"
    "X-Punctuation: ;;,,;;,;\r\n"
    "c: application/sdp\r\n"
    "Route:\r\n"
    " <sip:edge.example.com;lr;unknown=value;novalue>\r\n"
    "v:  SIP  / 2.0  / TCP     relay.example.com   ;\r\n"
    "  branch  =   z9hG4bKr1  ,\r\n"
    " SIP  /    2.0   / UDP  192.0.2.200   ; branch=\r\n"
    " z9hG4bKr2\r\n"
    'm:"Quoted \\"\\"" <sip:dan@example.org> ; flavour =\r\n'
    "      vanilla ;\r\n"
    "  other ; q = 0.5\r\n"
    "\r\n",
    BODY,
)


def test_whitespace_and_folding() -> None:
    msg = parse_message(WHITESPACE_AND_FOLDING)
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.params == {"oddparam": None}
    assert msg.to.tag == "77aa"
    assert str(msg.to.uri) == "sip:carol@torture.example.com"
    assert msg.from_.display_name == 'Dan "the man" \\ K'
    assert msg.from_.tag == "d4n"
    assert msg.max_forwards == 42
    assert (msg.cseq.seq, msg.cseq.method) == (7, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.7", "z9hG4bKfold1"),
        ("TCP", "relay.example.com", "z9hG4bKr1"),
        ("UDP", "192.0.2.200", "z9hG4bKr2"),
    ]
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("x-strange") == "first part second part"
    assert msg.headers.get("X-Punctuation") == ";;,,;;,;"
    assert msg.content_type == "application/sdp"
    [route] = msg.routes
    assert isinstance(route.uri, SipUri)
    assert route.uri.params == {"lr": None, "unknown": "value", "novalue": None}
    [contact] = msg.contacts
    assert contact.display_name == 'Quoted ""'
    assert contact.params == {"flavour": "vanilla", "other": None, "q": "0.5"}
    assert contact.q == 0.5
    assert msg.body == BODY


def test_whitespace_and_folding_reserialises_to_a_stable_form() -> None:
    once = parse_message(WHITESPACE_AND_FOLDING).to_bytes()
    twice = parse_message(once).to_bytes()
    assert once == twice
    assert b"\r\nTo: sip:carol@torture.example.com ;   tag    = 77aa\r\n" in once
    assert b"\r\nSubject: \r\n" in once
    assert b"\r\nContent-Type: application/sdp\r\n" in once


ESCAPED_URIS = request(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"
    "To: <sip:%61lice@example.com;transport=%74cp>\r\n"
    "From: <sip:user;par=u%40example.net@example.com>;tag=e1\r\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKesc\r\n"
    "Call-ID: escapes@host5\r\n"
    "CSeq: 8 INVITE\r\n"
    "Max-Forwards: 70\r\n"
    "Contact: <sip:caller@host5.example.net?Subject=hi%20there&Priority=urgent>\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def test_escaped_uris_are_kept_faithfully() -> None:
    msg = parse_message(ESCAPED_URIS)
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == "sips%3Auser%40example.com"
    assert msg.uri.host == "example.net"
    assert str(msg.uri) == "sip:sips%3Auser%40example.com@example.net"
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri)
    assert (to_uri.user, to_uri.params) == ("%61lice", {"transport": "%74cp"})
    from_uri = msg.from_.uri
    assert isinstance(from_uri, SipUri)
    assert from_uri.user == "user;par=u%40example.net"
    assert from_uri.host == "example.com"
    contact_uri = msg.contacts[0].uri
    assert isinstance(contact_uri, SipUri)
    assert contact_uri.headers == {"Subject": "hi%20there", "Priority": "urgent"}
    assert msg.to_bytes() == ESCAPED_URIS


IPV6 = request(
    "REGISTER sip:[2001:db8::10]:5070 SIP/2.0\r\n"
    "To: sip:user@example.com\r\n"
    "From: sip:user@example.com;tag=v6\r\n"
    "Via: SIP/2.0/UDP [2001:db8::9:1]:5062;branch=z9hG4bKv6;received=[2001:db8::9:255];rport\r\n"
    "Via: SIP/2.0/TCP [2001:db8::9:2];branch=z9hG4bKv6b\r\n"
    "Call-ID: v6@[2001:db8::9:1]\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:user@[2001:db8::9:1]:5062;transport=udp>;expires=3600\r\n"
    "l: 0\r\n"
    "\r\n"
)


def test_ipv6_addresses() -> None:
    msg = parse_message(IPV6)
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", 5070)
    top = msg.top_via
    assert (top.host, top.port, top.received) == ("[2001:db8::9:1]", 5062, "[2001:db8::9:255]")
    assert top.has_rport
    assert top.rport is None
    assert msg.via[1].host == "[2001:db8::9:2]"
    assert msg.via[1].port is None
    assert msg.contacts[0].expires == 3600
    contact_uri = msg.contacts[0].uri
    assert isinstance(contact_uri, SipUri)
    assert contact_uri.host_port == "[2001:db8::9:1]:5062"
    # addr-spec form: ";tag" belongs to the header, not to the URI
    assert msg.from_.tag == "v6"
    assert isinstance(msg.from_.uri, SipUri)
    assert msg.from_.uri.params == {}


UNUSUAL_NAMES = request(
    "OPTIONS sip:example.com SIP/2.0\r\n"
    "To: Bob   Q.  Public <sip:bob@example.com>\r\n"
    'From: "" <sip:anon@anonymous.invalid>;tag=n0\r\n'
    'Contact: "J\xe9r\xf4me, the \\"3rd\\"" <sip:j@example.com>, <tel:+1-201-555-0123>,\r\n'
    " sip:plain@example.com;expires=10\r\n"
    "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnames\r\n"
    "Call-ID: names\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "\r\n"
)


def test_unusual_display_names_and_multiple_contacts() -> None:
    msg = parse_message(UNUSUAL_NAMES)
    assert msg.to.display_name == "Bob Q. Public"
    assert msg.from_.display_name == ""
    contacts = msg.contacts
    assert [c.display_name for c in contacts] == ['J\xe9r\xf4me, the "3rd"', None, None]
    assert contacts[1].uri == OpaqueUri("tel", "+1-201-555-0123")
    assert contacts[2].expires == 10
    assert str(contacts[0]) == '"J\xe9r\xf4me, the \\"3rd\\"" <sip:j@example.com>'


COMPACT = request(
    "MESSAGE sip:user@example.com SIP/2.0\r\n"
    "v: SIP/2.0/TCP 192.0.2.9:5070;branch=z9hG4bKcompact\r\n"
    "f: <sip:sender@example.com>;tag=c1\r\n"
    "t: <sip:user@example.com>\r\n"
    "i: compact@192.0.2.9\r\n"
    "CSeq: 3 MESSAGE\r\n"
    "m: <sip:sender@192.0.2.9:5070;transport=tcp>\r\n"
    "k: path, outbound\r\n"
    "s: hello\r\n"
    "e: identity\r\n"
    "o: presence\r\n"
    "u: presence, dialog\r\n"
    "r: <sip:third@example.com>\r\n"
    "b: <sip:sender@example.com>\r\n"
    "x: 1800;refresher=uac\r\n"
    "c: text/plain\r\n"
    "l: 5\r\n"
    "\r\n"
    "hello"
)


def test_compact_forms() -> None:
    msg = parse_message(COMPACT)
    assert msg.top_via.port == 5070
    assert msg.from_.tag == "c1"
    assert msg.call_id == "compact@192.0.2.9"
    assert msg.headers.get("Supported") == "path, outbound"
    assert msg.headers.get("Allow-Events") == "presence, dialog"
    assert msg.content_type == "text/plain"
    assert msg.body == b"hello"
    wire = msg.to_bytes()
    for name in (
        b"Via",
        b"From",
        b"To",
        b"Call-ID",
        b"Contact",
        b"Supported",
        b"Subject",
        b"Content-Encoding",
        b"Event",
        b"Allow-Events",
        b"Refer-To",
        b"Referred-By",
        b"Session-Expires",
        b"Content-Type",
        b"Content-Length",
    ):
        assert b"\r\n" + name + b": " in wire, name


MULTI_VALUE = request(
    "SIP/2.0 180 Ringing\r\n"
    "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, "
    "SIP/2.0/TCP b.example.com:5061;branch=z9hG4bK2\r\n"
    "Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3\r\n"
    "Record-Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n"
    'Record-Route: <sip:p3.example.com;lr>;x="a,b"\r\n'
    "From: <sip:a@example.com>;tag=1\r\n"
    "To: <sip:b@example.com>;tag=2\r\n"
    "Call-ID: multi\r\n"
    "CSeq: 10 INVITE\r\n"
    "\r\n"
)


def test_multiple_values_on_one_line() -> None:
    msg = parse_message(MULTI_VALUE)
    assert isinstance(msg, Response)
    assert [v.host for v in msg.via] == ["a.example.com", "b.example.com", "c.example.com"]
    assert [str(r) for r in msg.record_routes] == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        '<sip:p3.example.com;lr>;x="a,b"',
    ]


def test_leading_crlf_and_lower_case_version_and_unknown_method() -> None:
    raw = (
        b"\r\n\r\nFOOBAR sip:x@example.com sip/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfoo\r\n"
        b"From: <sip:y@example.com>;tag=1\r\n"
        b"To: <sip:x@example.com>\r\n"
        b"Call-ID: foo\r\n"
        b"CSeq: 1 FOOBAR\r\n"
        b"\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    assert msg.method == "FOOBAR"
    assert msg.to_bytes().startswith(b"FOOBAR sip:x@example.com SIP/2.0\r\n")


def test_wildcard_contact() -> None:
    raw = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKstar\r\n"
        b"From: <sip:u@example.com>;tag=1\r\n"
        b"To: <sip:u@example.com>\r\n"
        b"Call-ID: star\r\n"
        b"CSeq: 5 REGISTER\r\n"
        b"Contact: *\r\n"
        b"Expires: 0\r\n"
        b"\r\n"
    )
    msg = parse_message(raw)
    [contact] = msg.contacts
    assert contact.wildcard
    assert contact.uri == OpaqueUri("", "*")
    assert str(contact) == "*"
    assert msg.expires == 0


SHORT_BASE = (
    "OPTIONS sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb\r\n"
    "From: <sip:u@example.com>;tag=1\r\n"
    "To: <sip:example.com>\r\n"
    "Call-ID: body\r\n"
    "CSeq: 1 OPTIONS\r\n"
)


def test_datagram_body_longer_than_content_length_is_truncated() -> None:
    raw = (SHORT_BASE + "Content-Length: 4\r\n\r\n").encode() + b"abcdEXTRA"
    assert parse_message(raw).body == b"abcd"


def test_no_content_length_means_rest_of_datagram() -> None:
    raw = (SHORT_BASE + "\r\n").encode() + b"whole\r\nrest"
    assert parse_message(raw).body == b"whole\r\nrest"


def test_bare_lf_line_ends_are_tolerated() -> None:
    raw = (SHORT_BASE.replace("\r\n", "\n") + "Content-Length: 2\n\n").encode() + b"ok"
    msg = parse_message(raw)
    assert msg.call_id == "body"
    assert msg.body == b"ok"


def test_response_with_empty_reason_phrase() -> None:
    raw = (
        b"SIP/2.0 404 \r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr\r\n"
        b"From: <sip:u@example.com>;tag=1\r\n"
        b"To: <sip:v@example.com>;tag=2\r\n"
        b"Call-ID: r\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, Response)
    assert (msg.status_code, msg.reason) == (404, "")


# --- invalid -----------------------------------------------------------------

VALID_HEADERS = {
    "Via": "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbad",
    "From": "<sip:u@example.com>;tag=1",
    "To": "<sip:v@example.com>",
    "Call-ID": "bad@192.0.2.1",
    "CSeq": "1 INVITE",
}


def build(
    start: str = "INVITE sip:v@example.com SIP/2.0",
    drop: str | None = None,
    extra: str = "",
    body: bytes = b"",
    **replace: str,
) -> bytes:
    lines = [start]
    for name, value in VALID_HEADERS.items():
        if name == drop:
            continue
        lines.append(f"{name}: {replace.get(name.replace('-', '_'), value)}")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return text.encode() + body


def test_build_helper_makes_a_valid_message() -> None:
    assert parse_message(build()).call_id == "bad@192.0.2.1"


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(drop=name))
    assert info.value.reason == f"Missing {name}"
    assert info.value.status_code == 400
    assert isinstance(info.value.message, Request)


def test_missing_call_id_still_gives_a_partial_message_to_answer() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(drop="Call-ID"))
    partial = info.value.message
    assert isinstance(partial, Request)
    assert partial.top_via.branch == "z9hG4bKbad"
    assert partial.from_.tag == "1"
    assert partial.cseq.seq == 1


@pytest.mark.parametrize(
    ("cseq", "reason"),
    [
        ("abc INVITE", "Invalid CSeq"),
        ("1", "Invalid CSeq"),
        ("-1 INVITE", "Invalid CSeq"),
        ("2147483648 INVITE", "Invalid CSeq"),
        ("1 INVITE extra", "Invalid CSeq"),
        ("1 OPTIONS", "CSeq method does not match"),
        ("1 invite", "CSeq method does not match"),
    ],
)
def test_bad_cseq(cseq: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(CSeq=cseq))
    assert info.value.reason == reason
    assert info.value.status_code == 400
    assert info.value.message is not None


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "99999999999", ""])
def test_bad_content_length(length: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(extra=f"Content-Length: {length}\r\n"))
    assert info.value.reason == "Invalid Content-Length"
    assert info.value.message is not None


def test_content_length_larger_than_body() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(extra="Content-Length: 10\r\n", body=b"short"))
    assert info.value.reason == "Content-Length larger than body"
    assert info.value.status_code == 400
    assert info.value.message is not None


def test_conflicting_content_lengths() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(extra="Content-Length: 2\r\nl: 3\r\n", body=b"abc"))
    assert info.value.reason == "Conflicting Content-Length"


@pytest.mark.parametrize("version", ["SIP/7.0", "SIP/2.1", "SIP/1.0"])
def test_unsupported_version_is_505_with_the_message(version: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(start=f"INVITE sip:v@example.com {version}"))
    assert info.value.status_code == 505
    assert isinstance(info.value.message, Request)
    assert info.value.message.call_id == "bad@192.0.2.1"


def test_response_with_unsupported_version() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(start="SIP/3.0 200 OK"))
    assert info.value.status_code == 505
    assert isinstance(info.value.message, Response)


@pytest.mark.parametrize(
    "start",
    [
        "INVITE sip:v@example.com HTTP/1.1",
        "INVITE sip:v@example.com",
        "INVITE  sip:v@example.com SIP/2.0",
        "INVITE sip:v@example.com SIP/2.0 extra",
        "INV\x00ITE sip:v@example.com SIP/2.0",
        "INVITE sip:v@exa\x00mple.com SIP/2.0",
        "IN<VITE sip:v@example.com SIP/2.0",
        "SIP/2.0 20 OK",
        "SIP/2.0 700 Too Big",
        "SIP/2.0 OK",
        "SIP/2.0",
        "hello world",
    ],
)
def test_malformed_start_line(start: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(start=start))
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "uri", ["sip:", "sip:user@", "sip:host:99999", "sip:[::1", "nocolon", "sip:a@b@c", "sip:ho<st"]
)
def test_bad_request_uri(uri: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(start=f"INVITE {uri} SIP/2.0"))
    assert info.value.status_code == 400
    assert isinstance(info.value.message, Request)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Via", "SIP/2.0/UDP"),
        ("Via", "SIP/2.0 192.0.2.1"),
        ("Via", "HTTP/1.1/TCP 192.0.2.1"),
        ("Via", "SIP/2.0/UDP 192.0.2.1:port"),
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch="),
        ("From", '"unterminated <sip:u@example.com>;tag=1'),
        ("From", "<sip:u@example.com;tag=1"),
        ("From", "Bad\x01Name <sip:u@example.com>"),
        ("To", "<not a uri>"),
        ("Call_ID", "has space"),
    ],
)
def test_bad_header_values(field: str, value: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(**{field: value}))
    assert info.value.status_code == 400
    assert info.value.message is not None


@pytest.mark.parametrize("value", ["abc", "256", "-1"])
def test_bad_max_forwards(value: str) -> None:
    with pytest.raises(SipParseError, match="Max-Forwards"):
        parse_message(build(extra=f"Max-Forwards: {value}\r\n"))


@pytest.mark.parametrize(
    "line", ["NoColonHere", ": empty name", "Bad Name: x", "Bad\x7fName: y", "Br@ck[et]: z"]
)
def test_malformed_header_line_keeps_the_rest(line: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(extra=line + "\r\n"))
    assert info.value.reason == "Malformed header line"
    assert info.value.message is not None
    assert info.value.message.call_id == "bad@192.0.2.1"


def test_continuation_before_any_header() -> None:
    raw = b"OPTIONS sip:x@example.com SIP/2.0\r\n folded\r\nVia: x\r\n\r\n"
    with pytest.raises(SipParseError, match="Continuation"):
        parse_message(raw)


def test_missing_empty_line() -> None:
    with pytest.raises(SipParseError, match="empty line"):
        parse_message(build()[:-2])


def test_bare_cr_is_refused() -> None:
    with pytest.raises(SipParseError, match="Bare CR"):
        parse_message(build(extra="X-A: one\rtwo\r\n"))


def test_non_utf8_header_is_refused() -> None:
    raw = build().replace(b"Call-ID: bad", b"Call-ID: b\xffd")
    with pytest.raises(SipParseError, match="UTF-8"):
        parse_message(raw)


def test_nul_byte_in_header_is_refused() -> None:
    with pytest.raises(SipParseError, match="NUL"):
        parse_message(build(extra="X-Nul: a\x00b\r\n"))


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"\x00\x01\x02", b"garbage\r\n\r\n"])
def test_garbage(raw: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(raw)


def test_too_large_is_513() -> None:
    raw = build(extra=f"Content-Length: {MAX_MESSAGE_BYTES}\r\n", body=b"x" * MAX_MESSAGE_BYTES)
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.status_code == 513
    assert info.value.message is None


def test_exactly_the_limit_is_accepted() -> None:
    head = build(extra="Content-Length: 0000000\r\n")
    body_size = MAX_MESSAGE_BYTES - len(head)
    raw = build(extra=f"Content-Length: {body_size:07d}\r\n", body=b"x" * body_size)
    assert len(raw) == MAX_MESSAGE_BYTES
    assert len(parse_message(raw).body) == body_size


def test_whitespace_only_continuation_adds_nothing() -> None:
    msg = parse_message(build(extra="X-A: one\r\n \r\n\ttwo\r\n\t \r\n"))
    assert msg.headers.get("X-A") == "one two"
    wire = msg.to_bytes()
    assert parse_message(wire).to_bytes() == wire


def test_unknown_header_names_do_not_grow_memory_without_bound() -> None:
    from edgeport.sip import parser

    for batch in range(30):
        extra = "".join(f"X-Name-{batch}-{i}: v\r\n" for i in range(100))
        parse_message(build(extra=extra))
    assert len(parser._KEY_CACHE) <= parser._KEY_CACHE_MAX


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("CSeq: 2 INVITE\r\n", "Multiple CSeq headers"),
        ("i: other@192.0.2.1\r\n", "Multiple Call-ID headers"),
        ("From: <sip:w@example.com>;tag=2\r\n", "Multiple From headers"),
        ("t: <sip:x@example.com>\r\n", "Multiple To headers"),
    ],
)
def test_single_valued_header_twice(extra: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(build(extra=extra))
    assert info.value.reason == reason
    assert info.value.message is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("From", "Carol, Lewis <sip:carol@example.com>;tag=1"),  # non-token display name
        ("To", "<sip:v@example.com>, <sip:w@example.com>"),  # two values in To
        ("To", "< sip:v@example.com >"),  # spaces inside the brackets
    ],
)
def test_rfc4475_style_invalid_addresses(field: str, value: str) -> None:
    with pytest.raises(SipParseError):
        parse_message(build(**{field: value}))


def test_repeated_header_parameter_is_tolerated_last_wins() -> None:
    msg = parse_message(build(To="<sip:v@example.com>;tag=a;tag"))
    assert msg.to.params == {"tag": None}


def test_unknown_request_uri_scheme_is_not_a_parse_error() -> None:
    # A proxy answers 416 for it (RFC 3261 §8.2.2.1); the parser keeps it opaque.
    msg = parse_message(build(start="INVITE isbn:2983792873 SIP/2.0"))
    assert isinstance(msg, Request)
    assert msg.uri == OpaqueUri("isbn", "2983792873")


# --- more RFC 4475-style cases, written here -----------------------------------


def test_odd_but_legal_method_token_and_escaped_nul_in_uri() -> None:
    method = "!odd-Method0123456789_*+`.%indeed'~"
    uri = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
        ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    raw = build(
        start=f"{method} {uri} SIP/2.0",
        CSeq=f"139122385 {method}",
        To="sip:null-%00-null@example.com",
    )
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    assert msg.method == method
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.host == "example.com"
    assert str(msg.uri) == uri
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert isinstance(msg.to.uri, SipUri)
    assert msg.to.uri.user == "null-%00-null"


def test_many_vias_and_long_values() -> None:
    vias = "".join(
        f"Via: SIP/2.0/TCP relay{i}.example.com:{5000 + i};branch=z9hG4bK{'x' * 200}{i}\r\n"
        for i in range(40)
    )
    long_value = "a" * 4000
    msg = parse_message(build(extra=vias + f"X-Long: {long_value}\r\n"))
    assert len(msg.via) == 41
    assert msg.via[40].host == "relay39.example.com"
    assert msg.headers.get("X-Long") == long_value


def test_second_message_in_one_datagram_is_dropped() -> None:
    first = build(extra="Content-Length: 0\r\n")
    msg = parse_message(first + build(start="BYE sip:v@example.com SIP/2.0", CSeq="2 BYE"))
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.body == b""


def test_zero_max_forwards_unknown_transport_and_no_branch_are_parseable() -> None:
    msg = parse_message(
        build(
            extra="Max-Forwards: 0\r\n",
            Via="SIP/2.0/UNKNOWN t.example.com;branch=z9hG4bKunk, SIP/2.0/UDP old.example.com",
        )
    )
    assert msg.max_forwards == 0
    assert msg.via[0].transport == "UNKNOWN"
    assert msg.via[1].branch is None


def test_multipart_body_is_kept_byte_exact() -> None:
    body = (
        b"--boundary42\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
        b"--boundary42\r\nContent-Type: image/gif\r\n\r\n\x00\x01\xff\xfe\r\n"
        b"--boundary42--\r\n"
    )
    raw = build(
        extra="Content-Type: multipart/mixed;boundary=boundary42\r\n"
        f"Content-Length: {len(body)}\r\n",
        body=body,
    )
    msg = parse_message(raw)
    assert msg.body == body
    assert msg.content_type == "multipart/mixed;boundary=boundary42"
    assert msg.to_bytes().endswith(b"\r\n\r\n" + body)


@pytest.mark.parametrize(
    "start",
    [
        "INVITE <sip:v@example.com> SIP/2.0",  # brackets around the Request-URI
        "INVITE sip:v@example.com SIP/2.0 ",  # trailing whitespace
        "INVITE sip:v@example.com\tSIP/2.0",  # tab instead of SP
        "SIP/2.0 4294967301 Wow",  # status code far too big
    ],
)
def test_more_malformed_start_lines(start: str) -> None:
    with pytest.raises(SipParseError):
        parse_message(build(start=start))


def test_unbalanced_quotes_in_display_name() -> None:
    with pytest.raises(SipParseError):
        parse_message(build(From='"Mr. J. User <sip:j.user@example.com>;tag=1'))
