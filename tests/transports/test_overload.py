"""Overload at the transport layer over real sockets: bounded inbox and handlers, early shedding."""

from __future__ import annotations

import trio
from transport_helpers import Recorder, point, running_layer, sip_request

from edgeport.sip.transport import Transport
from edgeport.transports import InboundMessage
from edgeport.transports.inbox import InboxLimits, Lane

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-edge1\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>;tag=b1\r\n"
    b"Call-ID: call-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Gate(Recorder):
    """Records every message; handlers of requests wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()
        self.seen: list[bytes] = []

    async def __call__(self, message: InboundMessage) -> None:
        self.seen.append(message.data)
        if not message.data.startswith(b"SIP/2.0 "):
            await self.release.wait()
        await super().__call__(message)


async def until(condition: object, what: str) -> None:
    """Let the layer run until ``condition()`` holds (bounded: 10 s of 10 ms steps)."""
    assert callable(condition)
    for _ in range(1000):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_udp_burst_is_shed_unparsed_while_responses_get_through() -> None:
    gate = Gate()
    shed: list[str] = []
    limits = InboxLimits(max_new=4, max_new_wait=60.0)
    with trio.fail_after(15):
        async with running_layer(
            [Transport.UDP],
            gate,
            inbox=limits,
            max_new_tasks=2,
            max_admitted_tasks=2,
            on_shed=shed.append,
        ) as (layer, _):
            server = point(layer, Transport.UDP)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as client:
                await client.bind(("127.0.0.1", 0))
                for n in range(20):
                    await client.sendto(sip_request("REGISTER", f"reg-{n}"), server)
                    if n == 1:
                        await until(lambda: len(gate.seen) == 2, "two requests in handlers")
                await until(lambda: layer.stats["received_udp"] == 20, "20 datagrams read")
                await client.sendto(RINGING, server)

                # The response reaches the handler while both request handlers are stuck.
                await until(lambda: RINGING in gate.seen, "the 180 handled")
                assert [d for d in gate.seen if d != RINGING] == [
                    sip_request("REGISTER", "reg-0"),
                    sip_request("REGISTER", "reg-1"),
                ]
                assert shed == ["overload_shed"] * 14
                assert layer.stats["shed_new_full"] == 14
                assert layer.inbox.peaks[Lane.NEW] == 4
                assert layer.handler_tasks <= 2 + 2

                gate.release.set()
                await until(lambda: len(gate.seen) == 7, "the waiting requests handled")
                # The four newest waited; the older ones were shed to make room.
                assert gate.seen[3:] == [sip_request("REGISTER", f"reg-{n}") for n in range(16, 20)]
                assert layer.inbox.peaks[Lane.NEW] == 4
                assert len(layer.inbox) == 0


async def test_stream_requests_shed_are_handed_to_refuse() -> None:
    gate = Gate()
    refused: list[bytes] = []
    shed: list[str] = []

    async def refuse(message: InboundMessage) -> None:
        refused.append(message.data)

    with trio.fail_after(15):
        async with running_layer(
            [Transport.TCP],
            gate,
            inbox=InboxLimits(max_new=1, max_new_wait=60.0),
            max_new_tasks=1,
            refuse=refuse,
            on_shed=shed.append,
        ) as (layer, _):
            stream = await trio.open_tcp_stream(*point(layer, Transport.TCP))
            async with stream:
                await stream.send_all(sip_request("REGISTER", "tcp-0"))
                await until(lambda: len(gate.seen) == 1, "the first request in its handler")
                for n in (1, 2):
                    await stream.send_all(sip_request("REGISTER", f"tcp-{n}"))
                    await until(lambda n=n: layer.stats["received_tcp"] == n + 1, "one read")

                await until(lambda: len(refused) == 1, "one refusal")
                assert refused == [sip_request("REGISTER", "tcp-1")]
                assert shed == []  # a refusal is counted by whoever answers it
                gate.release.set()
                await until(lambda: len(gate.seen) == 2, "the waiting request handled")
                assert gate.seen == [
                    sip_request("REGISTER", "tcp-0"),
                    sip_request("REGISTER", "tcp-2"),
                ]
