"""The fuzzer's sockets: datagrams and stream connections from many 127.x.y.z sources.

Sources (every address in 127.0.0.0/8 is local on Linux, so a socket can bind
to any of them): ``127.0.0.1`` is the processor's address and so never
flood-limited (the probes come from it); ``127.0.0.2`` sends a share far past
the flood limit and is banned again and again; 200 addresses of 127.0.1.0/24
each stay well under the limit. On the PROXY listeners the connection comes
from a trusted proxy (127.0.1.0/24, 127.0.0.1) or, now and then, from an
untrusted one (127.0.3.0/24), and the header names the client: 127.0.0.1,
the banned 127.0.0.2, 127.0.2.0/24, 198.51.100.0/24 or 2001:db8::/64.

Every socket is bounded: one UDP socket per source address, at most
:data:`SLOTS` open connections per listener. A connection's task reads and
discards what edgeport answers, so edgeport never blocks on a full socket, and
closes the socket when the connection ends.
"""

from __future__ import annotations

import contextlib
import random
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Final

import trio

from edgeport.sip.framing import FramingError, StreamFramer
from tests.fuzz.inprocess import well_formed
from tests.fuzz.listeners import Listener
from tests.fuzz.mutate import call_id_of
from tests.fuzz.proxy_headers import HeaderVerdict, ProxyHeader
from tests.fuzz.proxy_headers import pick as pick_header
from tests.fuzz.stun import StunLedger
from tests.fuzz.verdicts import MALFORMED, UNJUDGED, WELL_FORMED, Verdicts
from tests.fuzz.wsclient import ClientStream, WsClient, WsRefused

HOST: Final = "127.0.0.1"
TRUSTED_SOURCE: Final = "127.0.0.1"
HOT_SOURCE: Final = "127.0.0.2"
POOL: Final = tuple(f"127.0.1.{i}" for i in range(1, 201))
UNTRUSTED_PROXIES: Final = tuple(f"127.0.3.{i}" for i in range(1, 9))
CLAIMED_HOSTS: Final = (
    (TRUSTED_SOURCE,) * 2
    + (HOT_SOURCE,) * 4
    + tuple(f"127.0.2.{i}" for i in range(1, 9))
    + tuple(f"198.51.100.{i}" for i in range(1, 5))
    + tuple(f"2001:db8::{i:x}" for i in range(1, 5))
)
SLOTS: Final = 3  # open connections per listener
CONNECT_TIMEOUT: Final = 10.0  # seconds for TCP connect, PROXY header, TLS and WS handshakes
REFUSAL_TIMEOUT: Final = 8.0  # seconds for edgeport to close a connection it must refuse
SEND_TIMEOUT: Final = 10.0  # seconds for one input to be taken by edgeport
RECEIVE_BYTES: Final = 65536
MAX_KEPT_PROBLEMS: Final = 20  # examples kept of wrong STUN answers


def pick_source(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.10:
        return TRUSTED_SOURCE
    if roll < 0.25:
        return HOT_SOURCE
    return rng.choice(POOL)


def pick_proxy(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.10:
        return rng.choice(UNTRUSTED_PROXIES)
    if roll < 0.15:
        return TRUSTED_SOURCE
    return rng.choice(POOL)


def mark(verdicts: Verdicts, unit: bytes, forced: int | None = None) -> None:
    """Record what edgeport will see in ``unit``: judged by the oracle unless ``forced``."""
    if forced is None:
        message = well_formed(unit)
        if message is not None:
            verdicts.mark(message.call_id, WELL_FORMED)
            return
        forced = MALFORMED
    found = call_id_of(unit)
    if found is not None:
        verdicts.mark(found.decode("utf-8", "surrogateescape"), forced)


class Datagrams:
    """One UDP socket per source address; a task drains each, and has each STUN answer
    (a datagram whose first byte is 0x00 or 0x01: SIP starts with a letter) judged by
    the ledger of the STUN datagrams sent."""

    def __init__(self, nursery: trio.Nursery, stun: StunLedger | None = None) -> None:
        self._nursery = nursery
        self._sockets: dict[str, trio.socket.SocketType] = {}
        self.stun = StunLedger() if stun is None else stun
        self.stun_looking_answers = 0  # answers that start 0x00/0x01

    async def send(self, source: str, data: bytes, port: int, stun_kind: str = "") -> bool:
        """Send ``data`` from ``source``; ``stun_kind`` names a STUN datagram's kind."""
        sock = self._sockets.get(source)
        if sock is None:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await sock.bind((source, 0))
            self._sockets[source] = sock
            self._nursery.start_soon(self._drain, sock)
        if stun_kind:
            # Recorded before it leaves: the answer may come at once.
            self.stun.record(stun_kind, source, data)
        try:
            await sock.sendto(data, (HOST, port))
        except OSError:
            return False  # a transient ICMP error
        return True

    async def _drain(self, sock: trio.socket.SocketType) -> None:
        host, port = sock.getsockname()[:2]
        while True:
            try:
                data = await sock.recv(65535)
            except ConnectionRefusedError:
                continue  # an ICMP error for an earlier datagram
            except (OSError, trio.ClosedResourceError):
                return  # closed: the run is over
            if data[:1] in (b"\x00", b"\x01"):
                self.stun_looking_answers += 1
                self.stun.answer(data, host, port, keep=MAX_KEPT_PROBLEMS)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


class Connection:
    """One stream connection to a listener, and the mirror of edgeport's framer on it.

    ``forced`` is the verdict of everything sent on it when the oracle is not to
    judge: MALFORMED behind an invalid PROXY header or an untrusted proxy
    (edgeport must close the connection), UNJUDGED behind a mutated header.
    """

    def __init__(
        self,
        listener: Listener,
        header: ProxyHeader | None,
        forced: int | None,
        ended: Callable[[Connection], None] | None = None,
    ) -> None:
        self.listener = listener
        self.header = header
        self.forced = forced
        self.framer = StreamFramer()
        self.stream: ClientStream | None = None
        self.ws: WsClient | None = None
        self.closed = False
        self.received_bytes = 0
        self.pings_sent = 0  # WebSocket Pings the fuzzer sent on it
        self._ended = ended
        self._scope = trio.CancelScope()

    def units(self, data: bytes) -> tuple[list[bytes], bool]:
        """The messages edgeport will cut from ``data``, and whether it then closes
        the connection (its framer fails: edgeport answers and closes)."""
        if self.listener.websocket:
            return [data], False
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            return [f for f in exc.frames if isinstance(f, bytes)], True
        return [f for f in frames if isinstance(f, bytes)], False

    async def hold(
        self,
        stream: ClientStream,
        ws: WsClient | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read and discard what edgeport sends until the connection ends or is closed;
        then close the socket."""
        self.stream, self.ws = stream, ws
        try:
            with self._scope:
                task_status.started()
                if ws is not None:
                    with contextlib.suppress(WsRefused):
                        while True:
                            self.received_bytes += len(await ws.get_message())
                    return
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    while data := await stream.receive_some(RECEIVE_BYTES):
                        self.received_bytes += len(data)
        finally:
            self.closed = True
            if self._ended is not None:
                self._ended(self)
            await trio.aclose_forcefully(stream)

    async def send(self, data: bytes, rng: random.Random) -> str:
        """ "sent", "broken" (edgeport closed the connection) or "timeout"."""
        try:
            with trio.fail_after(SEND_TIMEOUT):
                if self.ws is not None:
                    text: str | None = None
                    if rng.random() < 0.5:
                        try:
                            text = data.decode("utf-8")
                        except UnicodeDecodeError:
                            text = None
                    await self.ws.send_message(data if text is None else text)
                elif self.stream is not None:
                    await self.stream.send_all(data)
        except trio.TooSlowError:
            return "timeout"
        except (trio.BrokenResourceError, trio.ClosedResourceError, WsRefused, OSError):
            return "broken"
        return "sent"

    async def send_pings(self, payloads: list[bytes]) -> str:
        """Ping frames in one write (a WebSocket connection): like :meth:`send`."""
        if self.ws is None:
            return "broken"
        try:
            with trio.fail_after(SEND_TIMEOUT):
                await self.ws.send_pings(payloads)
        except trio.TooSlowError:
            return "timeout"
        except (trio.BrokenResourceError, trio.ClosedResourceError, WsRefused, OSError):
            return "broken"
        self.pings_sent += len(payloads)
        return "sent"

    def close(self) -> None:
        self.closed = True
        self._scope.cancel()


def _shown(header: ProxyHeader | None) -> str:
    return "" if header is None else header.kind


class Streams:
    """At most :data:`SLOTS` connections per listener, opened on demand."""

    def __init__(
        self, nursery: trio.Nursery, ports: dict[Listener, int], client_tls: ssl.SSLContext
    ) -> None:
        self._nursery = nursery
        self._ports = ports
        self._tls = client_tls
        self._slots: dict[Listener, list[Connection | None]] = {
            listener: [None] * SLOTS for listener in ports if listener is not Listener.UDP
        }
        self.opened: dict[str, int] = {}
        self.open_failed: dict[str, int] = {}
        self.headers: dict[str, int] = {}
        self.open_timeouts: dict[str, int] = {}  # "listener header from source" -> count
        self.refused: dict[str, int] = {}  # closed by edgeport as it must be, per listener
        self.not_refused: dict[str, int] = {}  # left open: "listener header from source"
        # WebSocket keep-alives on the fuzzer's connections: Pings sent, Pongs back,
        # edgeport's own Pings; and connections that got more Pongs than Pings sent.
        self.keepalives: Counter[str] = Counter()
        self.too_many_pongs: list[str] = []

    async def connection(self, listener: Listener, rng: random.Random) -> Connection | None:
        """An open connection to ``listener`` (a new one in a free slot), or None when
        edgeport refused it (expected for a refused PROXY header or proxy, and for a
        banned source)."""
        slots = self._slots[listener]
        index = rng.randrange(SLOTS)
        conn = slots[index]
        if conn is not None and not conn.closed:
            return conn
        slots[index] = None
        conn = await self._open(listener, rng)
        if conn is not None and not conn.closed:
            slots[index] = conn
        return conn

    async def _open(self, listener: Listener, rng: random.Random) -> Connection | None:
        header: ProxyHeader | None = None
        forced: int | None = None
        if listener.proxied:
            source = pick_proxy(rng)
            claimed = [(host, rng.randint(1024, 65535)) for host in CLAIMED_HOSTS]
            # A mutated header may leave edgeport waiting for the rest of it (5 s): only
            # where nothing waits for an answer before sending (plain TCP).
            header = pick_header(
                rng,
                claimed,
                self._ports[listener],
                allow_mutated=listener is Listener.PROXY_TCP,
            )
            self.headers[header.kind] = self.headers.get(header.kind, 0) + 1
            if header.verdict is HeaderVerdict.INVALID or source in UNTRUSTED_PROXIES:
                forced = MALFORMED
                if listener is not Listener.PROXY_TCP:
                    # No TLS or WebSocket handshake can follow: see that edgeport closes.
                    await self._expect_refusal(listener, source, header)
                    return None
            elif header.verdict is HeaderVerdict.MUTATED:
                forced = UNJUDGED
        else:
            source = pick_source(rng)
        conn = Connection(listener, header, forced, self._ended)
        stream: ClientStream | None = None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                tcp = await trio.open_tcp_stream(HOST, self._ports[listener], local_address=source)
                stream = tcp
                if header is not None:
                    await tcp.send_all(header.data)
                if listener.tls:
                    stream = trio.SSLStream(tcp, self._tls, server_hostname=HOST)
                    await stream.do_handshake()
                ws = None
                if listener.websocket:
                    ws = WsClient(stream)
                    await ws.handshake(HOST, "/", ["sip"])
            await self._nursery.start(conn.hold, stream, ws)
        except (
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.TooSlowError,
            WsRefused,
        ) as exc:
            if isinstance(exc, trio.TooSlowError):
                self._count(self.open_timeouts, f"{listener.value} {_shown(header)} from {source}")
            if stream is not None:
                await trio.aclose_forcefully(stream)
            self._count(self.open_failed, listener.value)
            return None
        self._count(self.opened, listener.value)
        return conn

    async def _expect_refusal(self, listener: Listener, source: str, header: ProxyHeader) -> None:
        """Connect from ``source``, send ``header`` and nothing else: edgeport must close
        the connection (at once, or when its 5 s wait for a header ends)."""
        stream: trio.SocketStream | None = None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(
                    HOST, self._ports[listener], local_address=source
                )
                await stream.send_all(header.data)
            with trio.move_on_after(REFUSAL_TIMEOUT) as waiting:
                while await stream.receive_some(RECEIVE_BYTES):
                    pass
            if waiting.cancelled_caught:
                self._count(self.not_refused, f"{listener.value} {_shown(header)} from {source}")
                return
        except trio.TooSlowError:
            self._count(self.open_timeouts, f"{listener.value} {_shown(header)} from {source}")
            return
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # reset: refused too
        finally:
            if stream is not None:
                await trio.aclose_forcefully(stream)
        self._count(self.refused, listener.value)

    def _ended(self, conn: Connection) -> None:
        """RFC 6455 §5.5.3: at most one Pong per Ping (edgeport answers the last of a
        burst read together), never a Pong to no Ping."""
        ws = conn.ws
        if ws is None:
            return
        self.keepalives["pings sent"] += conn.pings_sent
        self.keepalives["pongs received"] += ws.pongs_received
        self.keepalives["edgeport pings"] += ws.pings_received
        if ws.pongs_received > conn.pings_sent and len(self.too_many_pongs) < MAX_KEPT_PROBLEMS:
            self.too_many_pongs.append(
                f"{conn.listener.value}: {ws.pongs_received} Pongs for {conn.pings_sent} Pings"
            )

    @staticmethod
    def _count(counts: dict[str, int], key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    def close(self) -> None:
        for slots in self._slots.values():
            for conn in slots:
                if conn is not None:
                    conn.close()
