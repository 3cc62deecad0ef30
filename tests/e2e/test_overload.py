"""Overload end to end: edgeport with a slow processor sheds new requests cheaply and early,
and still finishes the work it admitted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio_asyncio

from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import ProcessorConfig
from edgeport.metrics import METRICS
from edgeport.sip.transport import Transport
from edgeport.transports.inbox import InboxLimits, Lane
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import register, register_both, response_to
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import TcpUA, UdpUA, sip

# New requests go stale long before the processor answers one: shedding is
# decided by counts, not by how fast anything runs.
SLOW: float = 0.6  # seconds the processor takes per call once the test slows it
LIMITS = InboxLimits(max_new=3, max_new_wait=0.2)


def dropped(reason: str) -> float:
    return METRICS.dropped_messages.labels(reason=reason).value


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let edgeport run until ``condition()`` holds (bounded: 10 s of 10 ms steps)."""
    for _ in range(1000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def loop_nursery() -> AsyncIterator[trio.Nursery]:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


def routr_like() -> ScriptableProcessor:
    return ScriptableProcessor(reply=Router(Registrar(time.monotonic)).process)


def registers_for(processor: ScriptableProcessor, call_id_prefix: str) -> list[str]:
    return [
        r.message.call_id.call_id
        for r in processor.requests
        if r.message.call_id.call_id.startswith(call_id_prefix)
    ]


async def test_burst_of_registers_is_shed_while_an_admitted_call_completes(
    loop_nursery: trio.Nursery,
) -> None:
    processor = routr_like()
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery,
        make_config(processor=ProcessorConfig(running.addr, timeout=5.0), max_in_flight=1),
        inbox=LIMITS,
    )
    edge = address(server, Transport.UDP)
    alice, bob, carol = [await UdpUA.open(edge) for _ in range(3)]
    shed_before = dropped("overload_shed")
    with trio.fail_after(20):
        await register_both(alice, bob)
        await alice.send(
            sip(
                f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-inv-busy;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-busy
To: <sip:bob@127.0.0.1>
Call-ID: call-busy
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port}>
Content-Length: 0

"""
            )
        )
        incoming = await bob.receive_until(lambda m: m.method == "INVITE")

        # The INVITE is admitted and forwarded. Now the processor slows down and
        # 20 new REGISTERs arrive at once; one fits (maxInFlight 1), three wait.
        processor.delay = SLOW
        for n in range(20):
            await carol.send(register("carol", carol.port, call_id=f"burst-{n}"))
            if n == 0:
                await until(lambda: registers_for(processor, "burst-") != [], "one in routing")
        await until(lambda: server.transports.stats["received_udp"] == 23, "the burst read")

        await bob.send(response_to(incoming, "180 Ringing", to_tag="bob-busy"))
        await bob.send(
            response_to(
                incoming,
                "200 OK",
                to_tag="bob-busy",
                extra=f"Contact: <sip:bob@127.0.0.1:{bob.port}>\n",
            )
        )
        ringing = await alice.receive_until(lambda m: m.status != 100)
        assert ringing.status == 180
        ok = await alice.receive_until(lambda m: m.status == 200)
        routes = "".join(f"Route: {r}\n" for r in ok.headers("Record-Route"))
        await alice.send(
            sip(
                f"""ACK sip:bob@127.0.0.1:{bob.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-ack-busy;rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-busy
To: {ok.header("To")}
Call-ID: call-busy
CSeq: 1 ACK
Content-Length: 0

"""
            )
        )
        ack = await bob.receive_until(lambda m: m.method == "ACK")
        assert ack.header("Call-ID") == "call-busy"

        first = await carol.receive()
        assert (first.status, first.header("Call-ID")) == (200, "burst-0")

    # One REGISTER reached the processor; the other 19 were dropped unparsed:
    # 16 pushed out of the full inbox, the 3 that waited went stale.
    assert registers_for(processor, "burst-") == ["burst-0"]
    assert server.transports.stats["shed_new_full"] == 16
    assert server.transports.stats["shed_new_stale"] == 3
    assert dropped("overload_shed") - shed_before == 19
    assert server.transports.inbox.peaks[Lane.NEW] <= LIMITS.max_new


async def test_retransmission_of_a_request_being_routed_makes_no_second_call(
    loop_nursery: trio.Nursery,
) -> None:
    processor = routr_like()
    processor.delay = 1.0
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery, make_config(processor=ProcessorConfig(running.addr, timeout=5.0))
    )
    ua = await UdpUA.open(address(server, Transport.UDP))
    request = register("dave", ua.port, call_id="retrans-1")
    absorbed_before = dropped("retransmission")
    with trio.fail_after(15):
        await ua.send(request)
        await until(lambda: registers_for(processor, "retrans-") != [], "the processor called")
        for _ in range(3):
            await ua.send(request)
        await until(
            lambda: dropped("retransmission") - absorbed_before == 3, "retransmissions absorbed"
        )
        answer = await ua.receive()

    assert (answer.status, answer.header("Call-ID")) == (200, "retrans-1")
    assert registers_for(processor, "retrans-") == ["retrans-1"]


def tcp_register(port: int, n: int) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-tcp-{n};rport
Max-Forwards: 70
From: <sip:erin@127.0.0.1>;tag=erin{n}
To: <sip:erin@127.0.0.1>
Call-ID: tcp-{n}
CSeq: 1 REGISTER
Contact: <sip:erin@127.0.0.1:{port};transport=tcp>
Expires: 300
Content-Length: 0

"""
    )


async def test_requests_shed_from_a_stream_get_503_with_retry_after(
    loop_nursery: trio.Nursery,
) -> None:
    processor = routr_like()
    processor.delay = SLOW
    running = await start_processor(loop_nursery, processor)
    server = await start_edgeport(
        loop_nursery,
        make_config(processor=ProcessorConfig(running.addr, timeout=5.0), max_in_flight=1),
        inbox=InboxLimits(max_new=1, max_new_wait=0.2),
    )
    ua = await TcpUA.open(address(server, Transport.TCP))
    overload_before = dropped("overload")
    with trio.fail_after(15):
        await ua.send(tcp_register(ua.port, 0))
        await until(lambda: registers_for(processor, "tcp-") != [], "the processor called")
        # tcp-1 waits, tcp-2 pushes it out; tcp-2 then waits too long.
        await ua.send(tcp_register(ua.port, 1))
        await ua.send(tcp_register(ua.port, 2))
        answers = [await ua.receive() for _ in range(3)]
        await ua.close()

    by_call = {a.header("Call-ID"): a for a in answers}
    assert {call: a.status for call, a in by_call.items()} == {
        "tcp-0": 200,
        "tcp-1": 503,
        "tcp-2": 503,
    }
    assert by_call["tcp-1"].header("Retry-After") == "5"
    assert registers_for(processor, "tcp-") == ["tcp-0"]
    assert dropped("overload") - overload_before == 2
