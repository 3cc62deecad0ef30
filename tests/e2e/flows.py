"""Whole SIP flows between two UDP user agents, through edgeport and its built-in processor.

Each message is literal SIP text; only addresses, ports and tags are filled in.
"""

from __future__ import annotations

from tests.support.ua import Received, UdpUA, sip


def register(user: str, port: int, *, call_id: str, expires: int = 300, extra: str = "") -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg-{call_id};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=reg{user}
To: <sip:{user}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: {expires}
{extra}Content-Length: 0

"""
    )


def response_to(request: Received, status: str, *, to_tag: str, extra: str = "") -> bytes:
    """A UAS response: the request's Via, Record-Route, From, To (+tag), Call-ID, CSeq."""
    vias = "".join(f"Via: {v}\n" for v in request.headers("Via"))
    rrs = "".join(f"Record-Route: {r}\n" for r in request.headers("Record-Route"))
    to = request.header("To")
    if "tag=" not in to:
        to += f";tag={to_tag}"
    return sip(
        f"""SIP/2.0 {status}
{vias}{rrs}From: {request.header("From")}
To: {to}
Call-ID: {request.header("Call-ID")}
CSeq: {request.header("CSeq")}
{extra}Content-Length: 0

"""
    )


async def register_both(alice: UdpUA, bob: UdpUA) -> None:
    await alice.send(register("alice", alice.port, call_id="reg-alice"))
    assert (await alice.receive()).status == 200
    await bob.send(register("bob", bob.port, call_id="reg-bob"))
    assert (await bob.receive()).status == 200


def invite(alice: UdpUA, *, call_id: str, extra: str = "") -> bytes:
    """alice's INVITE to bob (the dialog's first request: CSeq 1, no To tag)."""
    return sip(
        f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-inv-{call_id};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: <sip:bob@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port}>
{extra}Content-Length: 0

"""
    )


async def ack_and_hang_up(alice: UdpUA, bob: UdpUA, final: Received, *, call_id: str) -> None:
    """alice ACKs bob's 200 ``final`` and sends BYE along its Record-Route; bob answers 200
    and alice must see it."""
    routes = "".join(f"Route: {r}\n" for r in final.headers("Record-Route"))
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await alice.send(
            sip(
                f"""{method} sip:bob@127.0.0.1:{bob.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-{method}-{call_id};rport
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice-{call_id}
To: {final.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
    bye = await bob.receive_until(lambda m: m.method == "BYE")
    await bob.send(response_to(bye, "200 OK", to_tag=f"bob-{call_id}"))
    bye_ok = await alice.receive_until(lambda m: m.status is not None and "BYE" in m.header("CSeq"))
    assert bye_ok.status == 200


async def call_and_hang_up(
    alice: UdpUA, bob: UdpUA, *, call_id: str, callee_status: str = "200 OK"
) -> int:
    """alice calls bob, bob answers ``callee_status``; on 200 they talk and alice hangs up.

    Returns the final status alice saw for her INVITE.
    """
    await alice.send(invite(alice, call_id=call_id, extra="X-Tenant: acme\n"))
    incoming = await bob.receive_until(lambda m: m.method == "INVITE")
    await bob.send(response_to(incoming, "180 Ringing", to_tag=f"bob-{call_id}"))
    await bob.send(
        response_to(
            incoming,
            callee_status,
            to_tag=f"bob-{call_id}",
            extra=f"Contact: <sip:bob@127.0.0.1:{bob.port}>\n",
        )
    )
    final = await alice.receive_until(lambda m: m.status is not None and m.status >= 200)
    if final.status != 200:
        return final.status or 0
    await ack_and_hang_up(alice, bob, final, call_id=call_id)
    return 200
