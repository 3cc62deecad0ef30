"""Edge protection over real sockets: access lists, scanners, floods and bans, slow and
too many connections. The processor records what reaches it."""

from __future__ import annotations

from pathlib import Path

import trio
import trio_asyncio
import trustme

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.config import (
    AccessControlConfig,
    FloodConfig,
    ProcessorConfig,
    ProtectionConfig,
    SecurityContext,
    TransportConfig,
)
from edgeport.metrics import METRICS
from edgeport.server import RunningServer
from edgeport.sip.transport import Transport
from tests.config_fixtures import write_leaf_pkcs12
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import Received, sip

OTHER_HOST = "127.0.0.2"  # a second loopback source, neither trusted nor the processor
QUIET = 0.5  # seconds to listen for an answer that must not come


def ok_reply(_request: MessageRequest) -> MessageResponse:
    return MessageResponse(
        message=sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
    )


def options(port: int, n: int, user_agent: str = "Linphone/5.2") -> bytes:
    return sip(
        f"""OPTIONS sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-prot-{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=p{n}
To: <sip:bob@127.0.0.1>
Call-ID: prot-{n}-{port}@test
CSeq: {n} OPTIONS
User-Agent: {user_agent}
Content-Length: 0

"""
    )


class Udp:
    """A UDP socket bound to a chosen loopback address."""

    def __init__(self, sock: trio.socket.SocketType, server: tuple[str, int]) -> None:
        self.sock = sock
        self.server = server

    @classmethod
    async def open(cls, host: str, server: tuple[str, int]) -> Udp:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind((host, 0))
        return cls(sock, server)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def ask(self, data: bytes, wait: float = 5.0) -> Received | None:
        """Send, then the first answer within ``wait`` seconds, or None."""
        await self.sock.sendto(data, self.server)
        with trio.move_on_after(wait):
            answer, _ = await self.sock.recvfrom(65535)
            return Received(answer)
        return None


async def tcp_from(host: str, server: tuple[str, int]) -> trio.SocketStream:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    await sock.bind((host, 0))
    await sock.connect(server)
    return trio.SocketStream(sock)


async def closed_by_peer(stream: trio.SocketStream, within: float) -> bool:
    """True when the other side closes (or resets) within ``within`` seconds."""
    with trio.move_on_after(within):
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return True
            if not data:
                return True
    return False


async def start(
    nursery: trio.Nursery, processor: ScriptableProcessor, **overrides: object
) -> RunningServer:
    running = await start_processor(nursery, processor)
    values: dict[str, object] = {
        "processor": ProcessorConfig(running.addr, timeout=2.0),
        "localnets": ("10.99.0.0/16",),
    }
    values.update(overrides)
    return await start_edgeport(nursery, make_config(**values))


def dropped(reason: str) -> float:
    return METRICS.dropped_messages.labels(reason=reason).value


def refused(reason: str) -> float:
    return METRICS.protection_closed_connections.labels(reason=reason).value


async def test_denied_source_gets_nothing_and_the_processor_sees_nothing() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(
            nursery,
            processor,
            access_control=AccessControlConfig(deny=(f"{OTHER_HOST}/32",)),
        )
        before = dropped("denied"), refused("denied")
        denied = await Udp.open(OTHER_HOST, address(server, Transport.UDP))
        assert await denied.ask(options(denied.port, 1), wait=QUIET) is None
        stream = await tcp_from(OTHER_HOST, address(server, Transport.TCP))
        assert await closed_by_peer(stream, within=5.0)
        assert processor.requests == []
        assert dropped("denied") == before[0] + 1
        assert refused("denied") == before[1] + 1
        allowed = await Udp.open("127.0.0.1", address(server, Transport.UDP))
        answer = await allowed.ask(options(allowed.port, 2))
        assert answer is not None
        assert answer.status == 200
        assert [r.message.call_id.call_id for r in processor.requests] == [
            f"prot-2-{allowed.port}@test"
        ]
        nursery.cancel_scope.cancel()


async def test_allow_list_admits_only_listed_sources() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(
            nursery, processor, access_control=AccessControlConfig(allow=("127.0.0.1/32",))
        )
        outsider = await Udp.open(OTHER_HOST, address(server, Transport.UDP))
        assert await outsider.ask(options(outsider.port, 1), wait=QUIET) is None
        listed = await Udp.open("127.0.0.1", address(server, Transport.UDP))
        answer = await listed.ask(options(listed.port, 2))
        assert answer is not None
        assert len(processor.requests) == 1
        nursery.cancel_scope.cancel()


async def test_scanner_options_gets_no_answer() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(nursery, processor)
        before = dropped("scanner")
        ua = await Udp.open("127.0.0.1", address(server, Transport.UDP))
        assert await ua.ask(options(ua.port, 1, "friendly-scanner"), wait=QUIET) is None
        # Not even edgeport's own OPTIONS answer (no user part) goes to a scanner.
        own = options(ua.port, 2, "sipcli/v1.8").replace(b"sip:bob@127.0.0.1 ", b"sip:127.0.0.1 ")
        assert await ua.ask(own, wait=QUIET) is None
        assert processor.requests == []
        assert dropped("scanner") == before + 2
        answer = await ua.ask(options(ua.port, 3))
        assert answer is not None
        assert answer.status == 200
        nursery.cancel_scope.cancel()


async def test_flooding_source_is_banned_then_unbanned_trusted_never() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        ban_time = 1.0
        server = await start(
            nursery,
            processor,
            protection=ProtectionConfig(
                flood=FloodConfig(requests=5, window=30.0, ban_time=ban_time)
            ),
            localnets=("10.99.0.0/16",),
        )
        bans_before = METRICS.bans.labels().value
        flooder = await Udp.open(OTHER_HOST, address(server, Transport.UDP))
        for n in range(5):
            answer = await flooder.ask(options(flooder.port, n))
            assert answer is not None, n
        banned_at = trio.current_time()
        assert await flooder.ask(options(flooder.port, 5), wait=QUIET) is None
        assert METRICS.bans.labels().value == bans_before + 1
        assert METRICS.banned_sources.labels().value == 1
        assert len(processor.requests) == 5
        # A banned source cannot connect either.
        stream = await tcp_from(OTHER_HOST, address(server, Transport.TCP))
        assert await closed_by_peer(stream, within=5.0)
        # The processor's own address (127.0.0.1 here) is trusted: never limited.
        trusted = await Udp.open("127.0.0.1", address(server, Transport.UDP))
        for n in range(20):
            answer = await trusted.ask(options(trusted.port, 100 + n))
            assert answer is not None, n
        # The ban ends by itself.
        await trio.sleep_until(banned_at + ban_time + 0.1)
        answer = await flooder.ask(options(flooder.port, 6))
        assert answer is not None
        assert answer.status == 200
        assert METRICS.banned_sources.labels().value == 0
        nursery.cancel_scope.cancel()


async def test_configured_trusted_network_is_never_banned() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(
            nursery,
            processor,
            protection=ProtectionConfig(
                flood=FloodConfig(requests=2, window=30.0, trusted=(f"{OTHER_HOST}/32",))
            ),
        )
        ua = await Udp.open(OTHER_HOST, address(server, Transport.UDP))
        for n in range(10):
            answer = await ua.ask(options(ua.port, n))
            assert answer is not None, n
        nursery.cancel_scope.cancel()


async def test_slow_connection_closed_after_the_first_message_deadline() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(
            nursery,
            processor,
            protection=ProtectionConfig(first_message_timeout=0.3, handshake_timeout=0.3),
        )
        before = refused("first_message_timeout"), refused("handshake_timeout")
        # TCP: half a request, then nothing.
        slow = await tcp_from(OTHER_HOST, address(server, Transport.TCP))
        await slow.send_all(b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP ")
        assert await closed_by_peer(slow, within=5.0)
        # WebSocket: half an HTTP upgrade, then nothing.
        upgrade = await tcp_from(OTHER_HOST, address(server, Transport.WS))
        await upgrade.send_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert await closed_by_peer(upgrade, within=5.0)
        assert refused("first_message_timeout") == before[0] + 1
        assert refused("handshake_timeout") == before[1] + 1
        # A connection whose first message comes in time stays open past the deadline.
        prompt = await tcp_from(OTHER_HOST, address(server, Transport.TCP))
        await prompt.send_all(options(1, 1).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        assert not await closed_by_peer(prompt, within=1.0)
        assert len(processor.requests) == 1
        nursery.cancel_scope.cancel()


async def test_connections_per_source_are_capped() -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        server = await start(
            nursery,
            processor,
            protection=ProtectionConfig(max_connections_per_source=2),
            transports=(TransportConfig(Transport.TCP, 0, "127.0.0.1"),),
        )
        edge = address(server, Transport.TCP)
        before = refused("per_source_limit")
        first = await tcp_from(OTHER_HOST, edge)
        second = await tcp_from(OTHER_HOST, edge)
        third = await tcp_from(OTHER_HOST, edge)
        assert await closed_by_peer(third, within=5.0)
        assert refused("per_source_limit") == before + 1
        assert not await closed_by_peer(first, within=0.2)
        other_source = await tcp_from("127.0.0.1", edge)
        assert not await closed_by_peer(other_source, within=0.2)
        # A closed connection frees its place.
        await first.aclose()
        with trio.fail_after(5):
            while server.guard.open_connections(OTHER_HOST) != 1:
                await trio.sleep(0.01)
        fourth = await tcp_from(OTHER_HOST, edge)
        assert not await closed_by_peer(fourth, within=0.2)
        await second.aclose()
        nursery.cancel_scope.cancel()


async def test_tls_connection_without_a_handshake_is_closed_at_the_deadline(
    tmp_path: Path,
) -> None:
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=ok_reply)
        keystore = write_leaf_pkcs12(
            tmp_path / "edge.p12", "changeit", trustme.CA().issue_cert("127.0.0.1")
        )
        server = await start(
            nursery,
            processor,
            transports=(
                TransportConfig(Transport.TLS, 0, "127.0.0.1"),
                TransportConfig(Transport.WSS, 0, "127.0.0.1"),
            ),
            security_context=SecurityContext(
                key_store=str(keystore), key_store_password="changeit"
            ),
            protection=ProtectionConfig(handshake_timeout=0.3),
        )
        before = refused("handshake_timeout")
        for transport in (Transport.TLS, Transport.WSS):
            # Connected, but no ClientHello: the built-in 10 s bound would be far later.
            silent = await tcp_from(OTHER_HOST, address(server, transport))
            assert await closed_by_peer(silent, within=5.0), transport
        assert refused("handshake_timeout") == before + 2
        assert processor.requests == []
        nursery.cancel_scope.cancel()
