"""SIP over TLS and WSS end to end: a client with a trustme chain registers and is reachable."""

from __future__ import annotations

import ssl
from pathlib import Path

import trio
import trio_websocket
import trustme

from edgeport.config import SecurityContext, TransportConfig
from edgeport.sip.transport import Transport
from tests.config_fixtures import write_leaf_pkcs12
from tests.e2e.conftest import make_config, start_edgeport
from tests.support.ua import Received, sip


def tls_config(tmp_path: Path, ca: trustme.CA) -> SecurityContext:
    keystore = write_leaf_pkcs12(tmp_path / "edge.p12", "changeit", ca.issue_cert("127.0.0.1"))
    return SecurityContext(key_store=str(keystore), key_store_password="changeit")


def register(transport: str, host: str, port: int, user: str) -> bytes:
    return sip(
        f"""REGISTER sips:127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK-tls-{user};rport
Max-Forwards: 70
From: <sips:{user}@127.0.0.1>;tag=t{user}
To: <sips:{user}@127.0.0.1>
Call-ID: tls-register-{user}@test
CSeq: 1 REGISTER
Contact: <sips:{user}@{host}:{port};transport={transport.lower()}>
Expires: 60
Content-Length: 0

"""
    )


async def test_register_over_tls_and_wss(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    config = make_config(
        transports=(
            TransportConfig(Transport.UDP, 0, "127.0.0.1"),
            TransportConfig(Transport.TLS, 0, "127.0.0.1"),
            TransportConfig(Transport.WSS, 0, "127.0.0.1"),
        ),
        security_context=tls_config(tmp_path, ca),
    )
    server = await start_edgeport(nursery, config)
    points = {p.transport: p.port for p in server.listening_points}
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    with trio.fail_after(15):
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", points[Transport.TLS], ssl_context=client_context
        )
        async with stream:
            local_port = stream.transport_stream.socket.getsockname()[1]
            await stream.send_all(register("TLS", "127.0.0.1", local_port, "alice"))
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            answer = Received(data)
            assert answer.status == 200, answer.text
            assert "received=127.0.0.1" in answer.header("Via")

        async with trio_websocket.open_websocket(
            "127.0.0.1",
            points[Transport.WSS],
            "/",
            use_ssl=client_context,
            subprotocols=["sip"],
        ) as ws:
            await ws.send_message(register("WSS", "b0b.invalid", 0, "bob").decode())
            reply = Received((await ws.get_message()).encode())
            assert reply.status == 200, reply.text
    nursery.cancel_scope.cancel()
