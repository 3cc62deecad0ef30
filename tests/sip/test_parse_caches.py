"""What the parser keeps between messages: header lines, addresses, URIs, CSeqs.

A line, an address, a URI or a CSeq seen before is parsed from kept parts.
These tests hold the parser to giving exactly what a cold parse gives, to
never sharing a mutable view between two messages, and to keeping its
tables bounded whatever the peers send.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeport.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    addresses,
    header_grammar,
    header_names,
    parse_message,
    parser,
    request_ids,
    uri,
)
from edgeport.sip import via as via_values
from edgeport.sip.headers import parse_via

INVITE = (
    b"INVITE sip:bob@example.com;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKc1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com;user=phone>;tag=a1\r\n'
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: c1@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060>;expires=60\r\n"
    b"Record-Route: <sip:edge.example.com;lr>\r\n"
    b"User-Agent: phone/1\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKc1;rport=5060\r\n"
    b'From: "Alice" <sip:alice@example.com;user=phone>;tag=a1\r\n'
    b"To: <sip:bob@example.com>;tag=b1\r\n"
    b"Call-ID: c1@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@pytest.fixture
def cold() -> Iterator[None]:
    """Every kept table empty before and after the test."""
    tables = (
        parser._LINES,
        addresses._ADDR_PARTS,
        request_ids._CSEQS,
        via_values._VIA_PARTS,
        uri._URI_PARTS,
    )
    for table in tables:
        table.clear()
    yield
    for table in tables:
        table.clear()


def _snapshot(message: Request | Response) -> tuple[object, ...]:
    first = (
        (message.method, str(message.uri), message.uri)
        if isinstance(message, Request)
        else (message.status_code, message.reason)
    )
    return (
        first,
        list(message.headers),
        message.via,
        message.from_,
        message.to,
        message.call_id,
        message.cseq,
        message.contacts,
        message.record_routes,
        message.max_forwards,
        message.to_bytes(),
    )


@pytest.mark.parametrize("data", [INVITE, OK])
def test_a_message_parsed_again_from_kept_parts_is_the_same(cold: None, data: bytes) -> None:
    first = _snapshot(parse_message(data))
    assert parser._LINES, "nothing was kept"
    assert _snapshot(parse_message(data)) == first


def test_views_of_two_messages_from_the_same_text_are_never_shared(cold: None) -> None:
    cold_parse = parse_message(INVITE)
    warm = parse_message(INVITE)  # from the parts the first parse kept
    assert isinstance(warm, Request)
    assert warm.from_ is not cold_parse.from_
    # Change every view of the warm message, and of the cold one.
    for message in (cold_parse, warm):
        assert isinstance(message, Request)
        message.from_.params["tag"] = "changed"
        assert isinstance(message.from_.uri, SipUri)
        message.from_.uri.params["user"] = "ip"
        message.to.params["tag"] = "t-changed"
        assert isinstance(message.uri, SipUri)
        message.uri.params["transport"] = "udp"
        message.contacts[0].params["expires"] = "1"
        message.record_routes[0].params["x"] = "y"
    for _ in range(2):
        message = parse_message(INVITE)
        assert isinstance(message, Request)
        assert message.from_ == NameAddr(
            "Alice",
            SipUri("sip", "alice", None, "example.com", None, {"user": "phone"}),
            {"tag": "a1"},
        )
        assert message.to.params == {}
        assert str(message.uri) == "sip:bob@example.com;transport=tcp"
        assert message.contacts[0].params == {"expires": "60"}
        assert message.record_routes[0].params == {}


def test_a_folded_value_after_a_kept_line_is_unfolded_as_before(cold: None) -> None:
    parse_message(INVITE)
    folded = parse_message(
        INVITE.replace(b"User-Agent: phone/1\r\n", b"User-Agent: phone/1\r\n  v2\r\n")
    )
    assert folded.headers.get("User-Agent") == "phone/1 v2"
    again = parse_message(INVITE)
    assert again.headers.get("User-Agent") == "phone/1"


def test_a_kept_line_does_not_make_a_broken_one_acceptable(cold: None) -> None:
    parse_message(INVITE)
    for broken, reason in [
        (INVITE.replace(b"User-Agent: phone/1", b"User-Agent phone/1"), "Malformed header line"),
        (INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 7 BYE"), "CSeq method does not match"),
        (INVITE.replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com"), None),
        (INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: 2147483648 INVITE"), "Invalid CSeq"),
    ]:
        with pytest.raises(SipParseError) as info:
            parse_message(broken)
        if reason is not None:
            assert info.value.reason == reason


def test_lines_new_in_every_message_and_long_lines_are_not_kept(cold: None) -> None:
    long_value = "x" * parser._LINE_TEXT_MAX
    parse_message(INVITE.replace(b"User-Agent: phone/1", f"User-Agent: {long_value}".encode()))
    kept = list(parser._LINES)
    assert kept
    assert not [line for line in kept if line.startswith(("Via:", "Call-ID:"))]
    assert not [line for line in kept if long_value in line]


def test_kept_tables_stay_bounded(cold: None) -> None:
    for number in range(max(parser._LINES_MAX, header_grammar.PARTS_MAX, uri._PARTS_MAX) + 10):
        data = (
            INVITE.replace(b"User-Agent: phone/1", b"User-Agent: phone/%d" % number)
            .replace(b"tag=a1", b"tag=a%d" % number)
            .replace(b"CSeq: 7 INVITE", b"CSeq: %d INVITE" % number)
            .replace(b"sip:bob@example.com;", b"sip:bob%d@example.com;" % number)
            .replace(b"10.0.0.1:5060;branch", b"10.0.0.1:%d;branch" % (number + 1))
        )
        message = parse_message(data)
        assert message.headers.get("User-Agent") == f"phone/{number}"
        assert message.from_.tag == f"a{number}"
        assert message.cseq.seq == number
        assert len(parser._LINES) <= parser._LINES_MAX
        assert len(addresses._ADDR_PARTS) <= header_grammar.PARTS_MAX
        assert len(request_ids._CSEQS) <= header_grammar.PARTS_MAX
        assert message.top_via.port == number + 1
        assert len(uri._URI_PARTS) <= uri._PARTS_MAX
        assert len(via_values._VIA_PARTS) <= header_grammar.PARTS_MAX


def _via_fields(text: str) -> tuple[object, ...] | str:
    try:
        via = parse_via(text)
    except SipParseError as error:
        return error.reason
    return (via.transport, via.host, via.port, list(via.params.items()), str(via))


def test_a_via_kept_but_for_its_branch_parses_as_a_cold_one(cold: None) -> None:
    texts = [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1;rport;received=192.0.2.1",
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa2;rport;received=192.0.2.1",
        # The same text but for the branch, the branch elsewhere: another order.
        "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKa3;received=192.0.2.1",
        "SIP/2.0/UDP 10.0.0.1:5060;rport;received=192.0.2.1;branch=z9hG4bKa4",
        # A second parameter named branch: the last one is the value.
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa5;rport;received=192.0.2.1;branch",
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa6;rport;received=192.0.2.1;BRANCH=x",
        # Branches the parameter-value class does not take.
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9 hG4bK;rport;received=192.0.2.1",
        'SIP/2.0/UDP 10.0.0.1:5060;branch="q";rport;received=192.0.2.1',
        "SIP/2.0/UDP 10.0.0.1:5060;branch=;rport;received=192.0.2.1",
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9\u00e9;rport;received=192.0.2.1",
    ]
    expected = {}
    for text in texts:
        via_values._VIA_PARTS.clear()
        expected[text] = _via_fields(text)
    via_values._VIA_PARTS.clear()
    for _ in range(2):
        for text in texts:
            assert _via_fields(text) == expected[text], text
    assert via_values._VIA_PARTS, "nothing was kept"


def test_a_via_parsed_from_kept_parts_is_its_own(cold: None) -> None:
    first = parse_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb1;rport")
    second = parse_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb2;rport")
    second.params["received"] = "192.0.2.9"
    third = parse_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb3;rport")
    assert first.params == {"branch": "z9hG4bKb1", "rport": None}
    assert third.params == {"branch": "z9hG4bKb3", "rport": None}


def test_known_header_spellings_fold_as_any_other_name() -> None:
    names = [*header_names.CANONICAL_NAMES.values(), *header_names.COMPACT_FORMS]
    spellings = {
        spelling
        for name in names
        for spelling in (name, name.lower(), name.upper(), name.title(), name.swapcase())
    }
    for spelling in spellings:
        expected = (
            header_names.COMPACT_FORMS[spelling.lower()].lower()
            if len(spelling) == 1
            else spelling.lower()
        )
        assert header_names.header_key(spelling) == expected, spelling
