"""Stray responses (RFC 3261 §16.7, §18.1.2): a response that matches no
transaction is relayed only when its top Via is one edgeport wrote for an
answered INVITE (a retransmitted or forked 2xx), and only to where that
INVITE's first 2xx went; anything else is dropped, counted, and counted
toward its source's flood limit."""

from __future__ import annotations

import trio

from edgeport.metrics import METRICS
from edgeport.protection.guard import source_key
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport, start_routed_edge
from tests.e2e.test_cancel_and_auth import invite, reply_to
from tests.support.ua import TcpUA, UdpUA, sip


def stray_drops() -> float:
    return METRICS.dropped_messages.labels(reason="stray_response").value


def register_tcp(ua: TcpUA, user: str) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{ua.port};branch=z9hG4bK-reg-{user}
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=reg{user}
To: <sip:{user}@127.0.0.1>
Call-ID: register-{user}@test
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:{ua.port};transport=tcp>
Expires: 600
Content-Length: 0

"""
    )


def forged_ok(victim_port: int, top_branch: str, n: int = 0) -> bytes:
    # The top Via claims to be edgeport's; the next one names the victim's TCP
    # connection through received/rport.
    return sip(
        f"""SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={top_branch}
Via: SIP/2.0/TCP 127.0.0.1:{victim_port};branch=z9hG4bK-v{n};received=127.0.0.1;rport={victim_port}
From: <sip:mallory@127.0.0.1>;tag=m{n}
To: <sip:victim@127.0.0.1>;tag=v{n}
Call-ID: forged-{n}@test
CSeq: 1 INVITE
Contact: <sip:rogue@198.51.100.66>
Content-Length: 0

"""
    )


async def test_a_forged_response_is_never_written_into_another_client_s_connection(
    nursery: trio.Nursery,
) -> None:
    server = await start_edgeport(nursery, make_config())
    victim = await TcpUA.open(address(server, Transport.TCP))
    await victim.send(register_tcp(victim, "victim"))
    assert (await victim.receive()).status == 200
    attacker = await UdpUA.open(address(server, Transport.UDP))
    before = stray_drops()
    branches = (
        "z9hG4bK-forged",  # not edgeport's form at all
        "z9hG4bKw0-0123456789abcdef.l01234567",  # edgeport's form, never sent
    )
    for n, branch in enumerate(branches):
        await attacker.send(forged_ok(victim.port, branch, n))
    with trio.move_on_after(0.5):
        got = await victim.receive(timeout=1.0)
        raise AssertionError(f"the victim's connection got {got.first_line}")
    with trio.fail_after(5):
        while stray_drops() < before + len(branches):
            await trio.sleep(0.01)


async def test_stray_responses_count_toward_the_flood_limit(nursery: trio.Nursery) -> None:
    # 127.0.0.1 is not a trusted local network here, so its flood limit applies.
    server = await start_edgeport(nursery, make_config(localnets=("10.0.0.0/8",)))
    guard = server.guard
    limit = guard.flood.limits.requests
    attacker = await UdpUA.open(address(server, Transport.UDP))
    bans_before = METRICS.bans.labels().value
    for n in range(limit + 20):
        await attacker.send(forged_ok(9, "z9hG4bK-forged", n))
    with trio.fail_after(5):
        while not guard.flood.banned(source_key("127.0.0.1"), guard.clock()):
            await trio.sleep(0.01)
    assert METRICS.bans.labels().value == bans_before + 1


async def test_a_retransmitted_2xx_reaches_the_caller_where_the_first_went(
    nursery: trio.Nursery,
) -> None:
    edge = await start_routed_edge(nursery)
    caller = await TcpUA.open(address(edge.server, Transport.TCP))
    target = edge.callee_uri
    await caller.send(
        invite(caller.port, target, call_id="again@test", branch="z9hG4bK-again").replace(
            b"SIP/2.0/UDP", b"SIP/2.0/TCP"
        )
    )
    incoming = await edge.callee.receive_until(lambda m: m.method == "INVITE")
    ok = reply_to(incoming, "200 OK", extra=f"Contact: <sip:bob@127.0.0.1:{edge.callee.port}>\n")
    await edge.callee.send(ok)
    first = await caller.receive_until(lambda m: m.status == 200)
    drops = stray_drops()
    await edge.callee.send(ok)  # the ACK was lost: the callee sends its 200 again
    again = await caller.receive_until(lambda m: m.status == 200)
    assert again.header("Call-ID") == first.header("Call-ID") == "again@test"
    assert again.header("CSeq") == "1 INVITE"
    assert stray_drops() == drops
