"""The built-in processor through a real gRPC channel (grpcio) on 127.0.0.1.

Requests are protobuf literals, as an EdgePort would send them (contract
§2-3): an EdgePort bound to 0.0.0.0 with UDP 5060, TCP 5060 and WS 5062,
external address 203.0.113.5 and localnet 10.0.0.1/24, so its own hosts
are 203.0.113.5 and 10.0.0.1.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import TCP, UDP, WS
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin import serve_builtin_processor
from edgeport.builtin.config import StaticPeer
from edgeport.processor import ProcessorClient, open_processor_client
from edgeport.sip.transport import Transport

RT = sipmessage_pb2.ResponseType
Fields = dict[str, Any]  # protobuf message fields, as keyword values
DEADLINE = 10  # seconds

LISTENING_POINTS = [
    {"host": "0.0.0.0", "port": 5060, "transport": UDP},
    {"host": "0.0.0.0", "port": 5060, "transport": TCP},
    {"host": "0.0.0.0", "port": 5062, "transport": WS},
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def builtin(
    clock: FakeClock | None = None, peers: dict[str, StaticPeer] | None = None
) -> AsyncIterator[ProcessorClient]:
    serve = functools.partial(serve_builtin_processor, peers=peers, clock=clock or FakeClock())
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve, "127.0.0.1", 0)
            async with open_processor_client(f"127.0.0.1:{port}", timeout=3.0) as client:
                yield client
            nursery.cancel_scope.cancel()


def uri(user: str, host: str, port: int = -1, transport: str = "", lr: bool = False) -> Fields:
    return {
        "user": user,
        "host": host,
        "port": port,
        "transport_param": transport,
        "lr_param": lr,
        "ttl_param": -1,
    }


def via(
    host: str,
    port: int,
    transport: str = "UDP",
    *,
    branch: str = "z9hG4bK776asdhds",
    received: str = "",
    rport: int = -1,
) -> Fields:
    return {
        "host": host,
        "port": port,
        "transport": transport,
        "branch": branch,
        "received": received,
        "r_port": rport,
        "r_port_flag": rport != -1,
        "ttl": -1,
    }


def request(
    method: Method,
    request_uri: Fields,
    *,
    vias: list[Fields],
    to: Fields,
    to_tag: str = "",
    contact: Fields | None = None,
    contact_expires: int = -1,
    expires: int | None = None,
    routes: Sequence[Fields] = (),
    max_forwards: int | None = 70,
    sender: tuple[str, int, int] | None = None,
) -> MessageRequest:
    """``sender`` defaults to where the top Via says the request came from, as an
    EdgePort that stamped received/rport would report it (contract §2-3)."""
    message = sipmessage_pb2.SIPMessage(
        request_uri=request_uri,
        to={"address": {"uri": to}, "tag": to_tag},
        via=vias,
        route=[{"address": {"uri": r}} for r in routes],
        extensions=[{"name": "CSeq", "value": f"1 {Method.Name(method)}"}],
    )
    getattr(message, "from").CopyFrom(
        sipmessage_pb2.From(address={"uri": uri("bob", "203.0.113.5")}, tag="a73kszlfl")
    )
    message.call_id.call_id = "843817637684230@998sdasdh09"
    if contact is not None:
        message.contact.address.uri.CopyFrom(sipmessage_pb2.SipURI(**contact))
        message.contact.expires = contact_expires
        message.contact.q_value = -1.0
    if expires is not None:
        message.expires.expires = expires
    if max_forwards is not None:
        message.max_forwards.max_forwards = max_forwards
    host, port, transport = sender or sender_of(vias[0])
    return MessageRequest(
        ref="843817637684230@998sdasdh09",
        edge_port_ref="edgeport-01",
        method=method,
        sender={"host": host, "port": port, "transport": transport},
        listening_points=LISTENING_POINTS,
        external_addrs=["203.0.113.5"],
        localnets=["10.0.0.1/24"],
        message=message,
    )


def sender_of(top_via: Fields) -> tuple[str, int, int]:
    rport = top_via["r_port"]
    port = rport if rport > 0 else top_via["port"]
    transport = {"UDP": UDP, "TCP": TCP, "WS": WS}[top_via["transport"]]
    return (top_via["received"] or top_via["host"], port, transport)


# Alice is behind NAT: her Via says 192.168.1.20:5060, the EdgePort saw 198.51.100.7:40123.
def register_alice(expires: int | None = 600, contact_expires: int = -1) -> MessageRequest:
    return request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via("192.168.1.20", 5060, received="198.51.100.7", rport=40123)],
        to=uri("alice", "203.0.113.5"),
        contact=uri("alice", "192.168.1.20", 5060),
        contact_expires=contact_expires,
        expires=expires,
    )


def invite(
    user: str, host: str = "10.0.0.1", *, sender: tuple[str, int, int] = ("10.0.0.60", 5060, UDP)
) -> MessageRequest:
    return request(
        Method.INVITE,
        uri(user, host),
        vias=[via(sender[0], sender[1])],
        to=uri(user, host),
        contact=uri("bob", sender[0], sender[1]),
        sender=sender,
    )


def uri_of(message: MessageResponse) -> tuple[str, str, int, str]:
    target = message.message.request_uri
    return (target.user, target.host, target.port, target.transport_param)


def route_uris(reply: MessageResponse) -> list[tuple[str, int, str, bool]]:
    return [
        (
            r.address.uri.host,
            r.address.uri.port,
            r.address.uri.transport_param,
            r.address.uri.lr_param,
        )
        for r in reply.message.route
    ]


def record_routes(reply: MessageResponse) -> list[tuple[str, int, str, dict[str, str]]]:
    return [
        (r.address.uri.host, r.address.uri.port, r.address.uri.transport_param, dict(r.parameters))
        for r in reply.message.record_route
    ]


# -- registrar ------------------------------------------------------------


async def test_register_answers_ok_with_the_binding_and_its_remaining_time() -> None:
    clock = FakeClock()
    async with builtin(clock) as client:
        reply = await client.process(register_alice(expires=600))
        assert reply.message.response_type == RT.OK
        assert reply.message.contact.address.uri.host == "192.168.1.20"
        assert reply.message.contact.address.uri.port == 5060
        assert reply.message.contact.expires == 600
        clock.now += 100
        query = register_alice()
        query.message.ClearField("contact")
        reply = await client.process(query)
    assert reply.message.response_type == RT.OK
    assert reply.message.contact.expires == 500


async def test_registrations_are_logged_with_the_aor_as_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.builtin")
    async with builtin() as client:
        await client.process(register_alice(expires=600))
        await client.process(register_alice(expires=0))
    # 203.0.113.5 is the EdgePort's own address: the binding's key drops it, the log does not.
    logged = [r.getMessage() for r in caplog.records if r.name == "edgeport.builtin.router"]
    assert logged == [
        "registered sip:alice@203.0.113.5 -> sip:alice@192.168.1.20:5060 (expires 600)",
        "unregistered sip:alice@203.0.113.5 -> sip:alice@192.168.1.20:5060 (expires 0)",
    ]


async def test_contact_expires_parameter_wins_over_the_expires_header() -> None:
    async with builtin() as client:
        reply = await client.process(register_alice(expires=600, contact_expires=120))
    assert reply.message.contact.expires == 120


async def test_no_expiry_given_means_3600() -> None:
    async with builtin() as client:
        reply = await client.process(register_alice(expires=None))
    assert reply.message.contact.expires == 3600


async def test_binding_expires_on_the_clock() -> None:
    clock = FakeClock()
    async with builtin(clock) as client:
        await client.process(register_alice(expires=60))
        assert uri_of(await client.process(invite("alice")))[1] == "192.168.1.20"
        clock.now += 61
        reply = await client.process(invite("alice"))
    assert reply.message.response_type == RT.NOT_FOUND


async def test_expires_zero_unregisters() -> None:
    async with builtin() as client:
        await client.process(register_alice(expires=600))
        reply = await client.process(register_alice(expires=0))
        assert reply.message.response_type == RT.OK
        assert not reply.message.HasField("contact")
        reply = await client.process(invite("alice"))
    assert reply.message.response_type == RT.NOT_FOUND


async def test_two_contacts_are_listed_and_wildcard_removes_both() -> None:
    async with builtin() as client:
        await client.process(register_alice())
        second = register_alice()
        second.message.contact.address.uri.host = "192.168.1.21"
        reply = await client.process(second)
        assert reply.message.contact.address.uri.host in ("192.168.1.20", "192.168.1.21")
        assert [(e.name, e.value) for e in reply.message.extensions] in (
            [("Contact", "<sip:alice@192.168.1.20:5060>;expires=600")],
            [("Contact", "<sip:alice@192.168.1.21:5060>;expires=600")],
        )
        wildcard = register_alice(expires=0)
        wildcard.message.contact.address.CopyFrom(sipmessage_pb2.Address(wildcard=True))
        reply = await client.process(wildcard)
        assert reply.message.response_type == RT.OK
        assert not reply.message.HasField("contact")
        assert list(reply.message.extensions) == []
        reply = await client.process(invite("alice"))
    assert reply.message.response_type == RT.NOT_FOUND


async def test_wildcard_without_expires_zero_is_a_bad_request() -> None:
    async with builtin() as client:
        await client.process(register_alice())
        wildcard = register_alice(expires=3600)
        wildcard.message.contact.address.CopyFrom(sipmessage_pb2.Address(wildcard=True))
        reply = await client.process(wildcard)
        assert reply.message.response_type == RT.BAD_REQUEST
        reply = await client.process(invite("alice"))
    assert reply.message.request_uri.host == "192.168.1.20"  # still registered


# -- location and routing -------------------------------------------------


async def test_nat_client_gets_its_contact_as_uri_and_a_route_to_where_it_is() -> None:
    async with builtin() as client:
        await client.process(register_alice())
        # Registered at 203.0.113.5, called at 10.0.0.1: both are the EdgePort.
        reply = await client.process(invite("alice", "10.0.0.1"))
    assert uri_of(reply) == ("alice", "192.168.1.20", 5060, "")
    assert route_uris(reply) == [("198.51.100.7", 40123, "udp", True)]


async def test_client_not_behind_nat_gets_no_route() -> None:
    register_bob = request(
        Method.REGISTER,
        uri("", "10.0.0.1"),
        vias=[via("10.0.0.50", 5060)],
        to=uri("bob", "10.0.0.1"),
        contact=uri("bob", "10.0.0.50", 5060),
        expires=600,
    )
    async with builtin() as client:
        await client.process(register_bob)
        reply = await client.process(invite("bob", "203.0.113.5"))
    assert uri_of(reply) == ("bob", "10.0.0.50", 5060, "")
    assert route_uris(reply) == []


async def test_tcp_client_is_reached_at_its_connection_address() -> None:
    register_dave = request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via("198.51.100.8", 5060, "TCP", received="198.51.100.8", rport=50112)],
        to=uri("dave", "203.0.113.5"),
        contact=uri("dave", "198.51.100.8", 5060, "tcp"),
        expires=600,
    )
    async with builtin() as client:
        await client.process(register_dave)
        reply = await client.process(invite("dave"))
    assert uri_of(reply) == ("dave", "198.51.100.8", 5060, "tcp")
    assert route_uris(reply) == [("198.51.100.8", 50112, "tcp", True)]
    assert reply.message.via[0].transport == "TCP"


async def test_websocket_client_keeps_its_invalid_contact_and_gets_no_route() -> None:
    register_carol = request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via("df7jal23ls0d.invalid", -1, "WS", received="198.51.100.9", rport=53211)],
        to=uri("carol", "203.0.113.5"),
        contact=uri("carol", "df7jal23ls0d.invalid", -1, "ws"),
        expires=600,
    )
    async with builtin() as client:
        await client.process(register_carol)
        reply = await client.process(invite("carol"))
    assert uri_of(reply) == ("carol", "df7jal23ls0d.invalid", -1, "ws")
    assert route_uris(reply) == []
    top = reply.message.via[0]
    assert (top.host, top.port, top.transport) == ("203.0.113.5", 5062, "WS")
    # UDP in, WS out: double record-routing, the callee's side on top.
    assert record_routes(reply) == [
        ("203.0.113.5", 5062, "ws", {"r2": "on"}),
        ("10.0.0.1", 5060, "udp", {"r2": "on"}),
    ]


async def test_unknown_user_of_the_edgeport_is_not_found() -> None:
    async with builtin() as client:
        reply = await client.process(invite("nobody", "203.0.113.5"))
    assert reply.message.response_type == RT.NOT_FOUND
    assert not reply.message.HasField("request_uri")


async def test_other_domains_must_match_exactly() -> None:
    register_erin = request(
        Method.REGISTER,
        uri("", "example.com"),
        vias=[via("10.0.0.70", 5060)],
        to=uri("erin", "example.com"),
        contact=uri("erin", "10.0.0.70", 5060),
        expires=600,
    )
    async with builtin() as client:
        await client.process(register_erin)
        at_edge = await client.process(invite("erin", "10.0.0.1"))
        at_domain = await client.process(invite("erin", "example.com"))
    assert at_edge.message.response_type == RT.NOT_FOUND
    assert uri_of(at_domain) == ("erin", "10.0.0.70", 5060, "")


async def test_target_inside_the_localnets_is_forwarded_as_it_is() -> None:
    async with builtin() as client:
        reply = await client.process(invite("uas", "10.0.0.44"))
    assert uri_of(reply) == ("uas", "10.0.0.44", -1, "")
    assert route_uris(reply) == []


async def test_edgeport_host_with_a_port_it_does_not_listen_on_is_another_element() -> None:
    message = invite("uas", "10.0.0.1")
    message.message.request_uri.port = 5090
    async with builtin() as client:
        reply = await client.process(message)
    assert uri_of(reply) == ("uas", "10.0.0.1", 5090, "")


async def test_static_peer_wins_over_registration() -> None:
    peers = {"1000": StaticPeer("1000", "10.0.0.80", 5080, Transport.TCP)}
    register_1000 = request(
        Method.REGISTER,
        uri("", "10.0.0.1"),
        vias=[via("10.0.0.90", 5060)],
        to=uri("1000", "10.0.0.1"),
        contact=uri("1000", "10.0.0.90", 5060),
        expires=600,
    )
    async with builtin(peers=peers) as client:
        await client.process(register_1000)
        reply = await client.process(invite("1000"))
    assert uri_of(reply) == ("1000", "10.0.0.80", 5080, "tcp")
    assert reply.message.via[0].transport == "TCP"


async def test_options_to_the_edgeport_itself_is_answered() -> None:
    options = request(
        Method.OPTIONS,
        uri("", "10.0.0.1", 5060),
        vias=[via("10.0.0.60", 5060)],
        to=uri("", "10.0.0.1"),
    )
    async with builtin() as client:
        reply = await client.process(options)
    assert reply.message.response_type == RT.OK


# -- alterations ------------------------------------------------------------


async def test_forwarded_invite_gets_via_record_route_and_max_forwards() -> None:
    register_bob = request(
        Method.REGISTER,
        uri("", "10.0.0.1"),
        vias=[via("10.0.0.50", 5060)],
        to=uri("bob", "10.0.0.1"),
        contact=uri("bob", "10.0.0.50", 5060),
        expires=600,
    )
    async with builtin() as client:
        await client.process(register_bob)
        first = await client.process(invite("bob", sender=("10.0.0.60", 5060, UDP)))
        second = await client.process(invite("bob", sender=("10.0.0.60", 5060, UDP)))
    vias = first.message.via
    assert len(vias) == 2
    assert (vias[0].host, vias[0].port, vias[0].transport) == ("10.0.0.1", 5060, "UDP")
    assert vias[0].branch.startswith("z9hG4bK")
    assert len(vias[0].branch) > len("z9hG4bK")
    assert vias[0].branch != second.message.via[0].branch
    assert (vias[1].host, vias[1].branch) == ("10.0.0.60", "z9hG4bK776asdhds")
    # Same interface in and out: one Record-Route.
    assert record_routes(first) == [("10.0.0.1", 5060, "udp", {})]
    assert first.message.record_route[0].address.uri.lr_param
    assert first.message.max_forwards.max_forwards == 69


async def test_caller_outside_callee_inside_gets_two_record_routes() -> None:
    async with builtin() as client:
        await client.process(register_alice())
        reply = await client.process(invite("alice", sender=("10.0.0.60", 5060, UDP)))
    # Towards alice (outside the localnets) the EdgePort shows its external address.
    assert reply.message.via[0].host == "203.0.113.5"
    assert record_routes(reply) == [
        ("203.0.113.5", 5060, "udp", {"r2": "on"}),
        ("10.0.0.1", 5060, "udp", {"r2": "on"}),
    ]


async def test_absent_max_forwards_becomes_69_and_zero_is_too_many_hops() -> None:
    no_header = invite("uas", "10.0.0.44")
    no_header.message.ClearField("max_forwards")
    exhausted = invite("uas", "10.0.0.44")
    exhausted.message.max_forwards.max_forwards = 0
    async with builtin() as client:
        forwarded = await client.process(no_header)
        refused = await client.process(exhausted)
    assert forwarded.message.max_forwards.max_forwards == 69
    assert refused.message.response_type == RT.TOO_MANY_HOPS


async def test_message_is_forwarded_without_record_route() -> None:
    message = request(
        Method.MESSAGE,
        uri("uas", "10.0.0.44"),
        vias=[via("10.0.0.60", 5060)],
        to=uri("uas", "10.0.0.44"),
    )
    async with builtin() as client:
        reply = await client.process(message)
    assert list(reply.message.record_route) == []
    assert len(reply.message.via) == 2


async def test_in_dialog_request_pops_the_edgeport_routes_and_keeps_the_uri() -> None:
    bye = request(
        Method.BYE,
        uri("uas", "10.0.0.44", 5080),
        vias=[via("10.0.0.60", 5060)],
        to=uri("uas", "10.0.0.44"),
        to_tag="314159",
        routes=[
            uri("", "10.0.0.1", 5060, "udp", lr=True),
            uri("", "203.0.113.5", 5060, "udp", lr=True),
            uri("", "10.0.0.200", 5060, "udp", lr=True),
        ],
    )
    async with builtin() as client:
        reply = await client.process(bye)
    assert uri_of(reply) == ("uas", "10.0.0.44", 5080, "")
    assert route_uris(reply) == [("10.0.0.200", 5060, "udp", True)]
    assert list(reply.message.record_route) == []
    assert reply.message.max_forwards.max_forwards == 69
    assert reply.message.via[0].branch.startswith("z9hG4bK")


async def test_in_dialog_request_to_a_registered_nat_contact_gets_a_route() -> None:
    bye = request(
        Method.BYE,
        uri("alice", "192.168.1.20", 5060),
        vias=[via("10.0.0.60", 5060)],
        to=uri("alice", "203.0.113.5"),
        to_tag="8321234356",
        routes=[uri("", "10.0.0.1", 5060, "udp", lr=True)],
    )
    async with builtin() as client:
        await client.process(register_alice())
        reply = await client.process(bye)
    assert uri_of(reply) == ("alice", "192.168.1.20", 5060, "")
    assert route_uris(reply) == [("198.51.100.7", 40123, "udp", True)]


async def test_cancel_reaches_the_same_target_as_its_invite() -> None:
    async with builtin() as client:
        await client.process(register_alice())
        cancel = invite("alice")
        cancel.method = Method.CANCEL
        reply = await client.process(cancel)
    assert uri_of(reply) == ("alice", "192.168.1.20", 5060, "")
    assert route_uris(reply) == [("198.51.100.7", 40123, "udp", True)]
    assert list(reply.message.record_route) == []


async def test_response_loses_its_top_via_and_nothing_else() -> None:
    message = sipmessage_pb2.SIPMessage(
        response_type=RT.OK,
        reason_phrase="OK",
        to={"address": {"uri": uri("alice", "203.0.113.5")}, "tag": "8321234356"},
        via=[
            via("203.0.113.5", 5060, branch="z9hG4bKedge1"),
            via("10.0.0.60", 5060, branch="z9hG4bK776asdhds"),
        ],
        record_route=[{"address": {"uri": uri("", "10.0.0.1", 5060, "udp", lr=True)}}],
        extensions=[{"name": "CSeq", "value": "1 INVITE"}],
        body="v=0\r\n",
    )
    response = MessageRequest(
        ref="843817637684230@998sdasdh09",
        method=Method.INVITE,
        sender={"host": "198.51.100.7", "port": 40123, "transport": UDP},
        listening_points=LISTENING_POINTS,
        message=message,
        metadata={"statusCode": "200"},
    )
    expected = sipmessage_pb2.SIPMessage()
    expected.CopyFrom(message)
    del expected.via[0]
    async with builtin() as client:
        reply = await client.process(response)
    assert reply.message == expected
