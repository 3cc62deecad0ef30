"""A TCP phone calls a browser registered over WebSocket (RFC 7118): every
request to the browser, ACK and BYE included, reaches it over its own connection."""

from __future__ import annotations

import trio
import trio_websocket

from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address
from tests.support.ua import TcpUA, WsUA, sip

BROWSER_HOST = "k3j5h2g7f9d1.invalid"


async def test_tcp_caller_and_websocket_callee(edgeport: RunningServer) -> None:
    tcp_edge = address(edgeport, Transport.TCP)
    ws_edge = address(edgeport, Transport.WS)
    alice = await TcpUA.open(tcp_edge)
    async with trio_websocket.open_websocket_url(
        f"ws://127.0.0.1:{ws_edge[1]}/", subprotocols=["sip"]
    ) as ws:
        bob = WsUA(ws)
        with trio.fail_after(20):
            await bob.send(
                sip(
                    f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-wsreg
Max-Forwards: 70
From: <sip:bob@127.0.0.1>;tag=wsreg
To: <sip:bob@127.0.0.1>
Call-ID: ws-register@test
CSeq: 1 REGISTER
Contact: <sip:bob@{BROWSER_HOST};transport=ws>
Expires: 600
Content-Length: 0

"""
                )
            )
            registered = await bob.receive()
            assert registered.status == 200, registered.text

            await alice.send(
                sip(
                    f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{alice.port};branch=z9hG4bK-tcpreg
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=tcpreg
To: <sip:alice@127.0.0.1>
Call-ID: tcp-register@test
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:{alice.port};transport=tcp>
Expires: 600
Content-Length: 0

"""
                )
            )
            assert (await alice.receive()).status == 200

            await alice.send(
                sip(
                    f"""INVITE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{alice.port};branch=z9hG4bK-tcpinv
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice1
To: <sip:bob@127.0.0.1>
Call-ID: tcp-ws-call@test
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:{alice.port};transport=tcp>
Content-Length: 0

"""
                )
            )
            incoming = await bob.receive_until(lambda m: m.method == "INVITE")
            assert incoming.first_line == f"INVITE sip:bob@{BROWSER_HOST};transport=ws SIP/2.0"
            assert "SIP/2.0/WS" in incoming.headers("Via")[0]
            record_routes = incoming.headers("Record-Route")
            assert record_routes
            vias = "".join(f"Via: {v}\n" for v in incoming.headers("Via"))
            rr = "".join(f"Record-Route: {r}\n" for r in record_routes)
            await bob.send(
                sip(
                    f"""SIP/2.0 200 OK
{vias}{rr}From: <sip:alice@127.0.0.1>;tag=alice1
To: <sip:bob@127.0.0.1>;tag=bob1
Call-ID: tcp-ws-call@test
CSeq: 1 INVITE
Contact: <sip:bob@{BROWSER_HOST};transport=ws>
Content-Length: 0

"""
                )
            )
            ok = await alice.receive_until(lambda m: m.status == 200)
            assert ok.header("CSeq") == "1 INVITE"
            # The caller's route set is the Record-Route list as received.
            routes = "".join(f"Route: {r}\n" for r in ok.headers("Record-Route"))
            for method, cseq, branch in (("ACK", 1, "tcpack"), ("BYE", 2, "tcpbye")):
                await alice.send(
                    sip(
                        f"""{method} sip:bob@{BROWSER_HOST};transport=ws SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:{alice.port};branch=z9hG4bK-{branch}
{routes}Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=alice1
To: <sip:bob@127.0.0.1>;tag=bob1
Call-ID: tcp-ws-call@test
CSeq: {cseq} {method}
Content-Length: 0

"""
                    )
                )
                got = await bob.receive_until(lambda m, method=method: m.method == method)
                assert got.header("CSeq") == f"{cseq} {method}"
            bye_vias = "".join(f"Via: {v}\n" for v in got.headers("Via"))
            await bob.send(
                sip(
                    f"""SIP/2.0 200 OK
{bye_vias}From: <sip:alice@127.0.0.1>;tag=alice1
To: <sip:bob@127.0.0.1>;tag=bob1
Call-ID: tcp-ws-call@test
CSeq: 2 BYE
Content-Length: 0

"""
                )
            )
            bye_ok = await alice.receive_until(lambda m: m.status is not None)
            assert bye_ok.status == 200
            assert bye_ok.header("CSeq") == "2 BYE"
    await alice.close()
