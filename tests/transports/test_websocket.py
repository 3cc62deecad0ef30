"""WS and WSS (RFC 7118): the sip subprotocol, Origin check, messages, alias routing."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
import trio
import trio.testing
import trio_websocket
from transport_helpers import point, running_layer, sip_request

from edgeport.config import ClientAuthType, SecurityContext, WebSocketConfig
from edgeport.sip.transport import Transport
from edgeport.transports import NoRoute, Peer
from edgeport.transports.tls import build_server_context
from edgeport.transports.websocket import WebSocketConnection


async def test_ws_text_and_binary_messages_and_replies() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                assert ws.subprotocol == "sip"
                await ws.send_message(sip_request("REGISTER").decode())
                message = await recorder.next()
                assert message.data == sip_request("REGISTER")
                assert message.peer.transport is Transport.WS
                assert isinstance(message.connection, WebSocketConnection)

                await ws.send_message(sip_request("MESSAGE", body=b"\xff\x00"))
                binary = await recorder.next()
                assert binary.data == sip_request("MESSAGE", body=b"\xff\x00")

                await ws.send_message("\r\n\r\n")  # keepalive as a message: dropped
                await layer.send(message.peer, b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                assert await ws.get_message() == "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
                await layer.send(message.peer, b"MESSAGE binary \xff")
                assert await ws.get_message() == b"MESSAGE binary \xff"
                assert recorder.pending() == 0


async def test_handshake_without_sip_subprotocol_is_refused() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, _recorder):
            host, port = point(layer, Transport.WS)
            with pytest.raises(trio_websocket.ConnectionRejected) as caught:
                async with trio_websocket.open_websocket(host, port, "/", use_ssl=False):
                    pass
            assert caught.value.status_code == 400
            assert layer.stats["ws_handshake_refused"] == 1
            assert len(layer.connections) == 0


async def test_origin_allow_list() -> None:
    config = WebSocketConfig(allowed_origins=("https://app.example.com",))
    with trio.fail_after(5):
        async with running_layer([Transport.WS], websocket=config) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            with pytest.raises(trio_websocket.ConnectionRejected) as caught:
                async with trio_websocket.open_websocket(
                    host,
                    port,
                    "/",
                    use_ssl=False,
                    subprotocols=["sip"],
                    extra_headers=[(b"Origin", b"https://evil.example.com")],
                ):
                    pass
            assert caught.value.status_code == 403
            async with trio_websocket.open_websocket(
                host,
                port,
                "/",
                use_ssl=False,
                subprotocols=["sip"],
                extra_headers=[(b"Origin", b"https://APP.example.com")],
            ) as ws:
                await ws.send_message(sip_request())
                assert (await recorder.next()).data == sip_request()


async def test_invalid_hosts_route_through_their_alias() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            contact_host = Peer(Transport.WS, "DF7jal23LS0d.invalid", 5060)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request("REGISTER"))
                message = await recorder.next()
                assert message.connection is not None
                layer.connections.bind_alias("df7jal23ls0d.invalid", message.connection)
                await layer.send(contact_host, sip_request("BYE", call_id="in-dialog"))
                assert await ws.get_message() == sip_request("BYE", call_id="in-dialog").decode()
            await recorder.closed_event.wait()
            assert layer.connections.lookup_alias("df7jal23ls0d.invalid") is None
            with pytest.raises(NoRoute):
                await layer.send(contact_host, sip_request("BYE", call_id="too-late"))


async def test_wss_uses_the_tls_context(
    security_context: Callable[[ClientAuthType], SecurityContext],
    client_context: Callable[[bool], ssl.SSLContext],
) -> None:
    tls = build_server_context(security_context(ClientAuthType.DISABLED))
    with trio.fail_after(5):
        async with running_layer([Transport.WSS, Transport.TLS], tls=tls) as (layer, recorder):
            host, port = point(layer, Transport.WSS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=client_context(False), subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request())
                message = await recorder.next()
                assert message.peer.transport is Transport.WSS
                assert message.local == layer.listening_point(Transport.WSS)
                await layer.send(message.peer, b"SIP/2.0 200 OK\r\n\r\n")
                assert await ws.get_message() == "SIP/2.0 200 OK\r\n\r\n"


async def test_handshake_has_a_deadline(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):
        async with running_layer([Transport.WS]) as (layer, _recorder):
            client = await trio.open_tcp_stream(*point(layer, Transport.WS))
            async with client:
                await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
                while await client.receive_some(1000):
                    pass
            assert layer.stats["ws_handshake_timeout"] == 1
