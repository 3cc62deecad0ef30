"""UDP: one datagram is one message; replies leave from the listening port."""

from __future__ import annotations

import trio
from transport_helpers import Recorder, point, running_layer, sip_request

from edgeport.sip.transport import Transport
from edgeport.transports import InboundMessage, Peer, SendError


async def test_udp_round_trip() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.UDP]) as (layer, recorder):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                await client.bind(("127.0.0.1", 0))
                request = sip_request("REGISTER")
                await client.sendto(request, server)

                message = await recorder.next()
                assert message.data == request
                assert message.peer == Peer(Transport.UDP, "127.0.0.1", client.getsockname()[1])
                assert message.connection is None
                assert message.local == Peer(Transport.UDP, *server)

                await layer.send(message.peer, b"SIP/2.0 200 OK\r\n\r\n")
                data, source = await client.recvfrom(65535)
                assert data == b"SIP/2.0 200 OK\r\n\r\n"
                assert source == server  # from the listening socket
                assert layer.stats["received_udp"] == 1
                assert layer.stats["sent_udp"] == 1


async def test_keepalive_datagrams_are_dropped() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.UDP]) as (layer, recorder):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                for keepalive in (b"\r\n\r\n", b"\r\n", b""):
                    await client.sendto(keepalive, server)
                await client.sendto(sip_request(), server)
                message = await recorder.next()
                assert message.data == sip_request()
                assert layer.stats["udp_keepalives"] == 3


async def test_handler_failure_does_not_stop_the_listener() -> None:
    seen: list[bytes] = []
    done = trio.Event()

    class Failing(Recorder):
        async def __call__(self, message: InboundMessage) -> None:
            seen.append(message.data)
            if len(seen) == 1:
                raise RuntimeError("handler bug")
            done.set()

    with trio.fail_after(5):
        async with running_layer([Transport.UDP], Failing()) as (layer, _):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                await client.sendto(sip_request(call_id="one"), server)
                while not seen:
                    await trio.sleep(0.01)
                await client.sendto(sip_request(call_id="two"), server)
                await done.wait()
            assert seen == [sip_request(call_id="one"), sip_request(call_id="two")]
            assert layer.stats["handler_errors"] == 1


async def test_udp_send_failure_raises_send_error() -> None:
    with trio.fail_after(5):
        async with running_layer([Transport.UDP]) as (layer, _):
            too_big = b"x" * 70_000  # over the UDP payload limit: EMSGSIZE
            try:
                await layer.send(Peer(Transport.UDP, "127.0.0.1", 9), too_big)
            except SendError:
                pass
            else:
                raise AssertionError("expected SendError")
            assert layer.stats["send_failed_udp"] == 1
