"""UDP: one datagram is one message; replies leave from the listening port."""

from __future__ import annotations

import trio
from transport_helpers import Recorder, point, running_layer, sip_request

from edgeport.protection import EdgeGuard
from edgeport.protection.flood import FloodLimits
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


STUN_BINDING = bytes.fromhex("0001 0000 2112a442 b7e7a701bc34d686fa87dfae")


async def test_a_stun_binding_request_is_answered_from_the_listening_port() -> None:
    """RFC 5626 keep-alive on UDP: STUN is answered, not handed over as a bad SIP message."""
    with trio.fail_after(5):
        async with running_layer([Transport.UDP]) as (layer, recorder):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                await client.bind(("127.0.0.1", 0))
                await client.sendto(STUN_BINDING, server)
                data, source = await client.recvfrom(65535)
                assert source == server
                assert data[:2] == bytes.fromhex("0101")  # Binding Success Response
                assert data[8:20] == STUN_BINDING[8:20]  # its transaction ID
                port = client.getsockname()[1]
                # XOR-MAPPED-ADDRESS: 127.0.0.1 and the client's port, XORed with the cookie.
                assert data[20:] == bytes.fromhex("0020 0008 0001") + (port ^ 0x2112).to_bytes(
                    2, "big"
                ) + bytes(a ^ b for a, b in zip(bytes([127, 0, 0, 1]), data[4:8], strict=True))
                await client.sendto(sip_request(), server)
                assert (await recorder.next()).data == sip_request()
                assert recorder.pending() == 0
                assert layer.stats["stun_answered"] == 1


async def test_stun_that_is_not_a_binding_request_gets_no_answer() -> None:
    """A forged Binding response gets none: two STUN speakers cannot be set to ping-pong."""
    with trio.fail_after(5):
        async with running_layer([Transport.UDP]) as (layer, recorder):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                await client.bind(("127.0.0.1", 0))
                await client.sendto(bytes.fromhex("0101") + STUN_BINDING[2:], server)
                await client.sendto(sip_request(), server)
                assert (await recorder.next()).data == sip_request()
                with trio.move_on_after(0.2):
                    data, _ = await client.recvfrom(65535)
                    raise AssertionError(f"answered: {data!r}")
                assert layer.stats["stun_dropped"] == 1
                assert layer.stats["stun_answered"] == 0


async def test_a_stun_flood_is_limited_like_sip_requests() -> None:
    guard = EdgeGuard(flood=FloodLimits(requests=3, window=10.0, ban_time=30.0, max_tracked=10))
    with trio.fail_after(5):
        async with running_layer([Transport.UDP], guard=guard) as (layer, _recorder):
            server = point(layer, Transport.UDP)
            client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with client:
                await client.bind(("127.0.0.1", 0))
                for _ in range(10):
                    await client.sendto(STUN_BINDING, server)
                answers = 0
                with trio.move_on_after(0.3):
                    while True:
                        await client.recvfrom(65535)
                        answers += 1
                assert answers == 3
                assert layer.stats["stun_answered"] == 3
                assert guard.flood.banned("127.0.0.1", trio.current_time())
