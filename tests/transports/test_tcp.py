"""TCP: framing on a real stream, keepalives, limits, idle timeout, connection reuse."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio
import trio.testing
from transport_helpers import Recorder, point, receive_until_eof, running_layer, sip_request

from edgeport.config import ConnectionLimits, TransportConfig
from edgeport.sip.transport import Transport
from edgeport.transports import (
    BindError,
    InboundMessage,
    NoRoute,
    Peer,
    SendError,
    TransportLayer,
    serve_transports,
)


async def connect(layer_point: tuple[str, int]) -> trio.SocketStream:
    return await trio.open_tcp_stream(*layer_point)


async def test_split_message_is_delivered_once_whole() -> None:
    request = sip_request("MESSAGE", body=b"hello world")
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                for piece in (request[:10], request[10:60], request[60:-3], request[-3:]):
                    await client.send_all(piece)
                    await trio.sleep(0.01)
                message = await recorder.next()
                assert message.data == request
                assert message.connection is not None
                assert message.peer == message.connection.peer
                assert message.peer.port == client.socket.getsockname()[1]
                assert message.local == layer.listening_point(Transport.TCP)
                await trio.sleep(0.05)
                assert recorder.pending() == 0


async def test_pipelined_messages() -> None:
    requests = [sip_request(call_id=f"p{i}", body=b"x" * i) for i in range(5)]
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(b"".join(requests))
                received = [(await recorder.next()).data for _ in requests]
                assert received == requests
                assert layer.stats["received_tcp"] == 5


async def test_handlers_start_in_arrival_order() -> None:
    # trio starts the tasks of one batch in either order; the handlers must
    # still begin in the order the messages arrived (an INVITE before its CANCEL).
    requests = [sip_request(call_id=f"order{i}") for i in range(20)]
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                for _ in range(5):
                    await client.send_all(b"".join(requests))
                    received = [(await recorder.next()).data for _ in requests]
                    assert received == requests


async def test_keepalive_ping_gets_a_pong() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(b"\r\n\r\n")
                assert await client.receive_some(10) == b"\r\n"
                await client.send_all(sip_request())
                assert (await recorder.next()).data == sip_request()


async def test_a_burst_of_keepalive_pings_gets_one_pong_per_read_not_one_each() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(b"\r\n\r\n" * 4000)  # 16,000 bytes of pings
                received = b""
                with trio.move_on_after(0.3):
                    while True:
                        received += await client.receive_some(65536)
                assert received
                assert not received.strip(b"\r\n")
                assert len(received) // 2 <= 16  # a pong per read, not 4,000
                await client.send_all(sip_request())
                assert (await recorder.next()).data == sip_request()


async def test_oversized_message_gets_513_then_close() -> None:
    head = (
        b"MESSAGE sip:edge@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-big\r\n"
        b"To: <sip:edge@example.com>\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\n"
        b"Call-ID: big-1\r\n"
        b"CSeq: 7 MESSAGE\r\n"
        b"Content-Length: 2000000\r\n"
        b"\r\n"
    )
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(head + b"x" * 1000)
                reply = await receive_until_eof(client)
            assert reply.startswith(b"SIP/2.0 513 Message Too Large\r\n")
            assert b"Call-ID: big-1\r\n" in reply
            assert b"CSeq: 7 MESSAGE\r\n" in reply
            assert b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-big\r\n" in reply
            assert b"To: <sip:edge@example.com>;tag=" in reply
            await recorder.closed_event.wait()
            assert recorder.pending() == 0
            assert len(layer.connections) == 0


async def test_garbage_closes_without_reply() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await receive_until_eof(client) == b""
            assert recorder.pending() == 0
            assert layer.stats["dropped_not_a_sip_start_line"] == 1


async def test_idle_connection_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    limits = ConnectionLimits(idle_timeout=30.0)
    with trio.fail_after(300):
        async with running_layer([Transport.TCP], limits=limits) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(sip_request())
                await recorder.next()
                start = trio.current_time()
                assert await receive_until_eof(client) == b""
                assert trio.current_time() - start >= 30.0
            await recorder.closed_event.wait()
            assert layer.stats["connections_idle_closed"] == 1


async def test_peer_disconnecting_mid_message() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            await client.send_all(sip_request(body=b"0123456789")[:-4])
            await client.aclose()
            await recorder.closed_event.wait()
            assert recorder.pending() == 0
            assert layer.stats["dropped_partial"] == 1
            assert len(layer.connections) == 0


async def test_inbound_connection_carries_outbound_sends() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(sip_request("REGISTER"))
                message = await recorder.next()
                assert len(layer.connections) == 1
                # a new request to the registered client reuses its connection
                target = Peer(Transport.TCP, "127.0.0.1", message.peer.port)
                await layer.send(target, sip_request("OPTIONS", call_id="to-client"))
                assert await client.receive_some(65536) == sip_request(
                    "OPTIONS", call_id="to-client"
                )
                assert len(layer.connections) == 1
                assert layer.stats["connections_opened"] == 1


async def test_outbound_connection_is_opened_once_and_reused() -> None:
    accepted: list[trio.SocketStream] = []
    received = bytearray()
    got_both = trio.Event()
    expected = sip_request(call_id="o1") + sip_request(call_id="o2")

    async def next_hop(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        while len(received) < len(expected):
            received.extend(await stream.receive_some(65536))
        got_both.set()
        await stream.send_all(b"SIP/2.0 200 OK\r\nCall-ID: o1\r\nContent-Length: 0\r\n\r\n")
        await trio.sleep_forever()

    with trio.fail_after(5):
        async with (
            running_layer([Transport.TCP]) as (layer, recorder),
            trio.open_nursery() as nursery,
        ):
            listeners = await nursery.start(partial(trio.serve_tcp, next_hop, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            target = Peer(Transport.TCP, "127.0.0.1", port)
            async with trio.open_nursery() as senders:
                senders.start_soon(layer.send, target, sip_request(call_id="o1"))
                await trio.sleep(0)
                senders.start_soon(layer.send, target, sip_request(call_id="o2"))
            await got_both.wait()
            assert len(accepted) == 1
            assert received in (
                bytearray(expected),
                bytearray(sip_request(call_id="o2") + sip_request(call_id="o1")),
            )
            # the outbound connection's reads are served like an inbound one's
            reply = await recorder.next()
            assert reply.data.startswith(b"SIP/2.0 200 OK")
            assert reply.connection is not None
            assert reply.connection.outbound
            assert layer.connections.get(Transport.TCP, "127.0.0.1", port) is reply.connection
            await layer.send(target, sip_request(call_id="o3"))
            assert len(accepted) == 1
            nursery.cancel_scope.cancel()


async def test_connect_failure_is_a_send_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with trio.fail_after(15):
        async with running_layer([Transport.TCP]) as (layer, _):
            with pytest.raises(SendError):
                await layer.send(Peer(Transport.TCP, "127.0.0.1", closed_port), sip_request())
            assert layer.stats["connect_failed_tcp"] == 1


async def test_websocket_and_invalid_hosts_need_a_connection() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, _):
            with pytest.raises(NoRoute):
                await layer.send(Peer(Transport.WS, "127.0.0.1", 80), sip_request())
            with pytest.raises(NoRoute):
                await layer.send(Peer(Transport.TCP, "df7jal23ls0d.invalid", 5060), sip_request())


async def test_connection_limit_refuses_new_connections() -> None:
    limits = ConnectionLimits(max_connections=1)
    with trio.fail_after(5):
        async with running_layer([Transport.TCP], limits=limits) as (layer, recorder):
            first = await connect(point(layer, Transport.TCP))
            async with first:
                await first.send_all(sip_request())
                await recorder.next()
                second = await connect(point(layer, Transport.TCP))
                async with second:
                    assert await receive_until_eof(second) == b""
                assert layer.stats["connections_refused"] == 1
                await first.send_all(sip_request(call_id="still-open"))
                assert (await recorder.next()).data == sip_request(call_id="still-open")


async def test_close_removes_the_connection_and_reports_it() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            client = await connect(point(layer, Transport.TCP))
            async with client:
                await client.send_all(sip_request())
                message = await recorder.next()
                assert message.connection is not None
                message.connection.close()
                assert await receive_until_eof(client) == b""
            await recorder.closed_event.wait()
            assert recorder.closed == [message.connection]
            assert len(layer.connections) == 0
            with pytest.raises(SendError):
                await layer.send_on(message.connection, b"late")


async def test_a_taken_port_is_a_bind_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = TransportConfig(Transport.TCP, port, "127.0.0.1")
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                with pytest.raises(BindError) as caught:
                    await nursery.start(serve_transports, [config], Recorder())
    assert str(caught.value).startswith(f"unable to bind tcp://127.0.0.1:{port}: ")
    assert caught.value.startup_error
    assert isinstance(caught.value, OSError)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")
async def test_ipv6_loopback() -> None:
    configs = [TransportConfig(Transport.TCP, 0, "::1"), TransportConfig(Transport.UDP, 0, "::1")]
    with trio.fail_after(5):
        async with running_layer(configs) as (layer, recorder):
            host, port = point(layer, Transport.TCP)
            assert host == "::1"
            client = await trio.open_tcp_stream("::1", port)
            async with client:
                await client.send_all(sip_request())
                message: InboundMessage = await recorder.next()
                assert message.peer.host == "::1"
                await layer.send(Peer(Transport.TCP, "[::1]", message.peer.port), b"pong\r\n")
                assert await client.receive_some(100) == b"pong\r\n"
            udp = trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM)
            with udp:
                await udp.sendto(sip_request(), point(layer, Transport.UDP))
                message = await recorder.next()
                assert message.peer.transport is Transport.UDP
                assert message.peer.host == "::1"


async def test_concurrent_sends_share_one_failed_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    failures: list[SendError] = []

    async def send(layer: TransportLayer) -> None:
        try:
            await layer.send(Peer(Transport.TCP, "127.0.0.1", closed_port), sip_request())
        except SendError as exc:
            failures.append(exc)

    with trio.fail_after(15):
        async with running_layer([Transport.TCP]) as (layer, _):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(send, layer)
            assert len(failures) == 3
            assert layer.stats["connect_failed_tcp"] == 1


async def test_stop_accepting_keeps_open_connections() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.TCP]) as (layer, recorder):
            address = point(layer, Transport.TCP)
            client = await connect(address)
            async with client:
                await client.send_all(sip_request(call_id="before"))
                await recorder.next()
                layer.stop_accepting()
                await trio.sleep(0.05)
                with pytest.raises(OSError, match="all attempts to connect"):
                    await connect(address)
                await client.send_all(sip_request(call_id="after"))
                assert (await recorder.next()).data == sip_request(call_id="after")
