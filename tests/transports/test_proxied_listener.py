"""Stream listeners behind a PROXY protocol balancer: real 127.0.0.1 sockets, a test
client writing the header itself (HAProxy itself is in tests/e2e/test_haproxy.py)."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
import trio
import trio.testing
import trio_websocket
import trustme
from transport_helpers import point, receive_until_eof, running_layer, sip_request

from edgeport.config import ClientAuthType, SecurityContext, TransportConfig
from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.transports.proxied import PROXY_HEADER_TIMEOUT, PrefixedStream, TrustedProxies
from edgeport.transports.proxy_protocol import build_v1, build_v2
from edgeport.transports.tls import build_server_context


def proxied(transport: Transport) -> TransportConfig:
    return TransportConfig(transport, 0, "127.0.0.1", proxy_protocol=True)


CLIENT = ("203.0.113.50", 41234)


async def test_v2_header_names_the_peer_and_following_bytes_are_kept() -> None:
    request = sip_request("REGISTER", call_id="pp1")
    with trio.fail_after(5):
        async with running_layer([proxied(Transport.TCP)], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            recorder,
        ):
            edge = point(layer, Transport.TCP)
            client = await trio.open_tcp_stream(*edge)
            async with client:
                # The header and the first request in one segment.
                await client.send_all(build_v2(CLIENT, edge) + request)
                message = await recorder.next()
                assert message.data == request
                assert message.peer == Peer(Transport.TCP, *CLIENT)
                assert message.connection is not None
                assert message.connection.peer == message.peer
                # The connection table knows it by the client's address.
                assert layer.connections.get(Transport.TCP, *CLIENT) is message.connection
                await layer.send(Peer(Transport.TCP, *CLIENT), b"SIP/2.0 200 OK\r\n\r\n")
                assert await client.receive_some(100) == b"SIP/2.0 200 OK\r\n\r\n"


async def test_v1_header_then_a_request_in_a_later_segment() -> None:
    request = sip_request(call_id="pp2")
    with trio.fail_after(5):
        async with running_layer([proxied(Transport.TCP)], trusted_proxies=["127.0.0.1"]) as (
            layer,
            recorder,
        ):
            edge = point(layer, Transport.TCP)
            client = await trio.open_tcp_stream(*edge)
            async with client:
                await client.send_all(build_v1(("2001:db8::50", 5070), ("2001:db8::1", 5060)))
                await trio.sleep(0.05)
                await client.send_all(request)
                message = await recorder.next()
                assert message.peer == Peer(Transport.TCP, "2001:db8::50", 5070)


async def test_local_command_keeps_the_real_peer() -> None:
    with trio.fail_after(5):
        async with running_layer([proxied(Transport.TCP)], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            recorder,
        ):
            client = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with client:
                await client.send_all(build_v2(None) + sip_request(call_id="pp3"))
                message = await recorder.next()
                assert message.peer == Peer(
                    Transport.TCP, "127.0.0.1", client.socket.getsockname()[1]
                )


@pytest.mark.parametrize(
    ("first_bytes", "stat"),
    [
        (sip_request(call_id="no-header"), "proxy_protocol_invalid"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 5060\r\n", "proxy_protocol_invalid"),
        (b"PROXY TCP4 1.2.3.4", "proxy_protocol_invalid"),  # then the client closes
    ],
)
async def test_without_a_valid_header_the_connection_is_closed(
    first_bytes: bytes, stat: str
) -> None:
    with trio.fail_after(5):
        async with running_layer([proxied(Transport.TCP)], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            recorder,
        ):
            client = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with client:
                await client.send_all(first_bytes)
                await client.send_eof()
                assert await receive_until_eof(client) == b""
            assert layer.stats[stat] == 1
            assert recorder.pending() == 0
            assert len(layer.connections) == 0


async def test_untrusted_peer_is_closed_even_with_a_valid_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(5):
        async with running_layer(
            [proxied(Transport.TCP)], trusted_proxies=["10.0.0.0/8", "::1"]
        ) as (layer, recorder):
            client = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with client:
                await client.send_all(build_v2(CLIENT) + sip_request(call_id="pp4"))
                assert await receive_until_eof(client) == b""
            assert layer.stats["proxy_protocol_untrusted"] == 1
            assert recorder.pending() == 0
    assert any("not a trusted proxy" in r.getMessage() for r in caplog.records)


async def test_a_peer_that_sends_nothing_is_closed_after_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(PROXY_HEADER_TIMEOUT * 3):
        async with running_layer([proxied(Transport.TCP)], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            _recorder,
        ):
            client = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with client:
                started = trio.current_time()
                assert await receive_until_eof(client) == b""
                assert trio.current_time() - started >= PROXY_HEADER_TIMEOUT
            assert layer.stats["proxy_protocol_timeout"] == 1


async def test_plain_listeners_are_untouched() -> None:
    request = sip_request(call_id="pp5")
    with trio.fail_after(5):
        async with running_layer([Transport.TCP], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            recorder,
        ):
            client = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with client:
                await client.send_all(request)
                message = await recorder.next()
                assert message.peer.port == client.socket.getsockname()[1]


async def test_tls_header_comes_before_the_handshake(
    security_context: Callable[[ClientAuthType], SecurityContext], ca: trustme.CA
) -> None:
    server_context = build_server_context(security_context(ClientAuthType.DISABLED))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    request = sip_request(call_id="pp6")
    with trio.fail_after(5):
        async with running_layer(
            [proxied(Transport.TLS)], tls=server_context, trusted_proxies=["127.0.0.0/8"]
        ) as (layer, recorder):
            tcp = await trio.open_tcp_stream(*point(layer, Transport.TLS))
            await tcp.send_all(build_v2(CLIENT))
            tls = trio.SSLStream(tcp, client_context, server_hostname="127.0.0.1")
            async with tls:
                await tls.send_all(request)
                message = await recorder.next()
                assert message.data == request
                assert message.peer == Peer(Transport.TLS, *CLIENT)


async def test_ws_header_comes_before_the_upgrade(nursery: trio.Nursery) -> None:
    with trio.fail_after(5):
        async with running_layer([proxied(Transport.WS)], trusted_proxies=["127.0.0.0/8"]) as (
            layer,
            recorder,
        ):
            host, port = point(layer, Transport.WS)
            tcp = await trio.open_tcp_stream(host, port)
            await tcp.send_all(build_v1(CLIENT, (host, port)))
            # The upgrade runs over the same TCP connection, after the header.
            ws = await trio_websocket.wrap_client_stream(
                nursery, tcp, host, "/", subprotocols=["sip"]
            )
            await ws.send_message(sip_request(call_id="pp7").decode())
            message = await recorder.next()
            assert message.peer == Peer(Transport.WS, *CLIENT)
            await ws.aclose()


async def test_trusted_proxies_matching() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"])
    assert "10.1.2.3" in trusted
    assert "[2001:db8::5]" in trusted
    assert "::ffff:10.0.0.1" in trusted
    assert "192.0.2.7" in trusted
    assert "192.0.2.8" not in trusted
    assert "lb.example.com" not in trusted
    assert not TrustedProxies([])


async def test_prefixed_stream_gives_the_prefix_first() -> None:
    left, right = trio.testing.memory_stream_pair()
    stream = PrefixedStream(right, b"abcdef")
    assert await stream.receive_some(4) == b"abcd"
    assert await stream.receive_some() == b"ef"
    await left.send_all(b"gh")
    assert await stream.receive_some(10) == b"gh"
    await stream.send_all(b"out")
    assert await left.receive_some(10) == b"out"
    await stream.aclose()
