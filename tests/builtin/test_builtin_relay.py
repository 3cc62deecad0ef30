"""The built-in processor's relay rule, decided on protobuf MessageRequests (no sockets).

The EdgePort of these requests (see test_builtin_routing.py) has localnet
10.0.0.1/24 and external address 203.0.113.5; 192.0.2.0/24 and
198.51.100.0/24 are outside, on the Internet. Each attack is what an
unauthenticated client would send to make the EdgePort reach a host it
chose.
"""

from __future__ import annotations

import ipaddress
import logging

import pytest

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import TCP, UDP, WS
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.config import StaticPeer
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.sip.transport import Transport
from tests.builtin.test_builtin_routing import (
    LISTENING_POINTS,
    RT,
    FakeClock,
    Fields,
    register_alice,
    request,
    route_uris,
    uri,
    uri_of,
    via,
)

CARRIER = StaticPeer("2000", "198.51.100.50", 5060, Transport.UDP)
CARRIER_GATEWAY = ("192.0.2.99", 5070)  # answers the carrier's calls, outside every network
OUTSIDE = "192.0.2.44"  # a host on the Internet
INTRUDER = ("203.0.113.66", 5060, UDP)  # an unauthenticated client on the Internet


def make_router(
    clock: FakeClock | None = None,
    *,
    peers: dict[str, StaticPeer] | None = None,
    relay_to: list[str] | None = None,
) -> Router:
    if relay_to is None:  # the default: the localnets of each request
        return Router(Registrar(clock or FakeClock()), peers=peers)
    networks = [ipaddress.ip_network(n) for n in relay_to]
    return Router(Registrar(clock or FakeClock()), peers=peers, relay_to=networks)


def refused(reply: MessageResponse) -> bool:
    message = reply.message
    return (
        message.WhichOneof("message_type") == "response_type"
        and message.response_type == RT.FORBIDDEN
        and message.reason_phrase == "Not Relaying"
    )


def forwarded(reply: MessageResponse) -> bool:
    return reply.message.WhichOneof("message_type") == "request_uri"


def new_invite(
    target: Fields,
    *,
    sender: tuple[str, int, int] = INTRUDER,
    routes: list[Fields] | None = None,
    contact: Fields | None = None,
    call_id: str = "attack-1",
) -> MessageRequest:
    message = request(
        Method.INVITE,
        target,
        vias=[via(sender[0], sender[1], rport=sender[1])],
        to=uri(target["user"], target["host"]),
        contact=contact or uri("caller", sender[0], sender[1]),
        routes=routes or [],
        sender=sender,
    )
    message.ref = call_id
    message.message.call_id.call_id = call_id
    return message


def in_dialog(
    method: Method,
    target: Fields,
    *,
    call_id: str,
    sender: tuple[str, int, int],
    routes: list[Fields] | None = None,
    cseq: int = 2,
) -> MessageRequest:
    message = request(
        method,
        target,
        vias=[via(sender[0], sender[1], rport=sender[1])],
        to=uri(target["user"], target["host"]),
        to_tag="dialog-tag",
        routes=[uri("", "10.0.0.1", 5060, "udp", lr=True), *(routes or [])],
        sender=sender,
    )
    message.ref = call_id
    message.message.call_id.call_id = call_id
    del message.message.extensions[:]
    message.message.extensions.add(name="CSeq", value=f"{cseq} {Method.Name(method)}")
    return message


def answer(
    to: MessageRequest,
    *,
    status: int = 200,
    contact: tuple[str, int],
    sender: tuple[str, int, int],
    record_routes: list[Fields] | None = None,
) -> MessageRequest:
    """The response ``to``'s destination sends back, as the EdgePort converts it."""
    forwarded_request = to.message
    message = sipmessage_pb2.SIPMessage(
        response_type=RT.OK if status == 200 else RT.RINGING,
        reason_phrase="OK" if status == 200 else "Ringing",
        to={"address": forwarded_request.to.address, "tag": "callee-tag"},
        via=[
            via("10.0.0.1", 5060, branch="z9hG4bKedge"),
            *({"host": v.host, "port": v.port, "transport": v.transport} for v in to.message.via),
        ],
        record_route=[{"address": {"uri": r}} for r in record_routes or []],
        extensions=list(forwarded_request.extensions),
    )
    message.call_id.call_id = forwarded_request.call_id.call_id
    message.contact.address.uri.CopyFrom(sipmessage_pb2.SipURI(**uri("gw", *contact)))
    message.contact.expires = -1
    message.contact.q_value = -1.0
    host, port, transport = sender
    return MessageRequest(
        ref=forwarded_request.call_id.call_id,
        method=to.method,
        sender={"host": host, "port": port, "transport": transport},
        listening_points=LISTENING_POINTS,
        external_addrs=["203.0.113.5"],
        localnets=["10.0.0.1/24"],
        message=message,
        metadata={"statusCode": str(status)},
    )


# -- the open relay ------------------------------------------------------------


def test_open_relay_invite_to_any_host_and_port_is_refused_with_403(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.builtin")
    router = make_router()
    reply = router.process(new_invite(uri("x", OUTSIDE, 22, "tcp"), call_id="scan-22"))
    assert refused(reply)
    lines = [r.getMessage() for r in caplog.records if r.name == "edgeport.builtin.relay"]
    assert len(lines) == 1
    assert "scan-22" in lines[0]
    assert f"sip:x@{OUTSIDE}:22;transport=tcp" in lines[0]


def test_open_relay_preloaded_route_is_refused_with_403() -> None:
    router = make_router()
    # The Request-URI is inside the localnets; the Route is where it would really go.
    reply = router.process(
        new_invite(uri("x", "10.0.0.44"), routes=[uri("", OUTSIDE, 5060, "tcp", lr=True)])
    )
    assert refused(reply)


def test_open_relay_to_tag_does_not_turn_a_request_into_an_allowed_one() -> None:
    router = make_router()
    for method in (Method.INVITE, Method.BYE, Method.MESSAGE, Method.ACK):
        reply = router.process(
            in_dialog(method, uri("x", OUTSIDE, 5060, "tcp"), call_id="fake-1", sender=INTRUDER)
        )
        assert refused(reply), Method.Name(method)
    # Nor does a route after the EdgePort's own.
    reply = router.process(
        in_dialog(
            Method.BYE,
            uri("x", "10.0.0.44"),
            call_id="fake-2",
            sender=INTRUDER,
            routes=[uri("", OUTSIDE, 5080, "udp", lr=True)],
        )
    )
    assert refused(reply)


def test_open_relay_host_names_are_never_inside_a_network() -> None:
    router = make_router(relay_to=["0.0.0.0/0"])
    # Not resolved here: a name could point anywhere, and the EdgePort would resolve it.
    assert refused(router.process(new_invite(uri("x", "pbx.internal.example"))))
    assert refused(router.process(new_invite(uri("x", "127.1"))))
    assert forwarded(router.process(new_invite(uri("x", OUTSIDE))))


def test_open_relay_ipv4_mapped_ipv6_is_judged_as_its_ipv4_address() -> None:
    router = make_router()
    assert forwarded(router.process(new_invite(uri("x", "[::ffff:10.0.0.44]"))))
    assert refused(router.process(new_invite(uri("x", f"[::ffff:{OUTSIDE}]"))))


def test_target_inside_the_localnets_is_relayed_by_default() -> None:
    router = make_router()
    reply = router.process(new_invite(uri("pbx", "10.0.0.44", 5080)))
    assert uri_of(reply) == ("pbx", "10.0.0.44", 5080, "")


def test_relay_to_replaces_the_localnets() -> None:
    router = make_router(relay_to=["192.0.2.0/24"])
    assert forwarded(router.process(new_invite(uri("x", OUTSIDE))))
    assert refused(router.process(new_invite(uri("x", "10.0.0.44"))))


def test_empty_relay_to_leaves_registrations_and_peers_only() -> None:
    router = make_router(relay_to=[], peers={"2000": CARRIER})
    router.process(register_alice())
    assert refused(router.process(new_invite(uri("x", "10.0.0.44"))))
    assert uri_of(router.process(new_invite(uri("alice", "10.0.0.1"))))[1] == "192.168.1.20"
    assert uri_of(router.process(new_invite(uri("2000", "10.0.0.1"))))[1] == CARRIER.host


def test_a_static_peer_is_a_host_and_a_port_not_the_whole_host() -> None:
    router = make_router(peers={"2000": CARRIER})
    peer_route = [uri("", CARRIER.host, CARRIER.port, "udp", lr=True)]
    assert forwarded(router.process(new_invite(uri("x", "10.0.0.44"), routes=peer_route)))
    other_port = [uri("", CARRIER.host, 22, "tcp", lr=True)]
    assert refused(router.process(new_invite(uri("x", "10.0.0.44"), routes=other_port)))


def test_websocket_alias_is_reached_only_over_websocket() -> None:
    router = make_router()
    assert forwarded(router.process(new_invite(uri("c", "k3j4h5.invalid", -1, "ws"))))
    assert refused(router.process(new_invite(uri("c", "k3j4h5.invalid", 5060, "tcp"))))


# -- dialogs this processor routed ----------------------------------------------------


def call_the_carrier(router: Router, *, call_id: str) -> MessageRequest:
    """Registered alice calls the carrier's number; returns the INVITE as forwarded."""
    router.process(register_alice())
    alice = ("198.51.100.7", 40123, UDP)
    outgoing = new_invite(uri("2000", "203.0.113.5"), sender=alice, call_id=call_id)
    reply = router.process(outgoing)
    assert uri_of(reply) == ("2000", CARRIER.host, CARRIER.port, "")
    sent = MessageRequest()
    sent.CopyFrom(outgoing)
    sent.message.CopyFrom(reply.message)
    return sent


def test_carrier_gateway_answering_from_elsewhere_gets_the_in_dialog_requests() -> None:
    router = make_router(peers={"2000": CARRIER})
    sent = call_the_carrier(router, call_id="call-carrier")
    carrier = (CARRIER.host, 5060, UDP)
    router.process(answer(sent, contact=CARRIER_GATEWAY, sender=carrier))
    alice = ("198.51.100.7", 40123, UDP)
    gateway = uri("gw", *CARRIER_GATEWAY)
    for method in (Method.ACK, Method.BYE):
        reply = router.process(in_dialog(method, gateway, call_id="call-carrier", sender=alice))
        assert uri_of(reply) == ("gw", *CARRIER_GATEWAY, ""), Method.Name(method)
    # The hop belongs to that dialog only.
    other = router.process(in_dialog(Method.BYE, gateway, call_id="another", sender=alice))
    assert refused(other)


def test_early_dialog_answer_teaches_the_gateway_too() -> None:
    router = make_router(peers={"2000": CARRIER})
    sent = call_the_carrier(router, call_id="call-early")
    router.process(
        answer(sent, status=180, contact=CARRIER_GATEWAY, sender=(CARRIER.host, 5060, UDP))
    )
    prack = in_dialog(
        Method.PRACK,
        uri("gw", *CARRIER_GATEWAY),
        call_id="call-early",
        sender=("198.51.100.7", 40123, UDP),
    )
    assert forwarded(router.process(prack))


def test_answer_from_an_address_that_is_not_the_destination_teaches_nothing() -> None:
    router = make_router(peers={"2000": CARRIER})
    sent = call_the_carrier(router, call_id="call-forged")
    # A stray 200 for the same call, from an intruder: the EdgePort passes it on.
    router.process(answer(sent, contact=(OUTSIDE, 5060), sender=INTRUDER))
    bye = in_dialog(Method.BYE, uri("gw", OUTSIDE, 5060), call_id="call-forged", sender=INTRUDER)
    assert refused(router.process(bye))


def test_answer_to_a_request_never_forwarded_teaches_nothing() -> None:
    router = make_router(peers={"2000": CARRIER})
    sent = call_the_carrier(router, call_id="call-real")
    sent.message.call_id.call_id = "call-invented"
    router.process(answer(sent, contact=(OUTSIDE, 5060), sender=(CARRIER.host, 5060, UDP)))
    bye = in_dialog(Method.BYE, uri("gw", OUTSIDE, 5060), call_id="call-invented", sender=INTRUDER)
    assert refused(router.process(bye))


def test_registered_callee_cannot_plant_a_contact_for_in_dialog_relay() -> None:
    router = make_router()
    router.process(register_alice())
    to_alice = new_invite(uri("alice", "203.0.113.5"), sender=("10.0.0.60", 5060, UDP))
    reply = router.process(to_alice)
    sent = MessageRequest()
    sent.CopyFrom(to_alice)
    sent.message.CopyFrom(reply.message)
    # alice (she registered without credentials: anyone can be alice) answers with a victim.
    router.process(answer(sent, contact=(OUTSIDE, 5060), sender=("198.51.100.7", 40123, UDP)))
    bye = in_dialog(
        Method.BYE,
        uri("gw", OUTSIDE, 5060),
        call_id="attack-1",
        sender=("198.51.100.7", 40123, UDP),
    )
    assert refused(router.process(bye))


def test_trusted_caller_contact_is_where_the_callee_sends_its_bye() -> None:
    router = make_router(peers={"2000": CARRIER})
    router.process(register_alice())
    carrier = (CARRIER.host, 5060, UDP)
    inbound = new_invite(
        uri("alice", "203.0.113.5"),
        sender=carrier,
        contact=uri("gw", *CARRIER_GATEWAY),
        call_id="from-carrier",
    )
    assert forwarded(router.process(inbound))
    alice = ("198.51.100.7", 40123, UDP)
    bye = in_dialog(Method.BYE, uri("gw", *CARRIER_GATEWAY), call_id="from-carrier", sender=alice)
    assert uri_of(router.process(bye)) == ("gw", *CARRIER_GATEWAY, "")


def test_untrusted_caller_contact_is_not_remembered() -> None:
    router = make_router()
    router.process(register_alice())
    inbound = new_invite(
        uri("alice", "203.0.113.5"), contact=uri("gw", OUTSIDE, 5060), call_id="from-intruder"
    )
    assert forwarded(router.process(inbound))
    alice = ("198.51.100.7", 40123, UDP)
    bye = in_dialog(Method.BYE, uri("gw", OUTSIDE, 5060), call_id="from-intruder", sender=alice)
    assert refused(router.process(bye))


def test_carrier_record_route_hop_is_remembered_with_its_contact() -> None:
    router = make_router(peers={"2000": CARRIER})
    sent = call_the_carrier(router, call_id="call-rr")
    sbc = uri("", "198.51.100.51", 5060, "udp", lr=True)
    router.process(
        answer(sent, contact=CARRIER_GATEWAY, sender=(CARRIER.host, 5060, UDP), record_routes=[sbc])
    )
    bye = in_dialog(
        Method.BYE,
        uri("gw", *CARRIER_GATEWAY),
        call_id="call-rr",
        sender=("198.51.100.7", 40123, UDP),
        routes=[sbc],
    )
    assert route_uris(router.process(bye)) == [("198.51.100.51", 5060, "udp", True)]


# -- REGISTER: where a binding is reached --------------------------------------------


def test_register_via_received_written_by_the_client_does_not_move_the_binding() -> None:
    # Over UDP, without rport and with a sent-by equal to its address, a client's own
    # received= is left as it wrote it; it named an inside host and TCP.
    register = request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via(INTRUDER[0], 5060, "TCP", received="10.0.0.99")],
        to=uri("mallory", "203.0.113.5"),
        contact=uri("mallory", "10.0.0.99", 5060, "tcp"),
        expires=600,
        sender=INTRUDER,
    )
    router = make_router()
    router.process(register)
    reply = router.process(
        new_invite(uri("mallory", "203.0.113.5"), sender=("10.0.0.60", 5060, UDP))
    )
    # Reached where the REGISTER really came from, over the transport it came on.
    assert route_uris(reply) == [(INTRUDER[0], 5060, "udp", True)]


def test_binding_over_a_connection_is_reached_over_that_transport() -> None:
    register = request(
        Method.REGISTER,
        uri("", "203.0.113.5"),
        vias=[via("df7jal23ls0d.invalid", -1, "WS", received="198.51.100.9", rport=53211)],
        to=uri("carol", "203.0.113.5"),
        contact=uri("carol", "198.51.100.9", 5060, "udp"),
        expires=600,
        sender=("198.51.100.9", 53211, WS),
    )
    router = make_router()
    router.process(register)
    reply = router.process(new_invite(uri("carol", "203.0.113.5"), sender=("10.0.0.60", 5060, UDP)))
    assert route_uris(reply) == [("198.51.100.9", 53211, "ws", True)]


def test_in_dialog_request_to_a_registered_contact_needs_no_network() -> None:
    router = make_router(relay_to=[])
    router.process(register_alice())
    bye = in_dialog(
        Method.BYE, uri("alice", "192.168.1.20", 5060), call_id="c", sender=("10.0.0.60", 5060, TCP)
    )
    assert route_uris(router.process(bye)) == [("198.51.100.7", 40123, "udp", True)]


def test_open_relay_refusals_flood_the_log_no_more_than_its_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.builtin")
    router = make_router()
    for port in range(1, 201):
        assert refused(router.process(new_invite(uri("x", OUTSIDE, port, "tcp"))))
    lines = [r for r in caplog.records if r.name == "edgeport.builtin.relay"]
    assert 1 <= len(lines) <= 20


def test_websocket_client_answer_teaches_nothing() -> None:
    # Anyone can connect over WebSocket and be called at its .invalid alias.
    router = make_router()
    to_browser = new_invite(uri("c", "k3j4h5.invalid", -1, "ws"), call_id="call-ws")
    reply = router.process(to_browser)
    assert forwarded(reply)
    sent = MessageRequest()
    sent.CopyFrom(to_browser)
    sent.message.CopyFrom(reply.message)
    router.process(answer(sent, contact=(OUTSIDE, 5060), sender=("198.51.100.9", 53211, WS)))
    bye = in_dialog(Method.BYE, uri("gw", OUTSIDE, 5060), call_id="call-ws", sender=INTRUDER)
    assert refused(router.process(bye))


def test_answer_for_a_peer_given_by_name_is_believed_from_any_address() -> None:
    named = StaticPeer("2000", "sbc.carrier.example", 5060, Transport.UDP)
    router = make_router(peers={"2000": named})
    router.process(register_alice())
    alice = ("198.51.100.7", 40123, UDP)
    outgoing = new_invite(uri("2000", "203.0.113.5"), sender=alice, call_id="call-named")
    reply = router.process(outgoing)
    assert uri_of(reply) == ("2000", "sbc.carrier.example", 5060, "")
    sent = MessageRequest()
    sent.CopyFrom(outgoing)
    sent.message.CopyFrom(reply.message)
    router.process(answer(sent, contact=CARRIER_GATEWAY, sender=("198.51.100.50", 5060, UDP)))
    bye = in_dialog(Method.BYE, uri("gw", *CARRIER_GATEWAY), call_id="call-named", sender=alice)
    assert forwarded(router.process(bye))
