"""The reading of SIPp message traces that the interop tests assert on."""

from __future__ import annotations

from tests.interop.harness import SippRun, parse_trace

TRACE = (
    "Problem EAGAIN on socket  7 and poll_idx  is 1 \n"
    "----------------------------------------------- 2026-11-26 09:44:04.024492\n"
    "UDP message received [640] bytes :\n"
    "\n"
    "INVITE sip:bob@127.0.0.1:25080;transport=udp SIP/2.0\n"
    "Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bKedge1;rport\n"
    "Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-caller;rport=25070;received=127.0.0.1\n"
    "Max-Forwards: 69\n"
    "To: <sip:bob@127.0.0.1>\n"
    "CSeq: 1 INVITE\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 10\n"
    "\n"
    "v=0\n"
    "s=-\n"
    "\n"
    "----------------------------------------------- 2026-11-26 09:44:04.024800\n"
    "UDP message sent (436 bytes):\n"
    "\n"
    "SIP/2.0 180 Ringing\n"
    "Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bKedge1;rport, SIP/2.0/UDP 127.0.0.1:25070\n"
    "To: <sip:bob@127.0.0.1>;tag=callee1\n"
    "CSeq: 1 INVITE\n"
    "Content-Length: 0\n"
    "\n"
    "\n"
    "----------------------------------------------- 2026-11-26 09:44:04.130674\n"
    "TCP message received [261] bytes :\n"
    "\n"
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/TCP 127.0.0.1:25070;branch=z9hG4bK-cancel;rport=25070\n"
    "To: <sip:bob@127.0.0.1>;tag=edge1\n"
    "CSeq: 1 CANCEL\n"
    "Content-Length: 0\n"
    "\n"
)


def test_trace_gives_each_message_with_direction_and_headers() -> None:
    invite, ringing, ok = parse_trace(TRACE)

    assert (invite.direction, invite.transport) == ("received", "UDP")
    assert invite.start_line == "INVITE sip:bob@127.0.0.1:25080;transport=udp SIP/2.0"
    assert invite.summary() == "INVITE"
    assert len(invite.values("via")) == 2
    assert invite.top_branch == "z9hG4bKedge1"
    assert invite.header("Max-Forwards") == "69"
    assert "v=0" not in [name for name, _ in invite.headers]  # the body is not a header

    assert ringing.direction == "sent"
    assert ringing.summary() == "180 INVITE"
    assert ringing.top_branch == "z9hG4bKedge1"
    assert len(ringing.values("Via")) == 1
    assert len(ringing.entries("Via")) == 2

    assert (ok.direction, ok.transport) == ("received", "TCP")
    assert ok.status == 200
    assert ok.summary() == "200 CANCEL"
    assert ok.header("To").endswith(";tag=edge1")


def test_entries_split_only_at_commas_between_values() -> None:
    (message,) = parse_trace(
        "----------------------------------------------- 2026-11-26 09:44:04.024492\n"
        "UDP message received [99] bytes :\n"
        "\n"
        "SIP/2.0 200 OK\n"
        'Contact: "Bob, at home" <sip:bob@127.0.0.1;x=a,b>;expires=60, <sip:bob@10.0.0.1>\n'
        "Record-Route: <sip:127.0.0.1:5060;lr>\n"
        "CSeq: 1 REGISTER\n"
        "\n"
    )
    assert message.entries("Contact") == [
        '"Bob, at home" <sip:bob@127.0.0.1;x=a,b>;expires=60',
        "<sip:bob@10.0.0.1>",
    ]
    assert message.entries("Record-Route") == ["<sip:127.0.0.1:5060;lr>"]
    assert message.entries("Route") == []


def test_trace_without_messages_is_empty() -> None:
    assert parse_trace("") == []
    assert parse_trace("Problem EAGAIN on socket  7 and poll_idx  is 1 \n") == []


def _response(to_tag: str) -> str:
    return (
        "----------------------------------------------- 2026-11-26 09:44:04.130684\n"
        "UDP message received [277] bytes :\n"
        "\n"
        "SIP/2.0 487 Request Terminated\n"
        "Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-inv1;rport=25070\n"
        f"To: <sip:bob@127.0.0.1>;tag={to_tag}\n"
        "CSeq: 1 INVITE\n"
        "Content-Length: 0\n"
        "\n"
    )


def test_received_drops_retransmissions_but_keeps_other_responses() -> None:
    trace = _response("edge1") + _response("edge1") + _response("callee1")
    run = SippRun(
        name="caller",
        command=("sipp",),
        port=25070,
        returncode=0,
        stats={},
        errors="",
        trace=trace,
        screen="",
        output="",
    )

    assert [m.header("To") for m in run.received()] == [
        "<sip:bob@127.0.0.1>;tag=edge1",
        "<sip:bob@127.0.0.1>;tag=callee1",
    ]
    assert run.times_received("487 INVITE") == 3
