"""CANCEL racing the INVITE it cancels: during routing, before and after a
provisional response, after the final one; and a callee that answers 2xx
anyway. The caller never gets a 2xx after its 487, and the callee never rings
without being cancelled."""

from __future__ import annotations

import trio

from edgeport._proto.processor_pb2 import MessageRequest, Method
from tests.e2e.conftest import RoutedEdge, start_routed_edge
from tests.e2e.test_cancel_and_auth import invite, reply_to
from tests.support.ua import Received, UdpUA, sip

ROUTING_DELAY = 0.5  # seconds the processor takes to route an INVITE


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
    return reply_to(request, "200 OK", extra=f"Contact: <sip:bob@127.0.0.1:{contact_port}>\n")


async def collect(ua: UdpUA, seconds: float) -> list[Received]:
    """Everything ``ua`` receives within ``seconds`` (bounded by time)."""
    got: list[Received] = []
    with trio.move_on_after(seconds):
        while True:
            got.append(await ua.receive(timeout=seconds + 1))
    return got


def by_cseq(messages: list[Received]) -> dict[str, int | None]:
    return {m.header("CSeq"): m.status for m in messages if m.status != 100}


async def send_invite(edge: RoutedEdge, call_id: str, branch: str) -> None:
    await edge.caller.send(
        invite(edge.caller.port, edge.callee_uri, call_id=call_id, branch=branch)
    )


async def send_cancel(edge: RoutedEdge, call_id: str, branch: str) -> None:
    await edge.caller.send(
        cancel(edge.caller.port, edge.callee_uri, call_id=call_id, branch=branch)
    )


async def ringing_call(edge: RoutedEdge, call_id: str, branch: str) -> Received:
    """An INVITE through edgeport; the callee's view of it."""
    await send_invite(edge, call_id, branch)
    return await edge.callee.receive_until(lambda m: m.method == "INVITE")


def slow_invites(request: MessageRequest) -> float:
    return ROUTING_DELAY if request.method == Method.INVITE else 0.0


async def test_cancel_while_the_processor_routes_the_invite(nursery: trio.Nursery) -> None:
    edge = await start_routed_edge(nursery, delay=0.0, shutdown_timeout=30.0)
    edge.processor.delay = slow_invites
    await send_invite(edge, "race1@test", "z9hG4bK-r1")
    with trio.fail_after(5):
        while not any(r.method == Method.INVITE for r in edge.processor.requests):
            await trio.sleep(0.01)
    await send_cancel(edge, "race1@test", "z9hG4bK-r1")
    upstream = await collect(edge.caller, ROUTING_DELAY + 0.7)
    assert by_cseq(upstream) == {"1 CANCEL": 200, "1 INVITE": 487}
    # The routing call was cancelled (or its reply dropped): the callee never rang.
    assert await collect(edge.callee, 0.3) == []
    assert edge.server.proxy.pending_forwards == 0
    assert edge.processor.cancelled >= 1
    # Nothing holds a draining server back.
    edge.server.shutdown()
    with trio.fail_after(5):
        while edge.server.proxy.in_flight or edge.server.proxy.pending_forwards:
            await trio.sleep(0.02)


async def test_cancel_before_any_provisional_waits_for_one(nursery: trio.Nursery) -> None:
    edge = await start_routed_edge(nursery)
    incoming = await ringing_call(edge, "race2@test", "z9hG4bK-r2")
    await send_cancel(edge, "race2@test", "z9hG4bK-r2")
    assert by_cseq(await collect(edge.caller, 0.5)) == {"1 CANCEL": 200, "1 INVITE": 487}
    # RFC 3261 §9.1: no CANCEL downstream before a provisional response...
    assert [m for m in await collect(edge.callee, 0.3) if m.method == "CANCEL"] == []
    # ...and one right after it.
    await edge.callee.send(reply_to(incoming, "180 Ringing"))
    down = await edge.callee.receive_until(lambda m: m.method == "CANCEL")
    assert down.headers("Via")[0] == incoming.headers("Via")[0]
    await edge.callee.send(reply_to(down, "200 OK"))
    await edge.callee.send(reply_to(incoming, "487 Request Terminated"))
    await edge.callee.receive_until(lambda m: m.method == "ACK")
    # The 180 that triggered the CANCEL never reached the cancelled caller.
    assert all(m.status in (487, None) for m in await collect(edge.caller, 0.3))


async def test_a_2xx_after_the_cancel_is_ended_downstream(nursery: trio.Nursery) -> None:
    edge = await start_routed_edge(nursery)
    incoming = await ringing_call(edge, "race3@test", "z9hG4bK-r3")
    await edge.callee.send(reply_to(incoming, "180 Ringing"))
    await edge.caller.receive_until(lambda m: m.status == 180)
    await send_cancel(edge, "race3@test", "z9hG4bK-r3")
    await edge.callee.receive_until(lambda m: m.method == "CANCEL")
    # The callee answered before it saw the CANCEL: its 200 crosses it.
    ok = answer_200(incoming, contact_port=edge.callee.port)
    await edge.callee.send(ok)
    ack = await edge.callee.receive_until(lambda m: m.method == "ACK")
    assert ack.header("CSeq") == "1 ACK"
    assert ack.first_line == f"ACK {edge.callee_uri} SIP/2.0"
    bye = await edge.callee.receive_until(lambda m: m.method == "BYE")
    assert bye.header("CSeq") == "2 BYE"
    assert bye.header("To").endswith("tag=callee")
    await edge.callee.send(reply_to(bye, "200 OK"))
    # A retransmitted 200 (the ACK was lost) is acknowledged again, not relayed.
    await edge.callee.send(ok)
    await edge.callee.receive_until(lambda m: m.method == "ACK")
    upstream = await collect(edge.caller, 0.5)
    assert not any(
        m.status is not None and 200 <= m.status < 300 and m.header("CSeq") == "1 INVITE"
        for m in upstream
    ), [m.first_line for m in upstream]


async def test_cancel_after_the_final_response_changes_nothing(nursery: trio.Nursery) -> None:
    edge = await start_routed_edge(nursery)
    incoming = await ringing_call(edge, "race4@test", "z9hG4bK-r4")
    await edge.callee.send(answer_200(incoming, contact_port=edge.callee.port))
    await edge.caller.receive_until(lambda m: m.status == 200)
    await send_cancel(edge, "race4@test", "z9hG4bK-r4")
    answer = await edge.caller.receive_until(lambda m: m.header("CSeq") == "1 CANCEL")
    assert answer.status in (200, 481)
    assert not any(m.status == 487 for m in await collect(edge.caller, 0.4))
    assert not any(m.method == "CANCEL" for m in await collect(edge.callee, 0.2))


def message(ua_port: int, target: str, *, call_id: str, branch: str, cseq: int) -> bytes:
    return sip(
        f"""MESSAGE {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch={branch};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: {cseq} MESSAGE
Content-Type: text/plain
Content-Length: 2

hi"""
    )


def slow_messages(request: MessageRequest) -> float:
    return ROUTING_DELAY if request.method == Method.MESSAGE else 0.0


async def test_cancel_while_the_invite_waits_for_its_call_turn_is_never_forwarded(
    nursery: trio.Nursery,
) -> None:
    # A MESSAGE of the same Call-ID is being routed (slowly): the INVITE behind
    # it waits for its turn, and the CANCEL overtakes it. The caller hears 200
    # and 487, and the INVITE must then never reach the callee.
    edge = await start_routed_edge(nursery)
    edge.processor.delay = slow_messages
    await edge.caller.send(
        message(edge.caller.port, edge.callee_uri, call_id="turn@test", branch="z9hG4bK-t0", cseq=1)
    )
    with trio.fail_after(5):
        while not any(r.method == Method.MESSAGE for r in edge.processor.requests):
            await trio.sleep(0.01)
    await edge.caller.send(
        invite(edge.caller.port, edge.callee_uri, call_id="turn@test", branch="z9hG4bK-t1", cseq=2)
    )
    await trio.sleep(0.05)
    await edge.caller.send(
        sip(
            f"""CANCEL {edge.callee_uri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{edge.caller.port};branch=z9hG4bK-t1;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=caller
To: <sip:bob@127.0.0.1>
Call-ID: turn@test
CSeq: 2 CANCEL
Content-Length: 0

"""
        )
    )
    upstream = await collect(edge.caller, ROUTING_DELAY + 0.7)
    assert by_cseq(upstream)["2 CANCEL"] == 200
    assert by_cseq(upstream)["2 INVITE"] == 487
    downstream = await collect(edge.callee, 0.5)
    assert [m.method for m in downstream if m.method != "MESSAGE"] == []
    assert not any(r.method == Method.INVITE for r in edge.processor.requests)
    # Once the callee answers the MESSAGE, nothing of this call is left pending.
    for received in downstream:
        await edge.callee.send(reply_to(received, "200 OK"))
    await edge.caller.receive_until(lambda m: m.header("CSeq") == "1 MESSAGE")
    assert edge.server.proxy.pending_forwards == 0
