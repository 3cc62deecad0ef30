"""Choosing TCP for a request too large for UDP (RFC 3261 §18.1.1), without sockets:
the size test, the Via rewrite, the fallback, and the bound on the TCP connect."""

from __future__ import annotations

from collections import Counter

import pytest
import trio
import trio.testing

from edgeport.proxy.large_requests import (
    LARGE_REQUESTS,
    MAX_NO_TCP_PEERS,
    NO_TCP_MEMORY,
    TCP_CONNECT_TIMEOUT,
    LargeRequests,
)
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message
from edgeport.sip.transport import Transport
from edgeport.transports import Connection, Peer, SendError
from edgeport.transports.connections import ConnectionTable
from edgeport.transports.sending import Sender
from tests.support.ua import sip

UDP_POINT = Peer(Transport.UDP, "192.0.2.1", 5060)
PHONE = Peer(Transport.UDP, "198.51.100.7", 5060)


def request(*, via_port: str = ":5060", body_bytes: int = 0) -> Request:
    body = "a" * body_bytes
    parsed = parse_message(
        sip(
            f"""INVITE sip:bob@198.51.100.7 SIP/2.0
v: SIP/2.0/UDP 192.0.2.1{via_port};branch=z9hG4bK-edge;rport
v: SIP/2.0/WS abc.invalid;branch=z9hG4bK-browser
Max-Forwards: 69
f: <sip:alice@example.com>;tag=a
t: <sip:bob@example.com>
i: large@test
CSeq: 1 INVITE
c: text/plain
l: {len(body)}

"""
        )
        + body.encode()
    )
    assert isinstance(parsed, Request)
    return parsed


class FakeConnection(Connection):
    async def _send(self, data: bytes) -> None:
        raise AssertionError("not sent here")

    async def aclose_transport(self) -> None:
        return None


class Opener:
    """A stream opener that connects, refuses, or never answers."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.asked: list[Peer] = []

    async def connection_to(self, peer: Peer, *, connect_timeout: float) -> Connection:
        self.asked.append(peer)
        if self.outcome == "refused":
            raise SendError(f"cannot connect to {peer}: Connection refused")
        local = Peer(Transport.TCP, "192.0.2.1", 5070)
        return FakeConnection("tcp-1", Transport.TCP, peer, local, outbound=True)


def large(
    outcome: str = "accept",
    *,
    tcp_port: int = 5070,
    limit: int | None = 1300,
    opener: Opener | None = None,
) -> LargeRequests:
    points = [UDP_POINT, Peer(Transport.TCP, "192.0.2.1", tcp_port)]
    return LargeRequests(limit, opener or Opener(outcome), points)


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_the_limit_is_the_request_size_in_bytes_on_the_wire(extra: int) -> None:
    base = len(request(body_bytes=100).to_bytes()) - 100  # Content-Length of 3 digits
    sized = request(body_bytes=1300 - base + extra)
    assert len(sized.to_bytes()) == 1300 + extra
    assert large().too_large(sized, PHONE) is (extra > 0)


def test_only_udp_next_hops_are_concerned() -> None:
    big = request(body_bytes=4000)
    for transport in (Transport.TCP, Transport.TLS, Transport.WS, Transport.WSS):
        assert not large().too_large(big, Peer(transport, "198.51.100.7", 5060))
    assert not large(limit=None).too_large(big, PHONE)


def test_without_a_tcp_listener_large_requests_stay_on_udp() -> None:
    only_udp = LargeRequests(1300, Opener("accept"), [UDP_POINT])
    assert not only_udp.too_large(request(body_bytes=4000), PHONE)


async def test_the_top_via_says_tcp_and_names_the_tcp_listener() -> None:
    big = request(body_bytes=4000)
    destination = await large().destination(big, PHONE)
    assert destination.peer == Peer(Transport.TCP, "198.51.100.7", 5060)
    assert destination.connection is not None
    wire = big.to_bytes().decode()
    # RFC 3261 §18.1.1: transport changed in the top Via; the branch (the transaction) kept.
    assert "\r\nVia: SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bK-edge;rport\r\n" in wire
    assert "\r\nVia: SIP/2.0/WS abc.invalid;branch=z9hG4bK-browser\r\n" in wire


async def test_a_via_without_port_keeps_none_when_tcp_listens_on_5060_too() -> None:
    big = request(via_port="", body_bytes=4000)
    await large(tcp_port=5060).destination(big, PHONE)
    assert big.top_via.transport == "TCP"
    assert big.top_via.port is None
    big = request(via_port="", body_bytes=4000)
    await large(tcp_port=5070).destination(big, PHONE)
    assert big.top_via.port == 5070


async def test_a_via_naming_another_port_keeps_it() -> None:
    big = request(via_port=":5999", body_bytes=4000)
    await large().destination(big, PHONE)
    assert (big.top_via.transport, big.top_via.port) == ("TCP", 5999)


async def test_a_refused_tcp_connect_leaves_the_request_on_udp_and_is_counted() -> None:
    big = request(body_bytes=4000)
    before = LARGE_REQUESTS.labels(result="udp_fallback").value
    destination = await large("refused").destination(big, PHONE)
    assert destination.peer == PHONE
    assert destination.connection is None
    assert big.top_via.transport == "UDP"
    assert LARGE_REQUESTS.labels(result="udp_fallback").value == before + 1


async def test_a_next_hop_that_never_answers_the_tcp_connect_is_given_up_after_2_s(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started = trio.current_time()

    async def never(transport: Transport, host: str, port: int) -> Connection:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    sender = Sender(ConnectionTable(), never, Counter())
    with pytest.raises(SendError, match="within 2 s"):
        await sender.connection_to(
            Peer(Transport.TCP, "198.51.100.7", 5060), connect_timeout=TCP_CONNECT_TIMEOUT
        )
    assert trio.current_time() - started == pytest.approx(TCP_CONNECT_TIMEOUT)


async def test_an_open_connection_to_the_next_hop_is_reused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    table = ConnectionTable()
    peer = Peer(Transport.TCP, "198.51.100.7", 5060)
    conn = FakeConnection("tcp-7", Transport.TCP, peer, peer, outbound=False)
    table.add(conn)

    async def must_not(transport: Transport, host: str, port: int) -> Connection:
        raise AssertionError("connected again")

    sender = Sender(table, must_not, Counter())
    assert await sender.connection_to(peer, connect_timeout=TCP_CONNECT_TIMEOUT) is conn


async def test_a_next_hop_that_took_no_tcp_is_not_asked_again_for_a_while(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A trunk whose firewall drops TCP would hold up every large INVITE otherwise."""
    opener = Opener("refused")
    chooser = large(opener=opener)
    for _ in range(3):
        assert (await chooser.destination(request(body_bytes=4000), PHONE)).peer == PHONE
    assert len(opener.asked) == 1
    await trio.sleep(NO_TCP_MEMORY)
    opener.outcome = "accept"
    destination = await chooser.destination(request(body_bytes=4000), PHONE)
    assert destination.peer.transport is Transport.TCP
    assert len(opener.asked) == 2


async def test_the_memory_of_next_hops_without_tcp_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    opener = Opener("refused")
    chooser = large(opener=opener)
    for n in range(MAX_NO_TCP_PEERS + 1):
        peer = Peer(Transport.UDP, f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 5060)
        await chooser.destination(request(body_bytes=4000), peer)
    assert len(chooser._no_tcp) == MAX_NO_TCP_PEERS
    first = Peer(Transport.UDP, "10.0.0.0", 5060)  # the oldest, forgotten: asked again
    await chooser.destination(request(body_bytes=4000), first)
    assert opener.asked[-1] == Peer(Transport.TCP, "10.0.0.0", 5060)
    assert len(opener.asked) == MAX_NO_TCP_PEERS + 2


async def test_a_large_request_without_a_via_is_left_to_the_send_to_refuse() -> None:
    no_via = request(body_bytes=4000)
    no_via.headers.remove("v")
    assert b"\r\nVia:" not in no_via.to_bytes()
    assert large().too_large(no_via, PHONE)
    opener = Opener("accept")
    destination = await large(opener=opener).destination(no_via, PHONE)
    assert destination.peer == PHONE
    assert opener.asked == []
