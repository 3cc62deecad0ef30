"""Worker branches read back from raw responses, the hand-off datagram, and the processor's
own top Via branch replaced when workers route responses by it. No sockets."""

from __future__ import annotations

import pytest

from edgeport._proto import processor_pb2
from edgeport.convert import build_forward_request, to_sip_message
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message
from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.workers.branch import response_worker, worker_branch_factory
from edgeport.workers.handoff import Handoff, HandoffError, decode, encode


def sip(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


RINGING = sip(
    """SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKw1-5f2c9a01d3e4b6a7
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKw0-caller;rport
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>;tag=b1
Call-ID: c1@test
CSeq: 1 INVITE
Content-Length: 0

"""
)


def test_worker_branches_start_with_the_magic_cookie_and_name_the_worker() -> None:
    new_branch = worker_branch_factory(3)
    first, second = new_branch(), new_branch()
    assert first.startswith("z9hG4bKw3-")
    assert first != second


def test_negative_worker_index_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        worker_branch_factory(-1)


def test_the_top_via_of_a_response_names_its_worker() -> None:
    assert response_worker(RINGING) == 1


def test_only_the_first_value_of_the_top_via_counts() -> None:
    response = sip(
        """SIP/2.0 200 OK
v: SIP/2.0/UDP 127.0.0.1:5060 ; branch = z9hG4bKedge , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKw1-x
Call-ID: c2@test
CSeq: 1 INVITE
Content-Length: 0

"""
    )
    assert response_worker(response) is None


def test_compact_via_with_spaces_is_read() -> None:
    response = sip(
        """SIP/2.0 200 OK
Call-ID: c3@test
v: SIP/2.0/TCP 127.0.0.1:5060 ;Branch= z9hG4bKw12-abc
CSeq: 1 INVITE
Content-Length: 0

"""
    )
    assert response_worker(response) == 12


@pytest.mark.parametrize(
    "data",
    [
        # A request, even with a worker branch on top: requests are never handed off.
        sip(
            """INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKw1-abc
Content-Length: 0

"""
        ),
        # A branch of someone else's.
        sip(
            """SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK776asdhds
Content-Length: 0

"""
        ),
        # A Via-like header in the body does not count.
        sip(
            """SIP/2.0 200 OK
Content-Length: 40

Via: SIP/2.0/UDP x;branch=z9hG4bKw1-abc
"""
        ),
        b"",
        b"SIP/2.0 200 OK",
    ],
)
def test_no_worker_when_the_top_via_names_none(data: bytes) -> None:
    assert response_worker(data) is None


def test_a_handoff_survives_the_datagram() -> None:
    handoff = Handoff(
        "response",
        RINGING,
        Peer(Transport.UDP, "::1", 40001),
        Peer(Transport.UDP, "127.0.0.1", 5060),
    )
    assert decode(encode(handoff)) == handoff


@pytest.mark.parametrize(
    "datagram",
    [b"", b"EPH", b"XXXX\x00\x02{}", b"EPH1\x00\x02{}", b"EPH1\x00\x05{oops", b"EPH1\x00\x10{}"],
)
def test_a_datagram_that_is_not_a_handoff_is_refused(datagram: bytes) -> None:
    with pytest.raises(HandoffError):
        decode(datagram)


def test_a_processor_branch_is_replaced_by_a_worker_branch_only_when_asked() -> None:
    original = parse_message(
        sip(
            """INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-caller;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>
Call-ID: c4@test
CSeq: 1 INVITE
Content-Length: 0

"""
        )
    )
    assert isinstance(original, Request)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(original))
    old_vias = list(reply.message.via)
    del reply.message.via[:]
    reply.message.via.add(
        host="127.0.0.1", port=5060, transport="UDP", branch="z9hG4bKprocessor", r_port_flag=True
    )
    reply.message.via.extend(old_vias)

    def vias(replace: bool) -> list[str]:
        forwarded = build_forward_request(
            reply, original, branch_factory=lambda: "z9hG4bKw1-own", replace_branch=replace
        )
        return forwarded.request.headers.get_all("Via")

    assert vias(False) == [
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKprocessor;rport",
        "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-caller;rport",
    ]
    assert vias(True) == [
        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKw1-own;rport",
        "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-caller;rport",
    ]


def test_the_caller_s_own_via_keeps_its_branch_when_the_processor_adds_none() -> None:
    # A processor that forwards without a Via of its own (the top Via is the
    # caller's): edgeport's branch must never replace the caller's, whose
    # responses are matched by it.
    original = parse_message(
        sip(
            """OPTIONS sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-caller;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>
Call-ID: c5@test
CSeq: 1 OPTIONS
Content-Length: 0

"""
        )
    )
    assert isinstance(original, Request)
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(original))
    forwarded = build_forward_request(
        reply, original, branch_factory=lambda: "z9hG4bKw1-own", replace_branch=True
    )
    assert forwarded.request.headers.get_all("Via") == [
        "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-caller;rport"
    ]
