"""SIP/SIPS URI parts, properties and the str() round trip (RFC 3261 §19.1, §25.1)."""

from __future__ import annotations

import pytest

from edgeport.sip import OpaqueUri, SipParseError, SipUri, parse_uri


def test_all_parts() -> None:
    uri = parse_uri(
        "sips:alice:secret@Atlanta.example.com:5061;Transport=TCP;lr;ttl=15?Subject=x&h="
    )
    assert uri == SipUri(
        scheme="sips",
        user="alice",
        password="secret",
        host="Atlanta.example.com",
        port=5061,
        params={"transport": "TCP", "lr": None, "ttl": "15"},
        headers={"Subject": "x", "h": ""},
    )
    assert isinstance(uri, SipUri)
    assert uri.secure
    assert uri.transport == "TCP"
    assert uri.lr
    assert uri.ttl == 15
    assert uri.maddr is None
    assert uri.host_port == "Atlanta.example.com:5061"


def test_properties_of_a_plain_uri() -> None:
    uri = parse_uri("sip:+15551234@gw.example.com;user=phone;method=INVITE;maddr=239.255.255.1;bnc")
    assert isinstance(uri, SipUri)
    assert not uri.secure
    assert uri.user_param == "phone"
    assert uri.method_param == "INVITE"
    assert uri.maddr == "239.255.255.1"
    assert uri.bnc
    assert not uri.lr
    assert uri.ttl is None
    assert uri.transport is None
    assert uri.port is None


@pytest.mark.parametrize(
    "text",
    [
        "sip:example.com",
        "sip:alice@example.com",
        "sip:alice@example.com:5060",
        "sip:alice:pw@example.com;transport=udp",
        "sip:192.0.2.1:5070;lr",
        "sip:[2001:db8::1]",
        "sip:user@[2001:db8::1]:5061;transport=tls",
        "sips:bob@biloxi.example.com;maddr=239.255.255.1;ttl=15",
        "sip:%61lice%20x@example.com",
        "sip:user;par=u%40example.net@example.com",
        "sip:alice@example.com?Subject=project%20x&Priority=urgent",
        "sip:alice@example.com;lr?Route=%3Csip:proxy%3E",
        "sip:host_with_underscore.example.com",
        "sip:example.com.",
    ],
)
def test_str_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_scheme_and_param_names_are_lower_cased() -> None:
    uri = parse_uri("SIP:Alice@Example.COM;TRANSPORT=UDP;LR")
    assert isinstance(uri, SipUri)
    assert uri.scheme == "sip"
    assert uri.user == "Alice"
    assert uri.host == "Example.COM"
    assert uri.params == {"transport": "UDP", "lr": None}
    assert str(uri) == "sip:Alice@Example.COM;transport=UDP;lr"


def test_ipv6_host_with_port() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070;transport=tcp")
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


@pytest.mark.parametrize(
    ("text", "scheme", "value"),
    [
        ("tel:+1-201-555-0123", "tel", "+1-201-555-0123"),
        ("TEL:+358-555-1234567;postd=pp22", "tel", "+358-555-1234567;postd=pp22"),
        ("urn:service:sos", "urn", "service:sos"),
        ("http://www.example.com/a?b=c", "http", "//www.example.com/a?b=c"),
    ],
)
def test_other_schemes_are_opaque(text: str, scheme: str, value: str) -> None:
    uri = parse_uri(text)
    assert uri == OpaqueUri(scheme, value)
    assert not uri.secure
    assert str(uri).lower() == text.lower()


def test_constructed_uri_serialises() -> None:
    uri = SipUri(host="10.0.0.1", port=5060, params={"transport": "tcp", "lr": None})
    assert str(uri) == "sip:10.0.0.1:5060;transport=tcp;lr"
    assert str(OpaqueUri("", "*")) == "*"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        ":nothing",
        "1sip:x",
        "s p:x",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:example.com:",
        "sip:example.com:abc",
        "sip:example.com:65536",
        "sip:example.com:123456",
        "sip:[2001:db8::1",
        "sip:[zz::1]",
        "sip:[]",
        "sip:[::1]x",
        "sip:exa mple.com",
        "sip:<example.com>",
        'sip:ex"ample.com',
        "sip:example.com;;lr",
        "sip:example.com?noequals",
        "sip:host!name.com",
        "tel:",
        "sip:example.com\r\nVia: x",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)
