"""edgeport behind a real HAProxy speaking the PROXY protocol (TCP mode).

TCP and TLS listeners behind ``send-proxy-v2`` (TLS passes through HAProxy
untouched), a WS listener behind ``send-proxy`` (v1). The processor's
``sender`` and the Via ``received``/``rport`` show the client's address as
HAProxy saw it (the test client's own source port), not HAProxy's; and
edgeport closes a connection from a proxy it does not trust.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio_websocket
import trustme

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.config import (
    ProcessorConfig,
    ProxyProtocolConfig,
    SecurityContext,
    TransportConfig,
)
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.config_fixtures import write_leaf_pkcs12
from tests.e2e.conftest import make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.haproxy import Frontend, running_haproxy
from tests.support.ua import Received, TcpUA, sip

WAIT = 30.0  # seconds for a whole test, HAProxy start included


def register_ok(request: MessageRequest) -> MessageResponse:
    reply = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.OK)
    reply.contact.CopyFrom(request.message.contact)
    return MessageResponse(message=reply)


def register(transport: str, user: str) -> bytes:
    """A REGISTER from behind NAT: a private sent-by, no rport."""
    return sip(
        f"""REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 192.168.77.10:5060;branch=z9hG4bK-lb-{user}
Max-Forwards: 70
From: <sip:{user}@127.0.0.1>;tag=lb-{user}
To: <sip:{user}@127.0.0.1>
Call-ID: lb-{user}@test
CSeq: 1 REGISTER
Contact: <sip:{user}@192.168.77.10:5060;transport={transport.lower()}>
Expires: 60
Content-Length: 0

"""
    )


@asynccontextmanager
async def edgeport_behind_haproxy(
    tmp_path: Path, ca: trustme.CA, *, trusted: tuple[str, ...]
) -> AsyncIterator[tuple[RunningServer, ScriptableProcessor, dict[str, int]]]:
    keystore = write_leaf_pkcs12(tmp_path / "edge.p12", "changeit", ca.issue_cert("127.0.0.1"))
    processor = ScriptableProcessor(reply=register_ok)
    async with trio.open_nursery() as nursery:
        running = await start_processor(nursery, processor)
        config = make_config(
            processor=ProcessorConfig(running.addr, timeout=5.0),
            transports=(
                TransportConfig(Transport.UDP, 0, "127.0.0.1"),
                TransportConfig(Transport.TCP, 0, "127.0.0.1", proxy_protocol=True),
                TransportConfig(Transport.TLS, 0, "127.0.0.1", proxy_protocol=True),
                TransportConfig(Transport.WS, 0, "127.0.0.1", proxy_protocol=True),
            ),
            security_context=SecurityContext(
                key_store=str(keystore), key_store_password="changeit"
            ),
            proxy_protocol=ProxyProtocolConfig(trusted_proxies=trusted),
        )
        server = await start_edgeport(nursery, config)
        edge = {p.transport: p.port for p in server.listening_points}
        frontends = [
            Frontend("tcp", edge[Transport.TCP], "send-proxy-v2"),
            Frontend("tls", edge[Transport.TLS], "send-proxy-v2"),
            Frontend("ws", edge[Transport.WS], "send-proxy"),
        ]
        async with running_haproxy(tmp_path, frontends) as ports:
            yield server, processor, ports
        nursery.cancel_scope.cancel()


def the_register(processor: ScriptableProcessor, user: str) -> MessageRequest:
    (found,) = [
        r for r in processor.requests if r.method == Method.REGISTER and r.ref == f"lb-{user}@test"
    ]
    return found


def assert_seen_from(
    server: RunningServer,
    processor: ScriptableProcessor,
    user: str,
    transport: Transport,
    client_port: int,
    answer: Received,
) -> None:
    request = the_register(processor, user)
    expected = {
        Transport.TCP: common_pb2.TCP,
        Transport.TLS: common_pb2.TLS,
        Transport.WS: common_pb2.WS,
    }[transport]
    assert (request.sender.host, request.sender.port, request.sender.transport) == (
        "127.0.0.1",
        client_port,
        expected,
    )
    via = request.message.via[0]
    assert (via.received, via.r_port) == ("127.0.0.1", client_port)
    assert answer.headers("Via")[0].endswith(f";rport={client_port};received=127.0.0.1")
    # The connection edgeport holds is known by the client's address, and only by it.
    peers = [c.peer.port for c in server.transports.connections if c.transport is transport]
    assert peers == [client_port]


async def test_clients_behind_haproxy_are_seen_at_their_own_address(tmp_path: Path) -> None:
    ca = trustme.CA()
    with trio.fail_after(WAIT):
        async with edgeport_behind_haproxy(tmp_path, ca, trusted=("127.0.0.0/8",)) as (
            server,
            processor,
            ports,
        ):
            # TCP, PROXY protocol v2.
            tcp = await TcpUA.open(("127.0.0.1", ports["tcp"]))
            await tcp.send(register("TCP", "tina"))
            answer = await tcp.receive_until(lambda m: m.status is not None)
            assert answer.status == 200, answer.text
            assert_seen_from(server, processor, "tina", Transport.TCP, tcp.port, answer)
            await tcp.close()

            # TLS passed through, PROXY protocol v2 before the handshake.
            context = ssl.create_default_context()
            ca.configure_trust(context)
            tls = await trio.open_ssl_over_tcp_stream(
                "127.0.0.1", ports["tls"], ssl_context=context
            )
            async with tls:
                tls_port = tls.transport_stream.socket.getsockname()[1]
                await tls.send_all(register("TLS", "tom"))
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await tls.receive_some(65536)
                answer = Received(data)
                assert answer.status == 200, answer.text
                assert_seen_from(server, processor, "tom", Transport.TLS, tls_port, answer)

            # WebSocket, PROXY protocol v1 before the upgrade.
            async with trio_websocket.open_websocket(
                "127.0.0.1", ports["ws"], "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(register("WS", "wendy").decode())
                answer = Received((await ws.get_message()).encode())
                assert answer.status == 200, answer.text
                assert_seen_from(server, processor, "wendy", Transport.WS, ws.local.port, answer)


async def test_a_proxy_edgeport_does_not_trust_is_closed(tmp_path: Path) -> None:
    ca = trustme.CA()
    with trio.fail_after(WAIT):
        async with edgeport_behind_haproxy(tmp_path, ca, trusted=("10.0.0.0/8",)) as (
            server,
            processor,
            ports,
        ):
            tcp = await TcpUA.open(("127.0.0.1", ports["tcp"]))
            await tcp.send(register("TCP", "ursula"))
            try:
                answer = await tcp.receive()
            except (EOFError, trio.BrokenResourceError):
                answer = None
            assert answer is None, answer.text if answer else ""
            await tcp.close()
            assert processor.requests == []
            assert server.transports.stats["proxy_protocol_untrusted"] >= 1
            assert len(server.transports.connections) == 0
