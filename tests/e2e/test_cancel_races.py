"""CANCEL racing the INVITE it cancels: during routing, before and after a
provisional response, after the final one; and a callee that answers 2xx
anyway. The caller never gets a 2xx after its 487, and the callee never rings
without being cancelled."""

from __future__ import annotations

import time

import trio

from edgeport._proto.processor_pb2 import Method
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import ProcessorConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.test_cancel_and_auth import invite, reply_to
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import Received, UdpUA, sip

ROUTING_DELAY = 0.5  # seconds the processor takes to route the INVITE


def cancel(ua_port: int, target: str, *, call_id: str, branch: str) -> bytes:
    return sip(
        f"""CANCEL {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch={branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 CANCEL
Content-Length: 0

"""
    )


def answer_200(request: Received, *, contact_port: int) -> bytes:
    return reply_to(
        request,
        "200 OK",
        extra=f"Contact: <sip:bob@127.0.0.1:{contact_port}>\n",
    )


async def collect(ua: UdpUA, seconds: float) -> list[Received]:
    """Everything ``ua`` receives within ``seconds`` (bounded by time)."""
    got: list[Received] = []
    with trio.move_on_after(seconds):
        while True:
            got.append(await ua.receive(timeout=seconds + 1))
    return got


async def wait_for_requests(processor: ScriptableProcessor, method: int, count: int) -> None:
    with trio.fail_after(5):
        while sum(1 for r in processor.requests if r.method == method) < count:
            await trio.sleep(0.01)


async def test_cancel_while_the_processor_routes_the_invite(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process, delay=ROUTING_DELAY)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(
            inner,
            make_config(processor=ProcessorConfig(running.addr), shutdown_timeout=30.0),
        )
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target = f"sip:bob@127.0.0.1:{callee.port}"
        await caller.send(invite(caller.port, target, call_id="race1@test", branch="z9hG4bK-r1"))
        await wait_for_requests(processor, Method.INVITE, 1)
        processor.delay = 0.0  # the CANCEL is not held up
        await caller.send(cancel(caller.port, target, call_id="race1@test", branch="z9hG4bK-r1"))
        upstream = [m for m in await collect(caller, ROUTING_DELAY + 0.7) if m.status != 100]
        by_cseq = {m.header("CSeq"): m.status for m in upstream}
        assert by_cseq == {"1 CANCEL": 200, "1 INVITE": 487}
        # The routing reply came (or was cancelled) meanwhile: the callee never rang.
        assert await collect(callee, 0.3) == []
        assert server.proxy.pending_forwards == 0
        # Nothing holds a draining server back.
        server.shutdown()
        with trio.fail_after(5):
            while server.proxy.in_flight or server.proxy.pending_forwards:
                await trio.sleep(0.02)
        inner.cancel_scope.cancel()


async def _ringing_call(
    processor: ScriptableProcessor, caller: UdpUA, callee: UdpUA, call_id: str, branch: str
) -> tuple[str, Received]:
    target = f"sip:bob@127.0.0.1:{callee.port}"
    await caller.send(invite(caller.port, target, call_id=call_id, branch=branch))
    incoming = await callee.receive_until(lambda m: m.method == "INVITE")
    return target, incoming


async def test_cancel_before_any_provisional_waits_for_one(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target, incoming = await _ringing_call(
            processor, caller, callee, "race2@test", "z9hG4bK-r2"
        )
        await caller.send(cancel(caller.port, target, call_id="race2@test", branch="z9hG4bK-r2"))
        upstream = [m for m in await collect(caller, 0.5) if m.status != 100]
        assert {m.header("CSeq"): m.status for m in upstream} == {
            "1 CANCEL": 200,
            "1 INVITE": 487,
        }
        # RFC 3261 §9.1: no CANCEL downstream before a provisional response...
        assert [m for m in await collect(callee, 0.3) if m.method == "CANCEL"] == []
        # ...and one right after it.
        await callee.send(reply_to(incoming, "180 Ringing"))
        down = await callee.receive_until(lambda m: m.method == "CANCEL")
        assert down.headers("Via")[0] == incoming.headers("Via")[0]
        await callee.send(reply_to(down, "200 OK"))
        await callee.send(reply_to(incoming, "487 Request Terminated"))
        await callee.receive_until(lambda m: m.method == "ACK")
        # The 180 that triggered the CANCEL never reached the cancelled caller.
        assert all(m.status in (487, None) for m in await collect(caller, 0.3))
        inner.cancel_scope.cancel()


async def test_a_2xx_after_the_cancel_is_ended_downstream(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target, incoming = await _ringing_call(
            processor, caller, callee, "race3@test", "z9hG4bK-r3"
        )
        await callee.send(reply_to(incoming, "180 Ringing"))
        await caller.receive_until(lambda m: m.status == 180)
        await caller.send(cancel(caller.port, target, call_id="race3@test", branch="z9hG4bK-r3"))
        await callee.receive_until(lambda m: m.method == "CANCEL")
        # The callee answered before it saw the CANCEL: its 200 crosses it.
        ok = answer_200(incoming, contact_port=callee.port)
        await callee.send(ok)
        ack = await callee.receive_until(lambda m: m.method == "ACK")
        assert ack.header("CSeq") == "1 ACK"
        assert ack.first_line == f"ACK sip:bob@127.0.0.1:{callee.port} SIP/2.0"
        bye = await callee.receive_until(lambda m: m.method == "BYE")
        assert bye.header("CSeq") == "2 BYE"
        assert bye.header("To").endswith("tag=callee")
        await callee.send(reply_to(bye, "200 OK"))
        # A retransmitted 200 (the ACK was lost) is acknowledged again, not relayed.
        await callee.send(ok)
        await callee.receive_until(lambda m: m.method == "ACK")
        upstream = await collect(caller, 0.5)
        assert not any(
            m.status is not None and 200 <= m.status < 300 and m.header("CSeq") == "1 INVITE"
            for m in upstream
        ), [m.first_line for m in upstream]
        inner.cancel_scope.cancel()


async def test_cancel_after_the_final_response_changes_nothing(nursery: trio.Nursery) -> None:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process)
    async with trio.open_nursery() as inner:
        running = await start_processor(inner, processor)
        server = await start_edgeport(inner, make_config(processor=ProcessorConfig(running.addr)))
        edge = address(server, Transport.UDP)
        caller = await UdpUA.open(edge)
        callee = await UdpUA.open(edge)
        target, incoming = await _ringing_call(
            processor, caller, callee, "race4@test", "z9hG4bK-r4"
        )
        await callee.send(answer_200(incoming, contact_port=callee.port))
        await caller.receive_until(lambda m: m.status == 200)
        await caller.send(cancel(caller.port, target, call_id="race4@test", branch="z9hG4bK-r4"))
        answer = await caller.receive_until(lambda m: m.header("CSeq") == "1 CANCEL")
        assert answer.status in (200, 481)
        assert not any(m.status == 487 for m in await collect(caller, 0.4))
        assert not any(m.method == "CANCEL" for m in await collect(callee, 0.2))
        inner.cancel_scope.cancel()
