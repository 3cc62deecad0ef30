"""What edgeport answers itself: processor failures, edge checks, malformed input, timeouts."""

from __future__ import annotations

import re
import time

import pytest
import trio

from edgeport._proto.processor_pb2 import MessageResponse
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import ProcessorConfig, UnknownMethodAction
from edgeport.sip.timers import TimerConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import UdpUA, sip

FAST_TIMERS = TimerConfig(t1=0.02, t2=0.08, t4=0.1)  # Timer B/F = 1.28 s


def message_request(ua_port: int, edge_port: int, target: str, branch: str = "z9hG4bK-m1") -> bytes:
    return sip(
        f"""MESSAGE {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch={branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=m1
To: <sip:bob@127.0.0.1>
Call-ID: msg-{branch}@test
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: 5

hello"""
    )


def routr_like() -> ScriptableProcessor:
    router = Router(Registrar(time.monotonic))
    return ScriptableProcessor(reply=router.process)


@pytest.fixture
async def loop_nursery() -> object:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def test_processor_unreachable_gets_503_with_retry_after(nursery: trio.Nursery) -> None:
    # A port nobody listens on: bind and close one.
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    server = await start_edgeport(
        nursery, make_config(processor=ProcessorConfig(f"127.0.0.1:{closed_port}", timeout=1.0))
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    await ua.send(message_request(ua.port, edge[1], "sip:bob@127.0.0.1"))
    answer = await ua.receive()
    assert answer.status == 503, answer.text
    assert answer.header("Retry-After") == "5"
    assert answer.header("Call-ID") == "msg-z9hG4bK-m1@test"
    nursery.cancel_scope.cancel()


async def test_slow_processor_gets_503_and_a_restarted_one_serves_again(
    loop_nursery: trio.Nursery,
) -> None:
    processor = routr_like()
    processor.delay = 1.0
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr, timeout=0.3))
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    await ua.send(message_request(ua.port, edge[1], "sip:nobody@127.0.0.1", "z9hG4bK-slow"))
    assert (await ua.receive()).status == 503

    await running.stop()
    await ua.send(message_request(ua.port, edge[1], "sip:nobody@127.0.0.1", "z9hG4bK-down"))
    assert (await ua.receive()).status == 503

    processor.delay = 0.0
    await start_processor(loop_nursery, processor, port=running.port)
    with trio.fail_after(10):
        for attempt in range(50):
            await ua.send(
                message_request(ua.port, edge[1], "sip:nobody@127.0.0.1", f"z9hG4bK-up{attempt}")
            )
            answer = await ua.receive()
            if answer.status != 503:
                break
            await trio.sleep(0.1)
    # The built-in router does not know "nobody": a real answer, not a failure.
    assert answer.status == 404


async def test_malformed_processor_reply_gets_500(loop_nursery: trio.Nursery) -> None:
    processor = ScriptableProcessor(reply=lambda request: MessageResponse())
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr))
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    await ua.send(message_request(ua.port, edge[1], "sip:bob@127.0.0.1"))
    answer = await ua.receive()
    assert answer.status == 500


async def test_silent_next_hop_gets_408_and_udp_retransmissions(loop_nursery: trio.Nursery) -> None:
    processor = routr_like()
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr)), timers=FAST_TIMERS
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    silent = await UdpUA.open(edge)
    # A Request-URI on a port edgeport does not listen on is forwarded as it is.
    await ua.send(message_request(ua.port, edge[1], f"sip:bob@127.0.0.1:{silent.port}"))
    first = await silent.receive()
    assert first.method == "MESSAGE"
    again = await silent.receive()
    assert again.raw == first.raw  # Timer E: the same bytes again
    answer = await ua.receive(timeout=5)
    assert answer.status == 408, answer.text
    # One processor call: retransmissions never reach the processor.
    assert len(processor.requests) == 1


async def test_retransmitted_request_is_absorbed_and_answered_again(
    loop_nursery: trio.Nursery,
) -> None:
    processor = routr_like()
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr))
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    request = message_request(ua.port, edge[1], "sip:nobody@127.0.0.1", "z9hG4bK-rt")
    await ua.send(request)
    first = await ua.receive()
    assert first.status == 404
    await ua.send(request)
    second = await ua.receive()
    assert second.raw == first.raw
    assert len(processor.requests) == 1


async def test_edge_checks(nursery: trio.Nursery) -> None:
    server = await start_edgeport(
        nursery,
        make_config(
            unknown_method_action=UnknownMethodAction.RESPOND,
            methods=("INVITE", "OPTIONS", "MESSAGE", "ACK", "BYE", "CANCEL"),
        ),
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)

    await ua.send(
        sip(
            f"""OPTIONS sip:127.0.0.1:{edge[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-opt
Max-Forwards: 70
From: <sip:trunk@127.0.0.1>;tag=o1
To: <sip:127.0.0.1>
Call-ID: options@test
CSeq: 1 OPTIONS
Content-Length: 0

"""
        )
    )
    options = await ua.receive()
    assert options.status == 200
    assert "INVITE" in options.header("Allow")

    await ua.send(
        sip(
            f"""SUBSCRIBE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-sub
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=s1
To: <sip:bob@127.0.0.1>
Call-ID: subscribe@test
CSeq: 1 SUBSCRIBE
Event: presence
Content-Length: 0

"""
        )
    )
    refused = await ua.receive()
    assert refused.status == 405
    assert set(re.split(r",\s*", refused.header("Allow"))) == {
        "INVITE", "OPTIONS", "MESSAGE", "ACK", "BYE", "CANCEL"
    }  # fmt: skip

    await ua.send(
        sip(
            f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-mf0
Max-Forwards: 0
From: <sip:alice@127.0.0.1>;tag=f1
To: <sip:bob@127.0.0.1>
Call-ID: hops@test
CSeq: 1 MESSAGE
Content-Length: 0

"""
        )
    )
    assert (await ua.receive()).status == 483

    await ua.send(
        sip(
            f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-preq
Max-Forwards: 70
Proxy-Require: foo, bar
From: <sip:alice@127.0.0.1>;tag=pr1
To: <sip:bob@127.0.0.1>
Call-ID: proxy-require@test
CSeq: 1 MESSAGE
Content-Length: 0

"""
        )
    )
    bad_extension = await ua.receive()
    assert bad_extension.status == 420
    assert bad_extension.header("Unsupported") == "foo, bar"

    # Broken CSeq, but enough to answer: a stateless 400.
    await ua.send(
        sip(
            f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-bad
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=b1
To: <sip:bob@127.0.0.1>
Call-ID: bad@test
CSeq: one MESSAGE
Content-Length: 0

"""
        )
    )
    bad = await ua.receive()
    assert bad.status == 400
    assert bad.header("Call-ID") == "bad@test"

    # Garbage gets nothing, and the edge keeps serving.
    await ua.send(b"\x00\x01garbage\r\n\r\n")
    await ua.nothing_within(0.3)
    await ua.send(
        sip(
            f"""OPTIONS sip:127.0.0.1:{edge[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-opt2
Max-Forwards: 70
From: <sip:trunk@127.0.0.1>;tag=o2
To: <sip:127.0.0.1>
Call-ID: options2@test
CSeq: 2 OPTIONS
Content-Length: 0

"""
        )
    )
    assert (await ua.receive()).status == 200
    nursery.cancel_scope.cancel()


async def test_discarded_method_gets_no_answer(nursery: trio.Nursery) -> None:
    server = await start_edgeport(nursery, make_config(methods=("INVITE", "ACK")))
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    await ua.send(message_request(ua.port, edge[1], "sip:bob@127.0.0.1"))
    await ua.nothing_within(0.5)
    nursery.cancel_scope.cancel()


async def test_unreachable_tcp_next_hop_gets_503(loop_nursery: trio.Nursery) -> None:
    processor = routr_like()
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr))
    )
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    await ua.send(
        message_request(
            ua.port, edge[1], f"sip:bob@127.0.0.1:{closed_port};transport=tcp", "z9hG4bK-closed"
        )
    )
    answer = await ua.receive()
    assert answer.status == 503, answer.text
    assert answer.header("Retry-After")
    with trio.fail_after(2):  # the forward leaves the table once its answer is sent
        while server.proxy.pending_forwards:
            await trio.sleep(0.01)


async def test_a_request_that_waited_too_long_gets_503_without_a_processor_call(
    loop_nursery: trio.Nursery,
) -> None:
    from edgeport.transports import InboundMessage, Peer

    processor = routr_like()
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr))
    )
    edge = address(server, Transport.UDP)
    ua = await UdpUA.open(edge)
    # As if the message had sat two seconds in a saturated edgeport's queue.
    await server.proxy.handle_inbound(
        InboundMessage(
            message_request(ua.port, edge[1], "sip:nobody@127.0.0.1", "z9hG4bK-late"),
            Peer(Transport.UDP, "127.0.0.1", ua.port),
            None,
            Peer(Transport.UDP, "127.0.0.1", edge[1]),
            trio.current_time() - 2.0,
        )
    )
    answer = await ua.receive()
    assert answer.status == 503
    assert answer.header("Retry-After")
    assert processor.requests == []
