"""Two UDP user agents register through edgeport and its built-in processor, then call."""

from __future__ import annotations

import trio

from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address
from tests.support.ua import UdpUA, sip


def register(user: str, port: int, edge_port: int, call_id: str) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1:{edge_port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-reg-{user};rport
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=reg{user}
To: <sip:{user}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: 300
Content-Length: 0

"""
    )


async def test_register_then_call_between_two_udp_user_agents(edgeport: RunningServer) -> None:
    server = address(edgeport, Transport.UDP)
    alice = await UdpUA.open(server)
    bob = await UdpUA.open(server)
    with trio.fail_after(20):
        await alice.send(register("alice", alice.port, server[1], "reg-alice@test"))
        ok = await alice.receive()
        assert ok.status == 200, ok.text
        assert ok.header("Call-ID") == "reg-alice@test"
        assert "tag=" in ok.header("To")
        await bob.send(register("bob", bob.port, server[1], "reg-bob@test"))
        assert (await bob.receive()).status == 200

        sdp = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        invite = (
            sip(
                f"""INVITE sip:bob@127.0.0.1:{server[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-inv-1;rport
Max-Forwards: 70
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>
Call-ID: call-1@test
CSeq: 10 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port}>
Content-Type: application/sdp
Content-Length: {len(sdp)}

"""
            )
            + sdp.encode()
        )
        await alice.send(invite)
        trying = await alice.receive()
        assert trying.status == 100

        incoming = await bob.receive()
        assert incoming.method == "INVITE", incoming.text
        assert incoming.first_line == f"INVITE sip:bob@127.0.0.1:{bob.port} SIP/2.0"
        vias = incoming.headers("Via")
        assert len(vias) == 2
        assert "received=127.0.0.1" in vias[1]
        assert f"rport={alice.port}" in vias[1]
        assert incoming.header("Max-Forwards") == "69"
        assert incoming.body == sdp.encode()
        record_route = incoming.header("Record-Route")

        def answer(status: str, tag_extra: str = "") -> bytes:
            via_lines = "\n".join(f"Via: {v}" for v in vias)
            return sip(
                f"""SIP/2.0 {status}
{via_lines}
Record-Route: {record_route}
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>;tag=b1
Call-ID: call-1@test
CSeq: 10 INVITE
Contact: <sip:bob@127.0.0.1:{bob.port}>
Content-Length: 0

"""
            )

        await bob.send(answer("180 Ringing"))
        ringing = await alice.receive_until(lambda m: m.status != 100)
        assert ringing.status == 180
        assert len(ringing.headers("Via")) == 1
        assert ringing.header("CSeq") == "10 INVITE"

        await bob.send(answer("200 OK"))
        ok = await alice.receive_until(lambda m: m.status == 200)
        assert ok.header("To").endswith("tag=b1")
        assert ok.header("Record-Route") == record_route

        # ACK and BYE follow the Record-Route through edgeport.
        route_uri = record_route
        ack = sip(
            f"""ACK sip:bob@127.0.0.1:{bob.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-ack-1;rport
Route: {route_uri}
Max-Forwards: 70
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>;tag=b1
Call-ID: call-1@test
CSeq: 10 ACK
Content-Length: 0

"""
        )
        await alice.send(ack)
        got_ack = await bob.receive_until(lambda m: m.method == "ACK")
        assert got_ack.header("CSeq") == "10 ACK"

        bye = sip(
            f"""BYE sip:bob@127.0.0.1:{bob.port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{alice.port};branch=z9hG4bK-bye-1;rport
Route: {route_uri}
Max-Forwards: 70
From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>;tag=b1
Call-ID: call-1@test
CSeq: 11 BYE
Content-Length: 0

"""
        )
        await alice.send(bye)
        got_bye = await bob.receive_until(lambda m: m.method == "BYE")
        bye_vias = got_bye.headers("Via")
        await bob.send(
            sip(
                "SIP/2.0 200 OK\n"
                + "".join(f"Via: {v}\n" for v in bye_vias)
                + """From: "Alice" <sip:alice@127.0.0.1>;tag=a1
To: <sip:bob@127.0.0.1>;tag=b1
Call-ID: call-1@test
CSeq: 11 BYE
Content-Length: 0

"""
            )
        )
        bye_ok = await alice.receive_until(lambda m: m.status is not None and m.status >= 200)
        assert bye_ok.status == 200
        assert bye_ok.header("CSeq") == "11 BYE"
