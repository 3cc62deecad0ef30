"""Loops (RFC 3261 §16.3 item 4, §16.6): a request routed to edgeport itself,
however its address is spelled, or one that comes back through another
element unchanged, is answered 482 at once; a spiral (the request changed on
the way) goes on; Max-Forwards above 70 is lowered on entry.

The processor here routes every request to its Request-URI, as any processor
may: edgeport's loop defences must not depend on what the processor checks.
"""

from __future__ import annotations

import trio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.config import ProcessorConfig, TransportConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import RoutedEdge, address, make_config, start_edgeport
from tests.e2e.test_cancel_and_auth import reply_to
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import Received, UdpUA, sip


def options(ua_port: int, target: str, call_id: str, *, max_forwards: int = 70) -> bytes:
    return sip(
        f"""OPTIONS {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-{call_id};rport
Max-Forwards: {max_forwards}
From: <sip:alice@127.0.0.1>;tag=lp
To: <{target}>
Call-ID: {call_id}
CSeq: 1 OPTIONS
Content-Length: 0

"""
    )


def forward_to_request_uri(request: MessageRequest) -> MessageResponse:
    """A processor that sends every request to its Request-URI: edgeport's Via on
    top (its UDP listening point), Max-Forwards down by one; responses lose it."""
    message = sipmessage_pb2.SIPMessage()
    message.CopyFrom(request.message)
    if message.WhichOneof("message_type") == "response_type":
        del message.via[0]
        return MessageResponse(message=message)
    point = request.listening_points[0]
    vias = [
        sipmessage_pb2.Via(
            host=point.host, port=point.port, transport="UDP", r_port_flag=True, r_port=-1, ttl=-1
        ),
        *message.via,
    ]
    del message.via[:]
    message.via.extend(vias)
    message.max_forwards.max_forwards -= 1
    return MessageResponse(message=message)


async def start_routed_edge(nursery: trio.Nursery, **overrides: object) -> RoutedEdge:
    processor = ScriptableProcessor(reply=forward_to_request_uri)
    running = await start_processor(nursery, processor)
    server = await start_edgeport(
        nursery, make_config(processor=ProcessorConfig(running.addr), **overrides)
    )
    edge = address(server, Transport.UDP)
    return RoutedEdge(processor, server, await UdpUA.open(edge), await UdpUA.open(edge))


def requests_for(edge: RoutedEdge, call_id: str) -> list[MessageRequest]:
    return [r for r in edge.processor.requests if r.ref == call_id]


async def final_answer(ua: UdpUA, call_id: str) -> Received:
    return await ua.receive_until(
        lambda m: m.status is not None and m.status >= 200 and m.header("Call-ID") == call_id
    )


async def test_an_options_to_edgeport_spelled_127_1_is_answered_482_without_looping(
    nursery: trio.Nursery,
) -> None:
    # One 278-byte OPTIONS to edgeport's own address written as 127.1 used to
    # loop through edgeport up to 255 times (seconds of CPU, tens of MiB).
    edge = await start_routed_edge(nursery)
    port = address(edge.server, Transport.UDP)[1]
    for n, host in enumerate(("127.1", "localhost", "[::ffff:127.0.0.1]", "127.0.0.1")):
        call_id = f"self{n}@test"
        await edge.caller.send(
            options(edge.caller.port, f"sip:x@{host}:{port}", call_id, max_forwards=255)
        )
        answer = await final_answer(edge.caller, call_id)
        assert answer.status == 482, (host, answer.first_line)
        # The processor routed it once; it never came back for a second pass.
        assert len(requests_for(edge, call_id)) == 1, host


async def test_a_next_hop_anywhere_on_loopback_is_edgeport_when_it_binds_every_address(
    nursery: trio.Nursery,
) -> None:
    # Bound to 0.0.0.0, edgeport receives what is sent to any of the host's
    # addresses: all of 127.0.0.0/8 among them.
    edge = await start_routed_edge(
        nursery,
        bind_addr="0.0.0.0",
        transports=(TransportConfig(Transport.UDP, 0, "0.0.0.0"),),
    )
    port = address(edge.server, Transport.UDP)[1]
    call_id = "anyloop@test"
    await edge.caller.send(options(edge.caller.port, f"sip:x@127.9.8.7:{port}", call_id))
    assert (await final_answer(edge.caller, call_id)).status == 482
    assert len(requests_for(edge, call_id)) == 1


async def test_a_request_sent_back_unchanged_by_another_element_is_answered_482(
    nursery: trio.Nursery,
) -> None:
    # edgeport -> a stateless proxy (the callee socket here) -> edgeport again,
    # unchanged: a loop through an element edgeport cannot see into.
    edge = await start_routed_edge(nursery)
    call_id = "via-loop@test"
    target = f"sip:bob@127.0.0.1:{edge.callee.port}"
    await edge.caller.send(options(edge.caller.port, target, call_id))
    forwarded = await edge.callee.receive_until(lambda m: m.method == "OPTIONS")
    head, _, rest = forwarded.raw.partition(b"\r\n")
    proxy_via = f"Via: SIP/2.0/UDP 127.0.0.1:{edge.callee.port};branch=z9hG4bK-px1;rport\r\n"
    await edge.callee.send(head + b"\r\n" + proxy_via.encode() + rest)
    answer = await final_answer(edge.callee, call_id)
    assert answer.status == 482
    assert answer.header("Via").startswith(f"SIP/2.0/UDP 127.0.0.1:{edge.callee.port}")
    assert len(requests_for(edge, call_id)) == 1
    # The caller's own transaction is still answered by the callee, normally.
    await edge.callee.send(reply_to(forwarded, "200 OK"))
    assert (await final_answer(edge.caller, call_id)).status == 200


async def test_a_spiral_through_another_element_goes_on(nursery: trio.Nursery) -> None:
    # The same request sent back with another Request-URI is a spiral (RFC 3261
    # §16.3 item 4): edgeport routes it again.
    edge = await start_routed_edge(nursery)
    other = await UdpUA.open(address(edge.server, Transport.UDP))
    call_id = "spiral@test"
    await edge.caller.send(
        options(edge.caller.port, f"sip:bob@127.0.0.1:{edge.callee.port}", call_id)
    )
    forwarded = await edge.callee.receive_until(lambda m: m.method == "OPTIONS")
    _, _, rest = forwarded.raw.partition(b"\r\n")
    retargeted = f"OPTIONS sip:carol@127.0.0.1:{other.port} SIP/2.0\r\n"
    proxy_via = f"Via: SIP/2.0/UDP 127.0.0.1:{edge.callee.port};branch=z9hG4bK-px2;rport\r\n"
    await edge.callee.send(retargeted.encode() + proxy_via.encode() + rest)
    spiralled = await other.receive_until(lambda m: m.method == "OPTIONS")
    assert spiralled.first_line == f"OPTIONS sip:carol@127.0.0.1:{other.port} SIP/2.0"
    assert len(requests_for(edge, call_id)) == 2


async def test_max_forwards_above_70_is_lowered_on_entry(nursery: trio.Nursery) -> None:
    edge = await start_routed_edge(nursery)
    call_id = "hops@test"
    await edge.caller.send(
        options(
            edge.caller.port, f"sip:bob@127.0.0.1:{edge.callee.port}", call_id, max_forwards=255
        )
    )
    forwarded = await edge.callee.receive_until(lambda m: m.method == "OPTIONS")
    (seen,) = requests_for(edge, call_id)
    assert seen.method == Method.OPTIONS
    assert seen.message.max_forwards.max_forwards == 70
    assert forwarded.header("Max-Forwards") == "69"
