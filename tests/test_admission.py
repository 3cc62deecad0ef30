"""Admission in the proxy, without sockets: retransmissions recognised unparsed, call budgets."""

from __future__ import annotations

import pytest

from edgeport.admission import CallBudget, Routing, routing_key
from edgeport.sip.transport import Transport
from edgeport.transports import InboundMessage, Peer

LOCAL = Peer(Transport.UDP, "127.0.0.1", 5060)
ALICE = Peer(Transport.UDP, "192.0.2.1", 5070)

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK-reg1;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-below\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:alice@example.com>\r\n"
    b"Call-ID: reg1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def inbound(data: bytes, peer: Peer = ALICE) -> InboundMessage:
    return InboundMessage(data, peer, None, LOCAL, 0.0)


def test_key_is_method_top_branch_and_source() -> None:
    assert routing_key(inbound(REGISTER)) == (
        b"REGISTER",
        b"z9hG4bK-reg1",
        "192.0.2.1",
        5070,
        "udp",
    )


def test_key_reads_compact_and_odd_case_via() -> None:
    data = (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1:5070 ; BRANCH = z9hG4bK-m1, "
        b"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-x\r\n"
        b"Call-ID: m1\r\n\r\n"
    )
    assert routing_key(inbound(data)) == (b"MESSAGE", b"z9hG4bK-m1", "192.0.2.1", 5070, "udp")


@pytest.mark.parametrize(
    "data",
    [
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-r\r\n\r\n",
        # INVITE retransmissions must reach the transaction layer (it resends 100 Trying).
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-i\r\n\r\n",
        # RFC 2543 branches are not unique enough to key on.
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=1\r\n\r\n",
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n\r\n",
        b"garbage",
    ],
)
def test_no_key(data: bytes) -> None:
    assert routing_key(inbound(data)) is None


def test_retransmission_of_a_request_in_routing_is_recognised_until_it_ends() -> None:
    routing = Routing()
    assert not routing.is_retransmission(inbound(REGISTER))

    key = routing.begin(inbound(REGISTER))

    assert key is not None
    assert routing.is_retransmission(inbound(REGISTER))
    # Same bytes from elsewhere, or another transaction from the same client: not it.
    assert not routing.is_retransmission(inbound(REGISTER, Peer(Transport.UDP, "192.0.2.9", 5070)))
    other = REGISTER.replace(b"branch=z9hG4bK-reg1", b"branch=z9hG4bK-reg2")
    assert not routing.is_retransmission(inbound(other))
    # A second begin of the same key is not tracked twice (and not ended twice).
    assert routing.begin(inbound(REGISTER)) is None

    routing.end(key)

    assert not routing.is_retransmission(inbound(REGISTER))
    assert len(routing) == 0


def test_call_budget() -> None:
    budget = CallBudget(2)
    assert budget.try_take()
    assert budget.try_take()
    assert not budget.try_take()
    budget.give_back()
    assert budget.try_take()
    assert budget.in_use == 2
    with pytest.raises(ValueError, match="at least one"):
        CallBudget(0)
