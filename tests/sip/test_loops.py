"""Loop marks in branches (RFC 3261 §16.3 item 4, §16.6 item 8), on literal SIP text."""

from __future__ import annotations

from edgeport.sip.loops import has_looped, loop_mark, marked_branch
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message

KEY = bytes(range(16))
OTHER_KEY = bytes(16)


def request(uri: str = "sip:bob@example.com", *vias: str, to_tag: str = "") -> Request:
    via_lines = "".join(f"Via: {via}\r\n" for via in vias) or (
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-caller;received=192.0.2.1\r\n"
    )
    message = parse_message(
        (
            f"INVITE {uri} SIP/2.0\r\n"
            f"{via_lines}"
            "Max-Forwards: 69\r\n"
            "From: <sip:alice@example.com>;tag=f1\r\n"
            f"To: <sip:bob@example.com>{';tag=' + to_tag if to_tag else ''}\r\n"
            "Call-ID: loop-1@example.com\r\n"
            "CSeq: 7 INVITE\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


CALLER_VIA = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-caller;received=192.0.2.1"


def edge_via(mark: str) -> str:
    return f"SIP/2.0/UDP 203.0.113.5:5060;branch={marked_branch('z9hG4bKw0-abcdef', mark)};rport"


def test_the_mark_is_8_hex_digits_and_depends_on_the_key() -> None:
    received = request()
    mark = loop_mark(received, KEY)
    assert len(mark) == 8
    assert int(mark, 16) >= 0
    assert loop_mark(received, KEY) == mark
    assert loop_mark(received, OTHER_KEY) != mark


def test_a_request_that_comes_back_unchanged_has_looped() -> None:
    first = request("sip:bob@example.com", CALLER_VIA)
    mark = loop_mark(first, KEY)
    back = request("sip:bob@example.com", edge_via(mark), CALLER_VIA)
    assert has_looped(back, KEY)
    # Through another proxy that added its own Via on top: still a loop.
    proxied = request(
        "sip:bob@example.com",
        "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-proxy",
        edge_via(mark),
        CALLER_VIA,
    )
    assert has_looped(proxied, KEY)


def test_a_request_that_comes_back_changed_is_a_spiral() -> None:
    first = request("sip:bob@example.com", CALLER_VIA)
    mark = loop_mark(first, KEY)
    retargeted = request("sip:carol@example.com", edge_via(mark), CALLER_VIA)
    assert not has_looped(retargeted, KEY)
    tagged = request("sip:bob@example.com", edge_via(mark), CALLER_VIA, to_tag="t9")
    assert not has_looped(tagged, KEY)


def test_another_edgeport_or_another_element_is_no_loop() -> None:
    first = request("sip:bob@example.com", CALLER_VIA)
    theirs = request("sip:bob@example.com", edge_via(loop_mark(first, OTHER_KEY)), CALLER_VIA)
    assert not has_looped(theirs, KEY)
    unmarked = request(
        "sip:bob@example.com", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK-plain", CALLER_VIA
    )
    assert not has_looped(unmarked, KEY)
    assert not has_looped(request(), KEY)


def test_a_marked_via_at_the_bottom_or_a_broken_via_is_no_loop() -> None:
    alone = request("sip:bob@example.com", edge_via("0123abcd"))
    assert not has_looped(alone, KEY)
    broken = request("sip:bob@example.com", edge_via("0123abcd"), "SIP/2.0/UDP ;;;")
    assert not has_looped(broken, KEY)
