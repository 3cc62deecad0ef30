"""Fuzzing a running edgeport over real UDP, TCP and WebSocket sockets.

An in-process edgeport (``edgeport.server.serve``) with a recording test
processor that answers every request 200. Each input gets a unique Call-ID
before it is mutated; the oracle (:func:`well_formed`) sorts the sent inputs
into well-formed and malformed by Call-ID. Passing means: no handler error
or exception logged by edgeport, every listener answers an OPTIONS after
the run, and every MessageRequest the processor received carries the
Call-ID of a well-formed input and of no malformed one.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import trio
import trio_asyncio
import trio_websocket

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.config import ProcessorConfig
from edgeport.metrics import METRICS
from edgeport.server import RunningServer
from edgeport.sip.framing import FramingError, StreamFramer
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.fuzz.inprocess import well_formed
from tests.fuzz.mutate import call_id_of, generate
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import sip

MAX_UDP_PAYLOAD = 65_000
PROBE_TIMEOUT = 10.0  # seconds for a listener to answer the OPTIONS after the run
DRAIN_TIME = 2.0  # seconds for in-flight messages to reach the processor after sending
TRANSPORTS = (Transport.UDP, Transport.TCP, Transport.WS)


@dataclass
class LiveReport:
    sent: dict[str, int] = field(default_factory=dict)
    well_formed: int = 0
    ambiguous: int = 0
    processor_requests: int = 0
    unexpected: list[str] = field(default_factory=list)  # Call-IDs not from well-formed input
    logged_errors: list[str] = field(default_factory=list)
    handler_errors: int = 0
    internal_errors: float = 0.0
    listeners_answering: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            not self.unexpected
            and not self.logged_errors
            and self.handler_errors == 0
            and self.internal_errors == 0
            and all(self.listeners_answering.values())
        )


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < 20:
            self.lines.append(self.format(record))


def _probe(port: int, transport: Transport, n: int) -> bytes:
    # An OPTIONS to edgeport's own address: answered by edgeport itself.
    return sip(
        f"""OPTIONS sip:127.0.0.1:{port} SIP/2.0
Via: SIP/2.0/{transport.value.upper()} 127.0.0.1:9;branch=z9hG4bK-probe-{n};rport
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=probe{n}
To: <sip:127.0.0.1>
Call-ID: probe-{n}@fuzz
CSeq: 1 OPTIONS
Content-Length: 0

"""
    )


async def run_live(seed: int, count: int) -> LiveReport:
    """Send ``count`` fuzzed inputs, spread over UDP, TCP and WS, into a fresh edgeport."""
    report = LiveReport()
    received: list[str] = []

    def reply(request: MessageRequest) -> MessageResponse:
        received.append(request.ref)
        return MessageResponse(
            message=sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
        )

    errors = _ErrorLog()
    edge_logger = logging.getLogger("edgeport")
    edge_logger.addHandler(errors)
    internal_before = METRICS.dropped_messages.labels(reason="internal_error").value
    try:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, ScriptableProcessor(reply=reply))
            server = await start_edgeport(
                nursery, make_config(processor=ProcessorConfig(running.addr, timeout=5.0))
            )
            good, bad = await _send_all(server, seed, count, report)
            await trio.sleep(DRAIN_TIME)
            for transport in TRANSPORTS:
                report.listeners_answering[transport.value] = await _answers_options(
                    server, transport
                )
            report.handler_errors = server.transports.stats["handler_errors"]
            nursery.cancel_scope.cancel()
    finally:
        edge_logger.removeHandler(errors)
    report.internal_errors = (
        METRICS.dropped_messages.labels(reason="internal_error").value - internal_before
    )
    report.logged_errors = errors.lines
    report.well_formed = len(good)
    report.processor_requests = len(received)
    # Malformed-only Call-IDs, and Call-IDs never sent, must not reach the processor;
    # a Call-ID that both a well-formed and a malformed input carried (a splice of a
    # seed) cannot be judged and is counted apart.
    report.ambiguous = sum(1 for ref in received if ref in good and ref in bad)
    report.unexpected = sorted({ref for ref in received if ref not in good})[:20]
    return report


async def _send_all(
    server: RunningServer, seed: int, count: int, report: LiveReport
) -> tuple[set[str], set[str]]:
    rng = random.Random(seed)
    good: set[str] = set()
    bad: set[str] = set()
    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await udp.bind(("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        senders: dict[Transport, _UdpSender | _TcpSender | _WsSender] = {
            Transport.UDP: _UdpSender(udp, address(server, Transport.UDP)),
            Transport.TCP: _TcpSender(address(server, Transport.TCP)),
            Transport.WS: _WsSender(address(server, Transport.WS), nursery),
        }
        nursery.start_soon(_drain_udp, udp)
        for index in range(count):
            call_id = f"fz-{seed}-{index}"
            data = generate(rng, call_id)
            transport = rng.choice(TRANSPORTS)
            if transport is Transport.UDP and len(data) > MAX_UDP_PAYLOAD:
                data = data[:MAX_UDP_PAYLOAD]
            for unit in await senders[transport].send(data):
                message = well_formed(unit)
                if message is not None:
                    good.add(message.call_id)
                elif (found := call_id_of(unit)) is not None:
                    bad.add(found.decode("latin-1"))
            report.sent[transport.value] = report.sent.get(transport.value, 0) + 1
            if index % 20 == 19:
                await trio.sleep(0.005)  # let edgeport keep up; the run stays bounded
        for sender in senders.values():
            await sender.close()
        nursery.cancel_scope.cancel()
    udp.close()
    return good, bad


async def _drain_udp(sock: trio.socket.SocketType) -> None:
    while True:
        await sock.recvfrom(65535)


class _UdpSender:
    def __init__(self, sock: trio.socket.SocketType, server: tuple[str, int]) -> None:
        self.sock = sock
        self.server = server

    async def send(self, data: bytes) -> list[bytes]:
        """Send one datagram; returns what edgeport gets as messages."""
        try:
            await self.sock.sendto(data, self.server)
        except OSError:
            return []  # too large for a datagram, or a transient ICMP error
        return [data]

    async def close(self) -> None:
        return


class _TcpSender:
    """One connection at a time. A mirror of edgeport's framer tells which messages
    edgeport frames from the byte stream (a short Content-Length makes the next
    input's bytes part of this one's body); when the mirror meets a framing error,
    edgeport closes the connection, and so does the sender."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.stream: trio.SocketStream | None = None
        self.framer = StreamFramer()

    async def send(self, data: bytes) -> list[bytes]:
        if self.stream is None:
            self.stream = await trio.open_tcp_stream(*self.server)
            self.framer = StreamFramer()
        units: list[bytes] = []
        broken = False
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            frames = exc.frames
            broken = True
        units = [frame for frame in frames if isinstance(frame, bytes)]
        try:
            with trio.fail_after(5):
                await self.stream.send_all(data)
                with trio.move_on_after(0):  # read answers so edgeport never blocks
                    await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            broken = True
        if broken:
            await self.close()
        return units

    async def close(self) -> None:
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)
            self.stream = None


class _WsSender:
    """One WebSocket at a time, reopened when edgeport closes it."""

    def __init__(self, server: tuple[str, int], nursery: trio.Nursery) -> None:
        self.server = server
        self.nursery = nursery
        self.ws: trio_websocket.WebSocketConnection | None = None

    async def send(self, data: bytes) -> list[bytes]:
        for _ in range(2):
            try:
                with trio.fail_after(5):
                    if self.ws is None or self.ws.closed is not None:
                        if self.ws is not None:
                            await self.ws.aclose()
                        stream = await trio.open_tcp_stream(*self.server)
                        self.ws = await trio_websocket.wrap_client_stream(
                            self.nursery, stream, self.server[0], "/", subprotocols=["sip"]
                        )
                    await self.ws.send_message(data)
                return [data]
            except (
                trio_websocket.ConnectionClosed,
                trio_websocket.HandshakeError,
                trio.TooSlowError,
                OSError,
            ):
                self.ws = None
        return []

    async def close(self) -> None:
        if self.ws is not None:
            with trio.move_on_after(2):
                await self.ws.aclose()


async def _answers_options(server: RunningServer, transport: Transport) -> bool:
    host, port = address(server, transport)
    probe = _probe(port, transport, hash(transport.value) & 0xFFFF)
    with trio.move_on_after(PROBE_TIMEOUT):
        if transport is Transport.UDP:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await sock.bind(("127.0.0.1", 0))
            await sock.sendto(probe, (host, port))
            data, _ = await sock.recvfrom(65535)
            sock.close()
            return data.startswith(b"SIP/2.0 200")
        if transport is Transport.TCP:
            stream = await trio.open_tcp_stream(host, port)
            await stream.send_all(probe)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
            await stream.aclose()
            return data.startswith(b"SIP/2.0 200")
        async with trio_websocket.open_websocket(
            host, port, "/", use_ssl=False, subprotocols=["sip"]
        ) as ws:
            await ws.send_message(probe)
            message = await ws.get_message()
            text = message if isinstance(message, str) else message.decode("latin-1")
            return text.startswith("SIP/2.0 200")
    return False
