"""Typed header values: Via, name-addr, CSeq, digest auth, names (RFC 3261 §20, §25)."""

from __future__ import annotations

import pytest

from edgeport.sip import (
    COMPACT_FORMS,
    CSeq,
    DigestChallenge,
    NameAddr,
    OpaqueUri,
    SipParseError,
    SipUri,
    Via,
    canonical_name,
    parse_cseq,
    parse_digest_challenge,
    parse_digest_credentials,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_via_list,
)
from edgeport.sip.headers import split_header_values

# --- names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("v", "Via"),
        ("V", "Via"),
        ("via", "Via"),
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("i", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("l", "Content-Length"),
        ("x", "Session-Expires"),
        ("d", "Request-Disposition"),
        ("X-Custom-thing", "X-Custom-thing"),
        ("q", "q"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_compact_forms_cover_rfc3261_and_extensions() -> None:
    expected = {
        "i": "Call-ID",
        "m": "Contact",
        "e": "Content-Encoding",
        "l": "Content-Length",
        "c": "Content-Type",
        "f": "From",
        "s": "Subject",
        "k": "Supported",
        "t": "To",
        "v": "Via",
        "r": "Refer-To",
        "b": "Referred-By",
        "u": "Allow-Events",
        "o": "Event",
        "x": "Session-Expires",
        "y": "Identity",
        "a": "Accept-Contact",
        "j": "Reject-Contact",
        "d": "Request-Disposition",
    }
    assert expected.items() <= COMPACT_FORMS.items()


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("a,,b,", ["a", "b"]),
        ("", []),
        ("single", ["single"]),
        ('"Doe, John" <sip:j@x>, <sip:k@y>', ['"Doe, John" <sip:j@x>', "<sip:k@y>"]),
        ('"a \\" , b" <sip:a@x>', ['"a \\" , b" <sip:a@x>']),
        ("<sip:a@x?h=1,2>, <sip:b@y>", ["<sip:a@x?h=1,2>", "<sip:b@y>"]),
    ],
)
def test_split_header_values(value: str, items: list[str]) -> None:
    assert split_header_values(value) == items


@pytest.mark.parametrize("value", ['"open, <sip:a@x>', "<sip:a@x, <sip:b@y"])
def test_split_header_values_refuses_unterminated(value: str) -> None:
    with pytest.raises(SipParseError):
        split_header_values(value)


# --- Via -----------------------------------------------------------------------


def test_via_parts() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK77;rport;received=198.51.100.7")
    assert via == Via(
        "UDP", "192.0.2.1", 5062, {"branch": "z9hG4bK77", "rport": None, "received": "198.51.100.7"}
    )
    assert via.branch == "z9hG4bK77"
    assert via.has_rport
    assert via.rport is None
    assert via.received == "198.51.100.7"
    assert via.sent_by == "192.0.2.1:5062"
    assert via.protocol == "SIP/2.0"


def test_via_rport_with_value_ttl_maddr() -> None:
    via = parse_via("SIP/2.0/udp host.example.com;rport=4001;maddr=224.2.0.1;ttl=16;x-ext")
    assert via.transport == "UDP"
    assert via.port is None
    assert via.rport == 4001
    assert via.has_rport
    assert via.maddr == "224.2.0.1"
    assert via.ttl == 16
    assert via.params["x-ext"] is None
    assert via.branch is None


def test_via_without_rport() -> None:
    via = parse_via("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKws")
    assert not via.has_rport
    assert via.rport is None
    assert via.transport == "WSS"


def test_via_with_spaces_everywhere() -> None:
    via = parse_via("sip / 2.0 / tcp   host.example.com : 5070 ; branch = z9hG4bKsp ; rport")
    assert via == Via("TCP", "host.example.com", 5070, {"branch": "z9hG4bKsp", "rport": None})


def test_via_ipv6_and_quoted_param() -> None:
    via = parse_via('SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK6;x="a b;c"')
    assert (via.host, via.port) == ("[2001:db8::5]", 5061)
    assert via.params["x"] == '"a b;c"'


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK77;rport;received=198.51.100.7",
        "SIP/2.0/TCP [2001:db8::5];branch=z9hG4bK6",
        "SIP/2.0/WS abc.invalid;branch=z9hG4bKw;rport=5555",
    ],
)
def test_via_str_round_trip(text: str) -> None:
    assert str(parse_via(text)) == text


def test_via_stamping_received_and_rport() -> None:
    via = parse_via("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKn;rport")
    via.params["rport"] = "40000"
    via.params["received"] = "203.0.113.9"
    assert str(via) == "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKn;rport=40000;received=203.0.113.9"


def test_via_list() -> None:
    vias = parse_via_list("SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/TCP b:1;branch=z9hG4bK2")
    assert [(v.host, v.port) for v in vias] == [("a", None), ("b", 1)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0 UDP host",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP host:",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host;",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host;branch=a<b",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/UDP ho$t",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP [::1]x",
    ],
)
def test_via_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(text)


# --- name-addr -----------------------------------------------------------------


def test_name_addr_quoted_display_tag_and_params() -> None:
    addr = parse_name_addr(
        '"Alice \\"A\\"" <sip:alice@atlanta.example.com;transport=tcp>;tag=88sja8x;x=y'
    )
    assert addr.display_name == 'Alice "A"'
    assert isinstance(addr.uri, SipUri)
    assert addr.uri.params == {"transport": "tcp"}
    assert addr.tag == "88sja8x"
    assert addr.params == {"tag": "88sja8x", "x": "y"}
    assert not addr.wildcard
    assert (
        str(addr) == '"Alice \\"A\\"" <sip:alice@atlanta.example.com;transport=tcp>;tag=88sja8x;x=y'
    )


def test_name_addr_token_display_name() -> None:
    addr = parse_name_addr("Bob  Smith <sip:bob@biloxi.example.com>")
    assert addr.display_name == "Bob Smith"
    assert str(addr) == '"Bob Smith" <sip:bob@biloxi.example.com>'


def test_addr_spec_params_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without angle brackets, ";" parameters are header parameters.
    addr = parse_name_addr("sip:carol@chicago.example.com;tag=abc;expires=60")
    assert addr.display_name is None
    assert addr.uri == SipUri("sip", "carol", None, "chicago.example.com")
    assert addr.params == {"tag": "abc", "expires": "60"}
    assert addr.expires == 60
    assert str(addr) == "<sip:carol@chicago.example.com>;tag=abc;expires=60"


def test_name_addr_uri_params_stay_in_brackets() -> None:
    addr = parse_name_addr("<sip:carol@chicago.example.com;tag=inuri>")
    assert addr.tag is None
    assert isinstance(addr.uri, SipUri)
    assert addr.uri.params == {"tag": "inuri"}


def test_contact_wildcard() -> None:
    addr = parse_name_addr(" * ")
    assert addr == NameAddr(None, OpaqueUri("", "*"), {}, wildcard=True)
    assert str(addr) == "*"


def test_contact_q_and_expires() -> None:
    addrs = parse_name_addr_list("<sip:a@x>;q=0.7;expires=3600, <sip:b@y>;q=abc, <sip:c@z>")
    assert [(a.q, a.expires) for a in addrs] == [(0.7, 3600), (None, None), (None, None)]


def test_tel_uri_in_name_addr() -> None:
    addr = parse_name_addr("<tel:+1-201-555-0123;ext=22>;tag=t")
    assert addr.uri == OpaqueUri("tel", "+1-201-555-0123;ext=22")
    assert addr.tag == "t"


def test_name_addr_round_trip_through_str() -> None:
    for text in [
        '"" <sip:anon@anonymous.invalid>;tag=1',
        '"Jérôme" <sips:j@example.com>',
        '<sip:p1.example.com;lr>;x="quoted, value"',
        "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>",
    ]:
        assert str(parse_name_addr(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<sip:a@x",
        '"unterminated <sip:a@x>',
        '"name" sip:a@x',
        "Bad,Name <sip:a@x>",
        "<sip:a@x>junk",
        "<sip:a@x>;",
        "<sip:a@x>;=v",
        "<>",
        "sip:a@x;tag=",
    ],
)
def test_name_addr_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


# --- CSeq ----------------------------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("4711 INVITE") == CSeq(4711, "INVITE")
    assert parse_cseq("  0009 \t ACK ") == CSeq(9, "ACK")
    assert parse_cseq("2147483647 BYE").seq == 2**31 - 1
    assert str(CSeq(1, "REGISTER")) == "1 REGISTER"


@pytest.mark.parametrize(
    "text", ["", "INVITE", "1", "x INVITE", "1 IN VITE", "2147483648 INVITE", "1 INV<ITE", "+1 ACK"]
)
def test_cseq_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_cseq(text)


# --- digest --------------------------------------------------------------------


def test_digest_challenge() -> None:
    challenge = parse_digest_challenge(
        'Digest realm="atlanta.example.com", domain="sip:ss1.example.com",'
        ' qop="auth,auth-int", nonce="f84f1cec41e6cbe5aea9c8e88d359",'
        ' opaque="", stale=FALSE, algorithm=MD5'
    )
    assert challenge.scheme == "Digest"
    assert challenge.realm == "atlanta.example.com"
    assert challenge.domain == "sip:ss1.example.com"
    assert challenge.qop_options == ["auth", "auth-int"]
    assert challenge.nonce == "f84f1cec41e6cbe5aea9c8e88d359"
    assert challenge.opaque == ""
    assert not challenge.stale
    assert challenge.algorithm == "MD5"
    again = parse_digest_challenge(str(challenge))
    assert again == challenge
    assert 'qop="auth,auth-int"' in str(challenge)
    assert "algorithm=MD5" in str(challenge)


def test_digest_credentials_with_escapes() -> None:
    creds = parse_digest_credentials(
        'Digest username="bob \\"the\\" \\\\builder", realm="biloxi.example.com",'
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",uri="sip:bob@biloxi.example.com",'
        ' qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",'
        ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert creds.username == 'bob "the" \\builder'
    assert creds.realm == "biloxi.example.com"
    assert creds.uri == "sip:bob@biloxi.example.com"
    assert creds.qop == "auth"
    assert creds.nc == "00000001"
    assert creds.cnonce == "0a4f113b"
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    assert creds.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    text = str(creds)
    assert "qop=auth," in text
    assert "nc=00000001" in text
    assert 'username="bob \\"the\\" \\\\builder"' in text
    assert parse_digest_credentials(text) == creds


def test_non_digest_scheme_with_token68() -> None:
    challenge = parse_digest_challenge("Bearer eyJhbGciOi.eyJzdWIi.c2lnbg==")
    assert challenge == DigestChallenge("Bearer", {}, "eyJhbGciOi.eyJzdWIi.c2lnbg==")
    assert str(challenge) == "Bearer eyJhbGciOi.eyJzdWIi.c2lnbg=="
    assert parse_digest_credentials("Digest").params == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        'Digest realm="unterminated',
        'Digest realm="x", nonce',
        'Digest realm="x", =y',
        'Digest a="b" c="d"',
        "=x",
    ],
)
def test_digest_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_digest_credentials(text)


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "-1", "12345678901", "x"])
def test_numeric_params_accept_only_ascii_digits(value: str) -> None:
    via = parse_via(f"SIP/2.0/UDP h;rport={value};ttl={value}")
    assert via.has_rport
    assert via.rport is None
    assert via.ttl is None
    addr = parse_name_addr(f"<sip:a@h;ttl={value}>;expires={value}")
    assert addr.expires is None
    assert isinstance(addr.uri, SipUri)
    assert addr.uri.ttl is None


@pytest.mark.parametrize(
    ("q", "expected"),
    [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("1.000", 1.0), ("0.123", 0.123)],
)
def test_contact_q_valid(q: str, expected: float) -> None:
    assert parse_name_addr(f"<sip:a@h>;q={q}").q == expected


@pytest.mark.parametrize(
    "q", ["nan", "inf", "1e0", "2", "0_1", "-0", "0.1.2", "0.12345", ".", ".5"]
)
def test_contact_q_invalid_is_none(q: str) -> None:
    assert parse_name_addr(f"<sip:a@h>;q={q}").q is None
