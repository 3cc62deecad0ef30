"""What the processor learns about where a message came from (contract §2, §3, §5).

- ``sender`` is the packet's source (socket address, listener transport),
  whatever the client wrote in its Via;
- on connection transports, ``received`` and ``rport`` name the connection
  even when the client sent no ``rport``, so a processor that stores routes
  the Routr way (host = received || host, port = rPort != -1 ? rPort : port)
  calls TCP phones and browsers back over their own connection;
- ``endpoint.registered`` carries the REGISTER's own ``X-`` headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.config import ProcessorConfig, PublisherConfig
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.e2e.flows import response_to
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.routr_like import Route, RoutrLikeProcessor
from tests.support.ua import Received, TcpUA, UdpUA, WsUA, sip

BROWSER_HOST = "q8w2e4r6t1y3.invalid"
ReplyFunction = Callable[[MessageRequest], MessageResponse]
WAIT = 20.0  # seconds a whole flow may take


@asynccontextmanager
async def edgeport_with(
    reply: ReplyFunction, **overrides: object
) -> AsyncIterator[tuple[RunningServer, ScriptableProcessor]]:
    """edgeport on 127.0.0.1 (UDP, TCP, WS) in front of a test processor."""
    processor = ScriptableProcessor(reply=reply)
    async with trio.open_nursery() as nursery:
        running = await start_processor(nursery, processor)
        overrides.setdefault("localnets", ("127.0.0.1/8",))
        config = make_config(processor=ProcessorConfig(running.addr, timeout=5.0), **overrides)
        server = await start_edgeport(nursery, config)
        yield server, processor
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def websocket_ua(server: RunningServer) -> AsyncIterator[WsUA]:
    port = address(server, Transport.WS)[1]
    async with trio_websocket.open_websocket_url(
        f"ws://127.0.0.1:{port}/", subprotocols=["sip"]
    ) as ws:
        yield WsUA(ws)


def requests_of(processor: ScriptableProcessor, method: Method.ValueType) -> list[MessageRequest]:
    return [
        r
        for r in processor.requests
        if r.method == method and r.message.WhichOneof("message_type") == "request_uri"
    ]


def forbidden(_request: MessageRequest) -> MessageResponse:
    return MessageResponse(
        message=sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.FORBIDDEN)
    )


def trunk_invite(via: str, *, call_id: str) -> bytes:
    return sip(
        f"""INVITE sip:+15550001@127.0.0.1 SIP/2.0
Via: {via}
Max-Forwards: 70
From: <sip:+15559999@10.9.9.9>;tag=trunk-{call_id}
To: <sip:+15550001@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:+15559999@10.9.9.9:5099>
Content-Length: 0

"""
    )


# -- sender -----------------------------------------------------------------------


async def test_forged_via_over_udp_does_not_change_sender() -> None:
    with trio.fail_after(WAIT):
        async with edgeport_with(forbidden) as (server, processor):
            trunk = await UdpUA.open(address(server, Transport.UDP))
            # The Via claims 10.9.9.9:5099; rport brings the answer back here.
            await trunk.send(
                trunk_invite(
                    "SIP/2.0/UDP 10.9.9.9:5099;branch=z9hG4bK-forged-udp;rport",
                    call_id="forged-udp@test",
                )
            )
            answer = await trunk.receive_until(lambda m: m.status is not None and m.status >= 200)
            assert answer.status == 403
            (seen,) = requests_of(processor, Method.INVITE)
            assert (seen.sender.host, seen.sender.port, seen.sender.transport) == (
                "127.0.0.1",
                trunk.port,
                common_pb2.UDP,
            )
            via = seen.message.via[0]
            assert (via.host, via.port, via.received, via.r_port) == (
                "10.9.9.9",
                5099,
                "127.0.0.1",
                trunk.port,
            )
            trunk.close()


async def test_forged_via_over_tcp_does_not_change_sender() -> None:
    with trio.fail_after(WAIT):
        async with edgeport_with(forbidden) as (server, processor):
            trunk = await TcpUA.open(address(server, Transport.TCP))
            await trunk.send(
                trunk_invite(
                    "SIP/2.0/TCP 10.9.9.9:5099;branch=z9hG4bK-forged-tcp",
                    call_id="forged-tcp@test",
                )
            )
            answer = await trunk.receive_until(lambda m: m.status is not None and m.status >= 200)
            assert answer.status == 403
            (seen,) = requests_of(processor, Method.INVITE)
            assert (seen.sender.host, seen.sender.port, seen.sender.transport) == (
                "127.0.0.1",
                trunk.port,
                common_pb2.TCP,
            )
            # No rport was asked for; on a connection edgeport sets it anyway.
            via = seen.message.via[0]
            assert (via.host, via.received, via.r_port_flag, via.r_port) == (
                "10.9.9.9",
                "127.0.0.1",
                True,
                trunk.port,
            )
            # The answer's Via shows the same stamping.
            assert answer.headers("Via")[0] == (
                f"SIP/2.0/TCP 10.9.9.9:5099;branch=z9hG4bK-forged-tcp;"
                f"rport={trunk.port};received=127.0.0.1"
            )
            await trunk.close()


async def test_browser_calls_out_through_a_processor_that_places_the_edge_from_sender() -> None:
    """A browser's Via host is .invalid; with no externalAddrs, Routr's library can
    only place the EdgePort from ``sender``, which must therefore be an address."""
    router = RoutrLikeProcessor()
    with trio.fail_after(WAIT):
        async with edgeport_with(router, external_addrs=()) as (server, processor):
            trunk = await UdpUA.open(address(server, Transport.UDP))
            async with websocket_ua(server) as browser:
                await browser.send(
                    sip(
                        f"""INVITE sip:+15550002@127.0.0.1:{trunk.port} SIP/2.0
Via: SIP/2.0/WS {BROWSER_HOST};branch=z9hG4bK-ws-out
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=browser-out
To: <sip:+15550002@127.0.0.1>
Call-ID: ws-out@test
CSeq: 1 INVITE
Contact: <sip:alice@{BROWSER_HOST};transport=ws>
Content-Length: 0

"""
                    )
                )
                incoming = await trunk.receive_until(lambda m: m.method == "INVITE")
                ws_port = address(server, Transport.WS)[1]
                udp_port = address(server, Transport.UDP)[1]
                assert incoming.headers("Record-Route") == [
                    f"<sip:127.0.0.1:{udp_port};transport=udp;lr>;r2=on",
                    f"<sip:127.0.0.1:{ws_port};transport=ws;lr>;r2=on",
                ]
                await trunk.send(response_to(incoming, "200 OK", to_tag="trunk-out"))
                ok = await browser.receive_until(lambda m: (m.status or 0) >= 200)
                assert ok.status == 200
                assert ok.header("CSeq") == "1 INVITE"
                (seen,) = requests_of(processor, Method.INVITE)
                assert seen.sender.host == "127.0.0.1"
                assert seen.sender.transport == common_pb2.WS
                # With no externalAddrs the browser's .invalid Via host is shown
                # as its address too (convert.browser_via); the wire keeps it.
                assert seen.message.via[0].host == "127.0.0.1"
                assert incoming.headers("Via")[1].startswith(f"SIP/2.0/WS {BROWSER_HOST};")
            trunk.close()


# -- rport on connections -----------------------------------------------------------


def register_without_rport(via_host: str, contact: str, *, transport: str, user: str) -> bytes:
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} {via_host};branch=z9hG4bK-reg-{user}
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=reg-{user}
To: <sip:{user}@127.0.0.1>
Call-ID: reg-{user}@test
CSeq: 1 REGISTER
Contact: {contact}
Expires: 600
X-Tenant: acme
Content-Length: 0

"""
    )


async def call_a_connection_client(
    caller: UdpUA, callee: WsUA | TcpUA, user: str, *, call_id: str
) -> None:
    """caller INVITEs ``user``, who answers on its connection; ACK, BYE and its 200 follow."""
    await caller.send(
        sip(
            f"""INVITE sip:{user}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-inv-{call_id};rport
Max-Forwards: 70
From: <sip:dave@127.0.0.1>;tag=dave-{call_id}
To: <sip:{user}@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:dave@127.0.0.1:{caller.port}>
Content-Length: 0

"""
        )
    )
    incoming = await callee.receive_until(lambda m: m.method == "INVITE")
    contact = callee_contact(callee, user)
    await callee.send(
        response_to(incoming, "200 OK", to_tag=f"{user}-tag", extra=f"Contact: {contact}\n")
    )
    ok = await caller.receive_until(lambda m: m.status is not None and m.status >= 200)
    assert ok.status == 200, ok.text
    routes = "".join(f"Route: {r}\n" for r in reversed(ok.headers("Record-Route")))
    target = ok.header("Contact").strip("<>")
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            sip(
                f"""{method} {target} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-{method}-{call_id};rport
{routes}Max-Forwards: 70
From: <sip:dave@127.0.0.1>;tag=dave-{call_id}
To: {ok.header("To")}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"""
            )
        )
        got: Received = await callee.receive_until(lambda m, method=method: m.method == method)
        assert got.header("CSeq") == f"{cseq} {method}"
    await callee.send(response_to(got, "200 OK", to_tag=f"{user}-tag"))
    bye_ok = await caller.receive_until(
        lambda m: m.status is not None and "BYE" in m.header("CSeq")
    )
    assert bye_ok.status == 200


def callee_contact(callee: WsUA | TcpUA, user: str) -> str:
    if isinstance(callee, WsUA):
        return f"<sip:{user}@{BROWSER_HOST};transport=ws>"
    return f"<sip:{user}@127.0.0.1:{callee.port};transport=tcp>"


async def test_browser_without_rport_registers_and_is_called_over_its_connection() -> None:
    router = RoutrLikeProcessor()
    with trio.fail_after(WAIT):
        async with edgeport_with(router) as (server, _processor):
            caller = await UdpUA.open(address(server, Transport.UDP))
            async with websocket_ua(server) as browser:
                await browser.send(
                    register_without_rport(
                        BROWSER_HOST,
                        f"<sip:bob@{BROWSER_HOST};transport=ws>",
                        transport="WS",
                        user="bob",
                    )
                )
                registered = await browser.receive()
                assert registered.status == 200, registered.text
                route = router.routes["sip:bob@127.0.0.1"]
                # The route names the browser's connection, not its .invalid host.
                assert (route.host, route.transport) == ("127.0.0.1", "WS")
                assert route.port == browser_port(server, route.port)
                await call_a_connection_client(caller, browser, "bob", call_id="ws-in@test")
            caller.close()


def browser_port(server: RunningServer, port: int) -> int:
    """The stored port is the source port of a live WebSocket connection to edgeport."""
    peers = {
        conn.peer.port for conn in server.transports.connections if conn.transport is Transport.WS
    }
    assert port in peers, (port, peers)
    return port


async def test_tcp_phone_without_rport_registers_and_is_called_over_its_connection() -> None:
    router = RoutrLikeProcessor()
    with trio.fail_after(WAIT):
        async with edgeport_with(router) as (server, _processor):
            caller = await UdpUA.open(address(server, Transport.UDP))
            phone = await TcpUA.open(address(server, Transport.TCP))
            # The phone writes the port it would listen on, not its connection's.
            await phone.send(
                register_without_rport(
                    "127.0.0.1:5060",
                    f"<sip:carol@127.0.0.1:{phone.port};transport=tcp>",
                    transport="TCP",
                    user="carol",
                )
            )
            registered = await phone.receive()
            assert registered.status == 200, registered.text
            assert router.routes["sip:carol@127.0.0.1"] == Route("127.0.0.1", phone.port, "TCP")
            await call_a_connection_client(caller, phone, "carol", call_id="tcp-in@test")
            await phone.close()
            caller.close()


# -- endpoint.registered ------------------------------------------------------------


def ok_with_reply_header(request: MessageRequest) -> MessageResponse:
    reply = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.OK)
    reply.contact.CopyFrom(request.message.contact)
    reply.extensions.add(name="X-Reply-Only", value="not-an-event-header")
    return MessageResponse(message=reply)


async def wait_for_log(caplog: pytest.LogCaptureFixture, predicate: Callable[[str], bool]) -> str:
    for _ in range(500):
        for record in caplog.records:
            text = record.getMessage()
            if predicate(text):
                return text
        await trio.sleep(0.01)
    raise AssertionError("no matching log line")


async def test_endpoint_registered_carries_the_registers_own_x_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.events")
    with trio.fail_after(WAIT):
        async with edgeport_with(
            ok_with_reply_header, publishers=PublisherConfig(console_enabled=True)
        ) as (server, _processor):
            phone = await UdpUA.open(address(server, Transport.UDP))
            await phone.send(
                sip(
                    f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{phone.port};branch=z9hG4bK-evt-reg;rport
Max-Forwards: 70
From: <sip:erin@127.0.0.1>;tag=evt
To: <sip:erin@127.0.0.1>
Call-ID: evt-reg@test
CSeq: 1 REGISTER
Contact: <sip:erin@127.0.0.1:{phone.port}>
Expires: 120
X-Tenant: acme
x-device-id: phone-7
User-Agent: test
Content-Length: 0

"""
                )
            )
            answer = await phone.receive()
            assert answer.status == 200
            line = await wait_for_log(caplog, lambda t: t.startswith("event endpoint.registered"))
            phone.close()
    body = json.loads(line.split(" ", 2)[2])
    assert body["aor"] == "sip:erin@127.0.0.1"
    assert body["expires"] == 120
    assert body["extraHeaders"] == {"X-Tenant": "acme", "x-device-id": "phone-7"}
