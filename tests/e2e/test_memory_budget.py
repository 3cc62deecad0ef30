"""The memory budget under a flood of large messages from many sources
(127.0.0.0/8 addresses): what edgeport holds stays within its shares, and a
legitimate client keeps being served."""

from __future__ import annotations

import trio

from edgeport.config import LimitsConfig
from edgeport.metrics import METRICS
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.ua import UdpUA, sip

BUDGET = 16 * 2**20  # the smallest budget edgeport takes
FLOOD_SOURCES = 200
FLOOD_ROUNDS = 10
BODY = 30_000  # bytes: large, but one datagram
# An answered transaction keeps the bytes of its response, and a response
# copies every Via of its request (RFC 3261 §8.2.6.2): with these, each one
# the flood leaves behind holds about 17 KB, so that together they need more
# than the transactions share.
FLOOD_VIAS = 16  # Via lines under the flood's own
VIA_PADDING = 1_000  # characters of each


def options(n: int, port: int, body: int = 0, vias: int = 0) -> bytes:
    lower = "".join(
        f"Via: SIP/2.0/UDP 127.0.0.{2 + i}:5060;branch=z9hG4bK-{i}-{'v' * VIA_PADDING}\n"
        for i in range(vias)
    )
    head = f"""OPTIONS sip:127.0.0.1:{port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-flood-{n};rport
{lower}Max-Forwards: 70
From: <sip:flood@127.0.0.1>;tag=f{n}
To: <sip:127.0.0.1:{port}>
Call-ID: flood-{n}@test
CSeq: 1 OPTIONS
Content-Type: text/plain
Content-Length: {body}

"""
    return sip(head) + b"x" * body


def within_budget(server: RunningServer) -> None:
    memory = server.transports.memory
    # A response is charged when it goes out, whatever it costs; the next new
    # transaction makes room: allow one answer's worth over the share.
    assert memory.transactions.used <= memory.transactions.limit + 64 * 1024
    assert memory.inbox.used <= memory.inbox.limit
    assert memory.streams.used <= memory.streams.limit


async def flood_udp(server: RunningServer, rounds: int) -> None:
    port = address(server, Transport.UDP)[1]
    socks = []
    for n in range(FLOOD_SOURCES):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind((f"127.{1 + n // 250}.{n % 250}.{7}", 0))
        socks.append(sock)
    try:
        for round_ in range(rounds):
            for n, sock in enumerate(socks):
                await sock.sendto(
                    options(round_ * FLOOD_SOURCES + n, port, BODY, FLOOD_VIAS),
                    ("127.0.0.1", port),
                )
            within_budget(server)
            await trio.sleep(0)
    finally:
        for sock in socks:
            sock.close()


async def test_a_flood_of_large_messages_stays_within_the_memory_budget(
    nursery: trio.Nursery,
) -> None:
    server = await start_edgeport(nursery, make_config(limits=LimitsConfig(memory=BUDGET)))
    legit = await UdpUA.open(address(server, Transport.UDP))
    port = address(server, Transport.UDP)[1]
    evicted_before = METRICS.transactions_evicted.labels().value
    async with trio.open_nursery() as flood:
        flood.start_soon(flood_udp, server, FLOOD_ROUNDS)
        # A legitimate client is answered while the flood runs.
        for n in range(5):
            await legit.send(
                sip(
                    f"""OPTIONS sip:127.0.0.1:{port} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{legit.port};branch=z9hG4bK-legit-{n};rport
Max-Forwards: 70
From: <sip:legit@127.0.0.1>;tag=l{n}
To: <sip:127.0.0.1:{port}>
Call-ID: legit-{n}@test
CSeq: 1 OPTIONS
Content-Length: 0

"""
                )
            )
            answer = await legit.receive_until(
                lambda m, n=n: m.header("Call-ID") == f"legit-{n}@test", timeout=10
            )
            assert answer.status == 200
            within_budget(server)
    within_budget(server)
    memory = server.transports.memory
    # The flood needed more than the transactions share: answered ones made room.
    assert memory.transactions.peak > memory.transactions.limit // 2
    assert METRICS.transactions_evicted.labels().value > evicted_before


async def test_partial_stream_messages_cannot_take_more_than_the_streams_share(
    nursery: trio.Nursery,
) -> None:
    # Connections that each start a 1 MiB message and never finish it: past
    # the streams share, the connection that grows is closed.
    server = await start_edgeport(nursery, make_config(limits=LimitsConfig(memory=BUDGET)))
    host, port = address(server, Transport.TCP)
    share = server.transports.memory.streams.limit
    head = sip(
        f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-slow
Max-Forwards: 70
From: <sip:slow@127.0.0.1>;tag=s
To: <sip:bob@127.0.0.1>
Call-ID: slow@test
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: {2**20 - 400}

"""
    )
    streams: list[trio.SocketStream] = []
    closed = 0
    try:
        for _ in range(2 * share // (512 * 1024) + 2):
            stream = await trio.open_tcp_stream(host, port)
            try:
                await stream.send_all(head + b"y" * (512 * 1024))
            except trio.BrokenResourceError:
                # edgeport closed this one while it was still being written:
                # it is the connection that grew past the share.
                closed += 1
                await stream.aclose()
                continue
            streams.append(stream)
        with trio.fail_after(10):
            while server.transports.stats["dropped_memory_budget"] == 0:
                await trio.sleep(0.02)
        within_budget(server)
        for stream in streams:
            with trio.move_on_after(0.2):
                try:
                    if await stream.receive_some(1) == b"":
                        closed += 1
                except trio.BrokenResourceError:
                    closed += 1
    finally:
        for stream in streams:
            await stream.aclose()
    assert closed >= 1
    assert server.transports.memory.streams.peak <= share
    # What the closed ones held was given back.
    with trio.fail_after(5):
        while server.transports.memory.streams.used > share // 2:
            await trio.sleep(0.02)
