"""WS and WSS (RFC 7118): the sip subprotocol, Origin check, messages, alias routing."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
import wsproto.events
from transport_helpers import point, receive_until_eof, running_layer, sip_request

from edgeport.config import ClientAuthType, ConnectionLimits, SecurityContext, WebSocketConfig
from edgeport.sip.transport import Transport
from edgeport.transports import NoRoute, Peer, TransportLayer
from edgeport.transports.alias_probe import ALIAS_PROBES, AliasProber
from edgeport.transports.connections import AliasClaim
from edgeport.transports.tls import build_server_context
from edgeport.transports.websocket import WebSocketConnection
from tests.support.silent_ws import SilentWebSocket


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


async def test_ping_is_answered_with_a_pong() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, _recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.ping(b"are you there")  # returns once the matching pong is back
                await ws.ping(b"still there")


async def test_client_close_runs_the_close_handshake() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request())
                await recorder.next()
                await ws.aclose(code=1000, reason="bye")
                assert ws.closed is not None
                assert ws.closed.code == 1000  # the server echoed our close frame
            await recorder.closed_event.wait()
            assert len(layer.connections) == 0


async def test_server_close_runs_the_close_handshake() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request())
                message = await recorder.next()
                assert message.connection is not None
                message.connection.close()
                with pytest.raises(trio_websocket.ConnectionClosed) as caught:
                    await ws.get_message()
                assert caught.value.reason.code == 1000
            await recorder.closed_event.wait()
            assert len(layer.connections) == 0


async def test_idle_websocket_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    limits = ConnectionLimits(idle_timeout=30.0)
    with trio.fail_after(300):
        async with running_layer([Transport.WS], limits=limits) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request())
                await recorder.next()
                start = trio.current_time()
                with pytest.raises(trio_websocket.ConnectionClosed) as caught:
                    await ws.get_message()
                assert caught.value.reason.code == 1000
                assert trio.current_time() - start >= 30.0
            await recorder.closed_event.wait()
            assert layer.stats["connections_idle_closed"] == 1


async def test_message_over_the_size_limit_closes_with_1009() -> None:
    limit = 2_000
    with trio.fail_after(5):
        async with running_layer([Transport.WS], max_message_bytes=limit) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                at_limit = sip_request(body=b"x" * (limit - len(sip_request()) - 4))
                at_limit = at_limit + b"x" * (limit - len(at_limit))
                assert len(at_limit) == limit
                await ws.send_message(at_limit)
                assert (await recorder.next()).data == at_limit
                await ws.send_message(at_limit + b"y")
                with pytest.raises(trio_websocket.ConnectionClosed) as caught:
                    await ws.get_message()
                assert caught.value.reason.code == 1009
            await recorder.closed_event.wait()
            assert recorder.pending() == 0


async def open_sans_io_websocket(
    layer: TransportLayer,
) -> tuple[trio.SocketStream, wsproto.WSConnection]:
    """A raw client (wsproto over a TCP stream) past the handshake, for frames
    trio-websocket does not send."""
    stream = await trio.open_tcp_stream(*point(layer, Transport.WS))
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(
        client.send(wsproto.events.Request(host="x", target="/", subprotocols=["sip"]))
    )
    accepted = None
    while accepted is None:
        client.receive_data(await stream.receive_some(4096))
        accepted = next(iter(client.events()), None)
    assert isinstance(accepted, wsproto.events.AcceptConnection)
    assert accepted.subprotocol == "sip"
    return stream, client


async def test_fragmented_message_is_delivered_once_whole() -> None:
    """RFC 6455 §5.4 fragments: still one SIP message per WebSocket message."""
    request = sip_request("MESSAGE", body="héllo".encode())
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            stream, client = await open_sans_io_websocket(layer)
            async with stream:
                text = request.decode()
                for start in range(0, len(text), 50):
                    chunk = text[start : start + 50]
                    finished = start + 50 >= len(text)
                    await stream.send_all(
                        client.send(wsproto.events.TextMessage(chunk, message_finished=finished))
                    )
                await stream.send_all(client.send(wsproto.events.TextMessage("\r\n\r\n")))
                await stream.send_all(client.send(wsproto.events.BytesMessage(sip_request())))
                assert (await recorder.next()).data == request
                assert (await recorder.next()).data == sip_request()
                assert recorder.pending() == 0
            # gone without a close frame: the connection still leaves the table
            await recorder.closed_event.wait()
            assert len(layer.connections) == 0


async def test_protocol_error_fails_the_connection_with_1002() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            stream, client = await open_sans_io_websocket(layer)
            async with stream:
                # RFC 6455 §5.1: a client MUST mask every frame; this one is not masked.
                await stream.send_all(b"\x81\x02hi")
                closing = None
                while closing is None:
                    client.receive_data(await stream.receive_some(4096))
                    closing = next(iter(client.events()), None)
                assert isinstance(closing, wsproto.events.CloseConnection)
                assert closing.code == 1002
                # RFC 6455 §7.1.7: the server closes without waiting for our Close.
                assert await receive_until_eof(stream) == b""
            await recorder.closed_event.wait()
            assert layer.stats["ws_protocol_errors"] == 1
            assert recorder.pending() == 0


async def test_malformed_upgrade_is_refused_at_once() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, _recorder):
            client = await trio.open_tcp_stream(*point(layer, Transport.WS))
            async with client:
                await client.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # no Upgrade
                response = await receive_until_eof(client)
            assert response.startswith(b"HTTP/1.1 400 ")
            assert layer.stats["ws_handshake_refused"] == 1
            assert layer.stats["ws_handshake_timeout"] == 0
            assert len(layer.connections) == 0


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_a_claimed_alias_stays_with_a_holder_that_answers_the_probe() -> None:
    alias = Peer(Transport.WS, "abc.invalid", 0)
    with trio.fail_after(10):
        async with running_layer([Transport.WS]) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with (
                trio_websocket.open_websocket(
                    host, port, "/", use_ssl=False, subprotocols=["sip"]
                ) as browser,
                trio_websocket.open_websocket(
                    host, port, "/", use_ssl=False, subprotocols=["sip"]
                ) as attacker,
            ):
                await browser.send_message(sip_request("REGISTER"))
                holder = (await recorder.next()).connection
                assert holder is not None
                assert layer.connections.bind_alias("abc.invalid", holder) is AliasClaim.BOUND
                await attacker.send_message(sip_request("OPTIONS", call_id="attack"))
                claimant = (await recorder.next()).connection
                assert claimant is not None
                answered = ALIAS_PROBES.labels(result="answered").value
                assert layer.connections.bind_alias("abc.invalid", claimant) is AliasClaim.REFUSED
                # trio-websocket answers the Ping: the holder keeps the alias.
                await wait_until(lambda: ALIAS_PROBES.labels(result="answered").value > answered)
                assert not holder.closed
                await layer.send(alias, sip_request("BYE", call_id="in-dialog"))
                assert (
                    await browser.get_message() == sip_request("BYE", call_id="in-dialog").decode()
                )
                with trio.move_on_after(0.2):
                    raise AssertionError(f"the attacker got {await attacker.get_message()!r}")


async def test_a_holder_that_does_not_answer_the_probe_is_closed_and_its_alias_moves() -> None:
    alias = Peer(Transport.WS, "abc.invalid", 0)
    with trio.fail_after(20):
        async with (
            trio.open_nursery() as probes,
            running_layer([Transport.WS], prober=AliasProber(probes, timeout=0.5)) as (
                layer,
                recorder,
            ),
        ):
            host, port = point(layer, Transport.WS)
            old = await SilentWebSocket.connect(host, port)
            await old.send(sip_request("REGISTER", call_id="old"))
            stale = (await recorder.next()).connection
            assert stale is not None
            assert layer.connections.bind_alias("abc.invalid", stale) is AliasClaim.BOUND
            unanswered = ALIAS_PROBES.labels(result="unanswered").value
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as new:
                await new.send_message(sip_request("REGISTER", call_id="new"))
                fresh = (await recorder.next()).connection
                assert fresh is not None
                assert layer.connections.bind_alias("abc.invalid", fresh) is AliasClaim.REFUSED
                assert await old.closed_by_peer(within=10.0)
                assert old.pings == 1
                assert ALIAS_PROBES.labels(result="unanswered").value == unanswered + 1
                await wait_until(lambda: layer.connections.lookup_alias("abc.invalid") is fresh)
                await layer.send(alias, sip_request("BYE", call_id="in-dialog"))
                assert await new.get_message() == sip_request("BYE", call_id="in-dialog").decode()
            await old.aclose()
            probes.cancel_scope.cancel()
