"""WebSocket keep-alive Pings on real connections, with trio's MockClock: a silent peer
is pinged and then closed; a peer that answers stays until the idle timeout; Pongs
alone do not keep a connection from idling out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket
from transport_helpers import Recorder, point, running_layer, sip_request
from wsproto.events import Ping, Pong

from edgeport.config import ConnectionLimits
from edgeport.sip.transport import Transport
from edgeport.transports import TransportLayer
from tests.support.silent_ws import SilentWebSocket


@asynccontextmanager
async def silent_peer(
    *, idle_timeout: float, ping_interval: float
) -> AsyncIterator[tuple[TransportLayer, Recorder, SilentWebSocket, float]]:
    """A WS listener with these limits and a peer that sent one REGISTER and then keeps
    quiet (it answers no Ping). Yields the layer, its recorder, the peer and the time
    its REGISTER arrived."""
    limits = ConnectionLimits(idle_timeout=idle_timeout, web_socket_ping_interval=ping_interval)
    with trio.fail_after(1000):
        async with running_layer([Transport.WS], limits=limits) as (layer, recorder):
            silent = await SilentWebSocket.connect(*point(layer, Transport.WS))
            await silent.send(sip_request("REGISTER"))
            await recorder.next()
            yield layer, recorder, silent, trio.current_time()
            await silent.aclose()


async def test_a_silent_websocket_is_pinged_and_closed_after_three_intervals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with silent_peer(idle_timeout=600.0, ping_interval=25.0) as peer:
        layer, recorder, silent, start = peer
        assert await silent.closed_by_peer(within=200.0)
        # Pings after 25 and 50 s of silence; closed at 75 s, long before the idle timeout.
        assert silent.pings == 2
        assert trio.current_time() - start == pytest.approx(75.0, abs=1.0)
        await recorder.closed_event.wait()
        assert layer.stats["ws_ping_timeouts"] == 1
        assert layer.stats["connections_idle_closed"] == 0


async def test_a_websocket_that_answers_pings_stays_open_until_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = ConnectionLimits(idle_timeout=300.0, web_socket_ping_interval=25.0)
    with trio.fail_after(1000):
        async with running_layer([Transport.WS], limits=limits) as (layer, recorder):
            host, port = point(layer, Transport.WS)
            async with trio_websocket.open_websocket(
                host, port, "/", use_ssl=False, subprotocols=["sip"]
            ) as ws:
                await ws.send_message(sip_request())
                await recorder.next()
                start = trio.current_time()
                await trio.sleep(250.0)  # ten Pings answered by trio-websocket
                assert len(layer.connections) == 1
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await ws.get_message()
                # Pongs are no SIP traffic: the idle timeout still applies.
                assert trio.current_time() - start == pytest.approx(300.0, abs=1.0)
            await recorder.closed_event.wait()
            assert layer.stats["ws_ping_timeouts"] == 0
            assert layer.stats["connections_idle_closed"] == 1


async def test_unsolicited_pongs_do_not_keep_a_connection_from_idling_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with silent_peer(idle_timeout=300.0, ping_interval=0.0) as peer:
        layer, _, silent, start = peer
        for _ in range(4):  # a Pong every 60 s: RFC 6455 §5.5.3 allows them unsolicited
            await trio.sleep(60.0)
            await silent.stream.send_all(silent.ws.send(Pong(payload=b"here")))
        assert await silent.closed_by_peer(within=100.0)
        assert trio.current_time() - start == pytest.approx(300.0, abs=1.0)
        assert layer.stats["connections_idle_closed"] == 1


async def test_with_pings_off_a_silent_websocket_gets_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with silent_peer(idle_timeout=300.0, ping_interval=0.0) as peer:
        layer, _, silent, start = peer
        assert await silent.closed_by_peer(within=400.0)
        assert silent.pings == 0
        assert trio.current_time() - start == pytest.approx(300.0, abs=1.0)
        assert layer.stats["ws_ping_timeouts"] == 0


async def test_a_burst_of_client_pings_gets_a_pong_for_the_last_one_read() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.WS]) as (layer, recorder):
            client = await SilentWebSocket.connect(*point(layer, Transport.WS))
            burst = b"".join(client.ws.send(Ping(payload=b"%d" % n)) for n in range(2000))
            await client.stream.send_all(burst)
            pongs: list[bytes] = []
            with trio.move_on_after(0.3):
                while True:
                    data = await client.stream.receive_some(65536)
                    client.ws.receive_data(data)
                    pongs += [bytes(e.payload) for e in client.ws.events() if isinstance(e, Pong)]
            assert 1 <= len(pongs) <= 16  # one per read, not 2,000
            assert pongs[-1] == b"1999"  # RFC 6455 §5.5.3: the most recent Ping's
            await client.send(sip_request())
            assert (await recorder.next()).data == sip_request()
            await client.aclose()
