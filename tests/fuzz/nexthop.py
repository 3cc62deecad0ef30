"""The next hop the fuzz processor forwards to, named by IP and in DNS.

The fuzz processor (:mod:`tests.fuzz.observers`) forwards one request in
:data:`FORWARD_EVERY` (chosen by its Call-ID) instead of answering it: the
reply carries the request with a new Request-URI and no Route. The URI names
the :class:`NextHopSink` (a UDP socket and a TCP listener on one port of
127.0.0.1, that read what edgeport sends and answer nothing) by its address
(``127.0.0.1:<port>``), by a name with an A record (``a.sink.test:<port>``),
by a name with only SRV records (``sink.test``: RFC 3263 §4.2, no port and
no transport, so ``_sip._udp.sink.test`` names ``a.sink.test:<port>``), or
by a name nobody has (``nowhere.test``: NXDOMAIN). The ``edge`` process asks a
dnsmasq here; the ``proxied`` process asks :class:`SilentResolver`, which
never answers, so its lookups time out and the requests get a failure
answer rather than hang.

RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if
it is larger than 1300 bytes and the path MTU is unknown, the request MUST
be sent using an RFC 2914 congestion controlled transport protocol, such as
TCP." (``spec.largeRequestsOverTcp``): a datagram at the sink larger than
:data:`LARGE_REQUEST_BYTES` is a finding, as long as the sink takes TCP.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Final

import trio

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from tests.fuzz.edges import free_udp_and_tcp_port

LARGE_REQUEST_BYTES: Final = 1300  # spec.largeRequestsOverTcp of both processes
FORWARD_EVERY: Final = 4  # one request in this many is forwarded
# Larger requests are answered, not forwarded: the next hop never answers, so each
# forwarded request is held for Timer B/F (32 s), and a run of 1 MiB ones would
# measure that hold rather than edgeport's memory. Large requests over TCP need only
# more than LARGE_REQUEST_BYTES.
MAX_FORWARDED_BYTES: Final = 70_000
SINK_DOMAIN: Final = "sink.test"
SINK_HOST: Final = "a.sink.test"
NOWHERE: Final = "nowhere.test"
RECEIVE_BYTES: Final = 65536
MAX_KEPT_LINES: Final = 20
_NOT_FORWARDED: Final = frozenset({"ACK", "CANCEL"})  # they follow a transaction of their own


def dnsmasq_lines(port: int) -> list[str]:
    """dnsmasq configuration: the sink's SRV record (RFC 2782: priority, weight, port)."""
    return [f"srv-host=_sip._udp.{SINK_DOMAIN},{SINK_HOST},{port},10,60"]


def dnsmasq_hosts() -> str:
    return f"127.0.0.1 {SINK_HOST}"


class Forwarding:
    """Which requests the processor forwards, and where to."""

    def __init__(self, sink_port: int) -> None:
        self.targets: tuple[tuple[str, int], ...] = (
            ("127.0.0.1", sink_port),
            (SINK_HOST, sink_port),
            (SINK_DOMAIN, -1),
            (NOWHERE, -1),
        )
        self.forwarded: Counter[str] = Counter()  # by target host
        self._lock = threading.Lock()  # the processor's threads share it

    def reply(self, request: MessageRequest) -> MessageResponse | None:
        """The forwarding reply for ``request``, or None to answer it."""
        message = request.message
        if message.WhichOneof("message_type") != "request_uri":
            return None
        if processor_pb2.Method.Name(request.method) in _NOT_FORWARDED:
            return None
        if message.ByteSize() > MAX_FORWARDED_BYTES:
            return None
        digest = hashlib.sha1(request.ref.encode("utf-8", "surrogatepass")).digest()
        if digest[0] % FORWARD_EVERY:
            return None
        host, port = self.targets[digest[1] % len(self.targets)]
        forwarded = sipmessage_pb2.SIPMessage()
        forwarded.CopyFrom(message)
        uri = forwarded.request_uri
        uri.host, uri.port = host, port
        uri.transport_param, uri.secure, uri.m_addr_param = "", False, ""
        del forwarded.route[:]
        with self._lock:
            self.forwarded[host] += 1
        return MessageResponse(message=forwarded)


class NextHopSink:
    """A UDP socket and a TCP listener on one port of 127.0.0.1: counts what arrives."""

    def __init__(self) -> None:
        self.port = 0
        self.datagrams = 0
        self.largest_datagram = 0
        self.large_datagrams: list[int] = []  # sizes over LARGE_REQUEST_BYTES, a few
        self.large_datagram_count = 0
        self.connections = 0
        self.stream_bytes = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        port = free_udp_and_tcp_port()
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", port))
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = port
        with udp:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._datagrams, udp)
                nursery.start_soon(trio.serve_listeners, self._connection, listeners)
                task_status.started(port)

    async def _datagrams(self, udp: trio.socket.SocketType) -> None:
        while True:
            try:
                data = await udp.recv(RECEIVE_BYTES)
            except ConnectionRefusedError:
                continue  # an ICMP error: nothing is sent from here, but never fail on one
            self.datagrams += 1
            self.largest_datagram = max(self.largest_datagram, len(data))
            if len(data) > LARGE_REQUEST_BYTES:
                self.large_datagram_count += 1
                if len(self.large_datagrams) < MAX_KEPT_LINES:
                    self.large_datagrams.append(len(data))

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        async with stream:
            try:
                while data := await stream.receive_some(RECEIVE_BYTES):
                    self.stream_bytes += len(data)
            except trio.BrokenResourceError:
                return


class SilentResolver:
    """A UDP socket on 127.0.0.1 that reads DNS queries and answers none."""

    def __init__(self) -> None:
        self.queries = 0
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with udp:
            await udp.bind(("127.0.0.1", 0))
            self.port = udp.getsockname()[1]
            task_status.started(self.port)
            while True:
                try:
                    await udp.recv(RECEIVE_BYTES)
                except ConnectionRefusedError:
                    continue
                self.queries += 1
