"""The transport layer: every listener under one nursery, and sending to peers.

RFC 3261 §18 (transport layer), §18.2.2 (responses over the connection the
request came on), RFC 7118 (WebSocket). :func:`serve_transports` binds every
listening point first (so a taken port fails the start with a
:class:`BindError`), then serves them and reports a :class:`TransportLayer`.

Concurrency: the layer owns one nursery. Each listener runs in it; each
stream listener has its own nursery with one task per connection; outbound
connections and the message handler tasks run in the layer's nursery.

Overload: received messages wait in a bounded :class:`Inbox` (two lanes:
responses, ACKs and CANCELs, which finish admitted work, and new requests,
shed first and before any parsing). Handler tasks are bounded per lane
(``max_new_tasks``, ``max_admitted_tasks``); a task is started for a
message while its lane has a free handler, takes the next message from the
inbox when it runs (arrival order, unless edgeport is behind), and goes on
with whatever waits until nothing it may take is left. A new request the
inbox sheds is dropped silently over UDP (its client retransmits) and handed
to ``refuse`` (503) over a stream, where nobody retransmits;
``on_shed(reason)`` counts each shed.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Final, NoReturn

import trio

from edgeport.config import ConnectionLimits, TransportConfig, WebSocketConfig
from edgeport.memory import MemoryBudget
from edgeport.protection import EdgeGuard, Verdict
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import MAX_MESSAGE_BYTES
from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports.alias_probe import AliasProber
from edgeport.transports.base import Connection, Handler, InboundMessage, Peer, normalize_host
from edgeport.transports.connections import ConnectionTable, Key, connection_key
from edgeport.transports.errors import ConnectionLost, NoRoute, SendError
from edgeport.transports.inbox import Inbox, InboxLimits, Lane, Shed, lane_of
from edgeport.transports.proxied import Refused, TrustedProxies, accept_proxied
from edgeport.transports.sockets import aclose_stream, bind_socket, remote_peer, socket_of
from edgeport.transports.stream import (
    CONNECT_TIMEOUT,
    StreamConnection,
    open_stream,
    read_stream,
    tls_handshake,
)
from edgeport.transports.udp import DatagramSocket
from edgeport.transports.websocket import WebSocketConnection, accept_websocket, read_websocket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from edgeport.capture.sender import HepCapture

logger = logging.getLogger(__name__)

MAX_NEW_TASKS: Final = 1_000  # handlers of new requests at once
MAX_ADMITTED_TASKS: Final = 1_000  # handlers of responses, ACKs and CANCELs at once
MAX_REFUSALS: Final = 64  # 503s to shed stream requests being written at once
MESSAGES_PER_TASK: Final = 1_000  # a handler task goes on this long, then hands over

# Reasons given to ``on_shed`` (edgeport_dropped_messages_total).
SHED_NEW: Final = "overload_shed"  # a new request dropped before parsing
SHED_ADMITTED: Final = "overload_admitted"  # a response, ACK or CANCEL: its lane was full
SHED_MEMORY: Final = "memory_budget"  # the inbox share of the memory budget was spent


class _ConnectAttempt:
    """One outbound connect in progress; later senders wait for its outcome."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.conn: Connection | None = None
        self.error = "connect failed"


def default_client_context() -> ssl.SSLContext:
    """System trust store, hostname checks, TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class TransportLayer:
    """Listening points, the connection table, counters, and ``send``.

    ``stats`` counts, by key: ``received_<transport>``, ``sent_<transport>``,
    ``send_failed_<transport>``, ``connect_failed_<transport>``,
    ``connections_opened``/``_closed``/``_refused``/``_idle_closed``/``_broken``,
    ``dropped_<reason>`` (``no_route``, ``partial``, and each framing error:
    ``message_too_large``, ``bad_content_length``, ``header_section_too_large``,
    ``too_many_headers``, ``not_a_sip_start_line``), ``udp_keepalives``,
    ``tls_handshake_failed``, ``ws_handshake_refused``/``_timeout``, ``ws_protocol_errors``,
    ``handler_errors``, ``proxy_protocol_untrusted``/``_invalid``/``_timeout`` (connections
    closed on a PROXY protocol listener),
    ``shed_<lane>_<why>`` (``shed_new_full``, ``shed_new_stale``,
    ``shed_admitted_full``, ``shed_<lane>_memory``), ``refusals_dropped``,
    ``dropped_memory_budget`` (stream connections closed: their buffer did not fit),
    ``reader_errors``.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None,
        tls_client_context: ssl.SSLContext | None,
        limits: ConnectionLimits,
        websocket: WebSocketConfig,
        on_connection_closed: Callable[[Connection], None] | None,
        max_message_bytes: int,
        proxy_protocol: frozenset[Transport] = frozenset(),
        trusted_proxies: Sequence[str] = (),
        guard: EdgeGuard | None = None,
        inbox: InboxLimits | None = None,
        max_new_tasks: int = MAX_NEW_TASKS,
        max_admitted_tasks: int = MAX_ADMITTED_TASKS,
        refuse: Handler | None = None,
        on_shed: Callable[[str], None] | None = None,
        memory: MemoryBudget | None = None,
    ) -> None:
        if max_new_tasks < 1 or max_admitted_tasks < 1:
            raise ValueError("each lane needs at least one handler task")
        self._nursery = nursery
        # Listeners whose connections open with a PROXY protocol header, and
        # who may send one.
        self._proxy_protocol = proxy_protocol
        self._trusted_proxies = TrustedProxies(trusted_proxies)
        self._proxy_log = RateLimitedLog(logger, burst=5)
        self._guard = guard  # edge protection: checks before parsing
        self._handler = handler
        self._refuse = refuse
        self._on_shed = on_shed
        self._max_tasks = {Lane.NEW: max_new_tasks, Lane.ADMITTED: max_admitted_tasks}
        self._tls = tls
        self._tls_client_context = tls_client_context or default_client_context()
        self._limits = limits
        self._websocket = websocket
        self._max_message_bytes = max_message_bytes
        self.connections = ConnectionTable(on_removed=on_connection_closed)
        self.connections.prober = AliasProber(nursery)  # a claimed alias's holder must answer
        # edgeport.workers: sends a message for a connection another worker holds.
        self.send_elsewhere: Callable[[Peer, bytes], bool] | None = None
        self.stats: Counter[str] = Counter()
        self._listening_points: list[Peer] = []
        # The inbox and the stream buffers have their shares of the memory budget.
        self.memory = memory or MemoryBudget()
        self.inbox = Inbox(inbox, self.memory.inbox)
        # Handler tasks started for a message of each lane, not running yet.
        self._starting = {Lane.NEW: 0, Lane.ADMITTED: 0}
        self._busy = {Lane.NEW: 0, Lane.ADMITTED: 0}  # handlers running, per lane
        self._refusing = 0
        self._shed_log = RateLimitedLog(logger)
        self._alive_listeners: set[Peer] = set()
        self._udp_sockets: list[DatagramSocket] = []
        self._connecting: dict[Key, _ConnectAttempt] = {}
        self._accept_scopes: list[trio.CancelScope] = []
        self._open_streams = 0
        self._ids = itertools.count(1)
        # HEP capture of every message received and sent; None when off.
        self.capture: HepCapture | None = None

    @property
    def listening_points(self) -> list[Peer]:
        """One per listener, with the port actually bound."""
        return list(self._listening_points)

    def listening_point(self, transport: Transport) -> Peer | None:
        return next((p for p in self._listening_points if p.transport is transport), None)

    def stop_accepting(self) -> None:
        """Close the stream listening sockets (for a graceful shutdown); open
        connections, UDP and sending carry on."""
        for scope in self._accept_scopes:
            scope.cancel()

    # -- sending -------------------------------------------------------------

    async def send(self, peer: Peer, data: bytes) -> None:
        """Send one message to ``peer``, reusing or opening a connection as needed.

        UDP leaves from the UDP listening socket. TCP and TLS reuse a live
        connection to (transport, host, port) or open one. WS and WSS only use
        existing connections. A ``.invalid`` host is only looked up among the
        WebSocket aliases. Raises SendError (NoRoute, ConnectionLost).
        """
        if self.send_elsewhere is not None and self.send_elsewhere(peer, data):  # edgeport.workers
            return
        host = normalize_host(peer.host)
        if is_websocket_alias(host):
            conn = self.connections.lookup_alias(host)
            if conn is None or conn.closed:
                self.stats["dropped_no_route"] += 1
                raise NoRoute(f"no connection for {host}")
            await self.send_on(conn, data)
            return
        if peer.transport is Transport.UDP:
            await self._send_datagram(host, peer.port, data)
            return
        conn = self.connections.get(peer.transport, host, peer.port)
        if conn is None or conn.closed:
            if peer.transport in (Transport.WS, Transport.WSS):
                self.stats["dropped_no_route"] += 1
                raise NoRoute(f"no WebSocket connection to {peer}")
            conn = await self._connect(peer.transport, host, peer.port)
        await self.send_on(conn, data)

    async def send_on(self, conn: Connection, data: bytes) -> None:
        """Send over this connection; raises ConnectionLost (a SendError) when it is gone."""
        try:
            await conn.send(data)
        except ConnectionLost:
            self.stats[f"send_failed_{conn.transport.value}"] += 1
            raise
        self.stats[f"sent_{conn.transport.value}"] += 1
        if self.capture is not None:
            self.capture.sent_on(data, conn)

    async def _send_datagram(self, host: str, port: int, data: bytes) -> None:
        family = trio.socket.AF_INET6 if ":" in host else trio.socket.AF_INET
        sock = next((s for s in self._udp_sockets if s.family == family), None)
        if sock is None:
            self.stats["dropped_no_route"] += 1
            raise NoRoute(f"no UDP listening point for {host}")
        try:
            await sock.sendto(data, host, port)
        except OSError as exc:
            logger.warning("udp send to %s:%s failed: %s", host, port, exc)
            self.stats["send_failed_udp"] += 1
            raise SendError(f"udp send to {host}:{port} failed: {exc}") from exc
        self.stats["sent_udp"] += 1
        if self.capture is not None:
            self.capture.sent_datagram(data, sock, host, port)

    async def _connect(self, transport: Transport, host: str, port: int) -> Connection:
        """The live connection to (transport, host, port); concurrent senders share one
        connection attempt and its outcome."""
        key = connection_key(transport, host, port)
        attempt = self._connecting.get(key)
        if attempt is not None:
            await attempt.done.wait()
            if attempt.conn is None:
                raise SendError(attempt.error)
            return attempt.conn
        attempt = self._connecting[key] = _ConnectAttempt()
        try:
            attempt.conn = await self._nursery.start(self._serve_outbound, transport, host, port)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)
            attempt.error = f"cannot connect to {transport.value}:{host}:{port}: {reason}"
            logger.warning("%s", attempt.error)
            self.stats[f"connect_failed_{transport.value}"] += 1
            raise SendError(attempt.error) from exc
        finally:
            del self._connecting[key]
            attempt.done.set()
        return attempt.conn

    # -- receiving -----------------------------------------------------------

    @property
    def handler_tasks(self) -> int:
        """Handler tasks alive: started, or handling a message."""
        return sum(self._starting.values()) + sum(self._busy.values())

    def _deliver(self, data: bytes, peer: Peer, conn: Connection | None, local: Peer) -> None:
        message = InboundMessage(data, peer, conn, local, trio.current_time())
        self.stats[f"received_{peer.transport.value}"] += 1
        if self.capture is not None:
            self.capture.received(message)
        lane = lane_of(data)
        shed = self.inbox.offer(message, lane)
        for each in shed:
            self._shed(each)
        if shed and shed[-1].message is message:
            return  # not queued: the tasks already started cover what waits
        if self._starting[lane] + self._busy[lane] < self._max_tasks[lane]:
            self._start_worker(lane)
        # Else every handler of its lane is busy; each takes what waits when it is done.

    def _start_worker(self, lane: Lane) -> None:
        self._starting[lane] += 1
        self._nursery.start_soon(self._work, lane)

    async def _work(self, lane: Lane) -> None:
        # trio may start the tasks of one batch in any order (it reverses
        # batches at random). Each task takes the next message when it RUNS
        # (the oldest, unless edgeport is behind), so handlers begin in
        # arrival order: an INVITE and the CANCEL right behind it, or a 180
        # and its 200, reach the handler as they came, and the handler's
        # synchronous start (parse, transaction matching) keeps that order.
        # A task goes on with whatever its lanes' room allows until nothing
        # is left, so a message that found every handler busy is not stranded.
        self._starting[lane] -= 1
        for _ in range(MESSAGES_PER_TASK):
            taken, stale = self.inbox.pop(
                trio.current_time(),
                new_ok=self._busy[Lane.NEW] < self._max_tasks[Lane.NEW],
                admitted_ok=self._busy[Lane.ADMITTED] < self._max_tasks[Lane.ADMITTED],
            )
            for shed in stale:
                self._shed(shed)
            if taken is None:
                return
            message, taken_lane = taken
            self._busy[taken_lane] += 1
            try:
                await self._dispatch(message)
            finally:
                self._busy[taken_lane] -= 1
        if len(self.inbox):
            self._start_worker(lane)

    async def _dispatch(self, message: InboundMessage) -> None:
        try:
            await self._handler(message)
        except Exception:
            logger.exception("handling a message from %s failed", message.peer)
            self.stats["handler_errors"] += 1

    def _shed(self, shed: Shed) -> None:
        """A message the inbox gave up on: counted, logged (rate-limited), refused on streams."""
        self.stats[f"shed_{shed.lane.value}_{shed.reason}"] += 1
        message = shed.message
        if (
            shed.lane is Lane.NEW
            and message.connection is not None
            and self._refuse is not None
            and self._refusing < MAX_REFUSALS
        ):
            # Nobody retransmits over a stream: the client hears 503 now.
            self._refusing += 1
            self._nursery.start_soon(self._run_refusal, message)
            return
        if message.connection is not None:
            self.stats["refusals_dropped"] += 1
        if shed.reason == "memory":
            reason = SHED_MEMORY
        else:
            reason = SHED_NEW if shed.lane is Lane.NEW else SHED_ADMITTED
        if self._on_shed is not None:
            self._on_shed(reason)
        self._shed_log.warning(
            "overloaded: dropped a %s message from %s (%s, %d waiting)",
            shed.lane.value,
            message.peer,
            shed.reason,
            len(self.inbox),
        )

    async def _run_refusal(self, message: InboundMessage) -> None:
        assert self._refuse is not None
        try:
            await self._refuse(message)
        except Exception:
            logger.exception("refusing a message from %s failed", message.peer)
            self.stats["handler_errors"] += 1
        finally:
            self._refusing -= 1

    def _deliver_on(self, data: bytes, conn: Connection) -> None:
        # edge protection: a stream message from a denied, banned or scanning source
        # is dropped, and its connection closed.
        guard = self._guard
        if (
            guard is not None
            and not conn.outbound
            and guard.admit(conn.peer, data) is not Verdict.ACCEPT
        ):
            conn.close()
            return
        self._deliver(data, conn.peer, conn, conn.local)

    def start_listeners(self, bound: Sequence[tuple[Transport, trio.socket.SocketType]]) -> None:
        """Serve each bound socket in the layer's nursery."""
        for transport, sock in bound:
            host, port = sock.getsockname()[:2]
            local = Peer(transport, host, port)
            self._listening_points.append(local)
            if transport is Transport.UDP:
                udp = DatagramSocket(sock)
                self._udp_sockets.append(udp)
                deliver = partial(self._deliver_datagram, local=local)
                self._nursery.start_soon(
                    self._run_listener, local, partial(_read_until_closed, udp, deliver, self.stats)
                )
            else:
                listener = trio.SocketListener(sock)
                self._nursery.start_soon(
                    self._run_listener, local, partial(self.serve_stream_listener, listener, local)
                )
            logger.info("listening on %s", local)

    def listener_alive(self, local: Peer) -> bool:
        """True while the listener of this listening point runs (for health checks)."""
        return local in self._alive_listeners

    async def _run_listener(self, local: Peer, serve: Callable[[], Awaitable[object]]) -> None:
        # A listener that fails is logged and reported dead to the health check;
        # the other listeners and the connections already open carry on.
        self._alive_listeners.add(local)
        try:
            await serve()
        except Exception:
            logger.exception("listener %s failed", local)
            self.stats["listener_failures"] += 1
        finally:
            self._alive_listeners.discard(local)

    def _deliver_datagram(self, data: bytes, peer: Peer, *, local: Peer) -> None:
        # edge protection: dropped silently unless the guard admits it.
        if self._guard is not None and self._guard.admit(peer, data) is not Verdict.ACCEPT:
            return
        self._deliver(data, peer, None, local)

    async def serve_stream_listener(self, listener: trio.SocketListener, local: Peer) -> None:
        """Accept connections; each runs in this listener's own nursery."""
        async with trio.open_nursery() as connections:
            accepting = trio.CancelScope()
            self._accept_scopes.append(accepting)
            with accepting:
                await trio.serve_listeners(
                    partial(self._serve_inbound, local=local),
                    [listener],
                    handler_nursery=connections,
                )
            logger.info("%s no longer accepting connections", local)

    async def _serve_inbound(self, stream: trio.SocketStream, *, local: Peer) -> None:
        transport = local.transport
        if self._open_streams >= self._limits.max_connections:
            self.stats["connections_refused"] += 1
            await trio.aclose_forcefully(stream)
            return
        self._open_streams += 1
        try:
            try:
                peer = remote_peer(stream, transport)
            except OSError:
                return  # gone before we looked
            wrapped: trio.abc.Stream = stream
            if transport in self._proxy_protocol:
                accepted = await accept_proxied(stream, peer, self._trusted_proxies)
                if isinstance(accepted, Refused):
                    self._refuse_proxied(peer, accepted)
                    await trio.aclose_forcefully(stream)
                    return
                peer, wrapped = accepted
            # edge protection: access lists, bans and the per-source cap, by the real
            # source (after a PROXY protocol header); the ticket's scope bounds the
            # handshakes and the wait for a first message.
            ticket = None if self._guard is None else self._guard.open_connection(peer)
            if self._guard is not None and ticket is None:
                await trio.aclose_forcefully(stream)
                return
            if transport.secure:
                assert self._tls is not None
                wrapped = trio.SSLStream(
                    wrapped, self._tls, server_side=True, https_compatible=True
                )
            try:
                with trio.CancelScope() if ticket is None else ticket.scope:
                    if transport in (Transport.WS, Transport.WSS):
                        await self._serve_websocket(wrapped, transport, peer, local)
                    else:
                        await self._serve_stream(wrapped, transport, peer, local)
            finally:
                if self._guard is not None and ticket is not None:
                    self._guard.connection_closed(ticket)
                await aclose_stream(wrapped)
        except Exception:
            logger.exception("%s connection failed", transport.value)
        finally:
            self._open_streams -= 1

    def _refuse_proxied(self, peer: Peer, refused: Refused) -> None:
        self.stats[refused.reason.value] += 1
        self._proxy_log.warning(
            "connection from %s closed: %s (PROXY protocol listener)", peer, refused.detail
        )

    async def _serve_stream(
        self, stream: trio.abc.Stream, transport: Transport, peer: Peer, local: Peer
    ) -> None:
        if isinstance(stream, trio.SSLStream) and not await tls_handshake(stream, peer):
            self.stats["tls_handshake_failed"] += 1
            return
        conn = StreamConnection(
            self._new_id(transport), transport, stream, peer, local, outbound=False
        )
        await self._run_connection(conn, partial(self._read_stream, conn))

    async def _serve_websocket(
        self, stream: trio.abc.Stream, transport: Transport, peer: Peer, local: Peer
    ) -> None:
        ws = await accept_websocket(stream, peer, self._websocket, self.stats)
        if ws is None:
            return
        conn = WebSocketConnection(self._new_id(transport), transport, stream, ws, peer, local)
        await self._run_connection(
            conn,
            partial(
                read_websocket,
                conn,
                self._deliver_on,
                self.stats,
                idle_timeout=self._limits.idle_timeout,
                max_message_bytes=self._max_message_bytes,
                buffers=self.memory.streams,
            ),
        )

    async def _serve_outbound(
        self,
        transport: Transport,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await open_stream(transport, host, port, self._tls_client_context)
        self._open_streams += 1
        try:
            peer = remote_peer(stream, transport)
            local = self.listening_point(transport)
            if local is None:
                local = Peer(transport, *socket_of(stream).getsockname()[:2])
            conn = StreamConnection(
                self._new_id(transport), transport, stream, peer, local, outbound=True
            )
            await self._run_connection(
                conn,
                partial(self._read_stream, conn),
                extra_keys=(connection_key(transport, host, port),),
                task_status=task_status,
            )
        finally:
            self._open_streams -= 1
            await aclose_stream(stream)

    async def _read_stream(self, conn: StreamConnection) -> None:
        await read_stream(
            conn,
            self._deliver_on,
            self.stats,
            idle_timeout=self._limits.idle_timeout,
            max_message_bytes=self._max_message_bytes,
            buffers=self.memory.streams,
        )

    async def _run_connection(
        self,
        conn: Connection,
        reader: Callable[[], Awaitable[None]],
        *,
        extra_keys: tuple[Key, ...] = (),
        task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Table entry for the connection's lifetime; the reader runs until it ends or
        ``conn.close()`` is called."""
        self.connections.add(conn, *extra_keys)
        self.stats["connections_opened"] += 1
        if self._guard is not None and not conn.outbound:
            self._guard.connection_ready(conn.peer)  # edge protection: first message due
        logger.debug("%s %s open (%s)", conn.id, conn.peer, "out" if conn.outbound else "in")
        try:
            task_status.started(conn)
            with conn.reader_scope:
                try:
                    await reader()
                except Exception:
                    # A defect met on one connection ends that connection only
                    # (outbound readers run in the layer's own nursery).
                    logger.exception("%s %s reader failed", conn.id, conn.peer)
                    self.stats["reader_errors"] += 1
        finally:
            conn.close()
            self.connections.remove(conn)
            self.stats["connections_closed"] += 1
            await conn.aclose_transport()

    def _new_id(self, transport: Transport) -> str:
        return f"{transport.value}-{next(self._ids)}"


async def serve_transports(
    configs: Sequence[TransportConfig],
    handler: Handler,
    *,
    tls: ssl.SSLContext | None = None,
    tls_client_context: ssl.SSLContext | None = None,
    limits: ConnectionLimits | None = None,
    websocket: WebSocketConfig | None = None,
    on_connection_closed: Callable[[Connection], None] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    trusted_proxies: Sequence[str] = (),
    guard: EdgeGuard | None = None,
    inbox: InboxLimits | None = None,
    max_new_tasks: int = MAX_NEW_TASKS,
    max_admitted_tasks: int = MAX_ADMITTED_TASKS,
    refuse: Handler | None = None,
    on_shed: Callable[[str], None] | None = None,
    memory: MemoryBudget | None = None,
    task_status: trio.TaskStatus[TransportLayer] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Bind every listening point, serve them all, report the layer once all are bound.

    ``tls`` is the server context for TLS and WSS listeners (required when one
    is configured); ``tls_client_context`` verifies servers on outbound TLS
    (default: the system trust store). A listener whose config sets
    ``proxy_protocol`` reads a PROXY protocol header from each connection, and
    only from ``trusted_proxies`` (networks).
    ``inbox``, ``max_new_tasks``,
    ``max_admitted_tasks``, ``refuse`` and ``on_shed``: see :class:`TransportLayer`;
    ``memory``: the budget whose inbox and streams shares bound what waits and
    what stream connections buffer (default: the default budget).
    Raises BindError before ``started``.
    """
    if tls is None and any(c.protocol.secure for c in configs):
        raise ValueError("a TLS or WSS listener needs a server TLS context")
    bound: list[tuple[Transport, trio.socket.SocketType]] = []
    try:
        for config in configs:
            sock_type = (
                trio.socket.SOCK_DGRAM
                if config.protocol is Transport.UDP
                else trio.socket.SOCK_STREAM
            )
            sock = await bind_socket(config.protocol, config.bind_addr, config.port, sock_type)
            bound.append((config.protocol, sock))
        async with trio.open_nursery() as nursery:
            layer = TransportLayer(
                nursery,
                handler,
                tls=tls,
                tls_client_context=tls_client_context,
                limits=limits or ConnectionLimits(),
                websocket=websocket or WebSocketConfig(),
                on_connection_closed=on_connection_closed,
                max_message_bytes=max_message_bytes,
                proxy_protocol=frozenset(c.protocol for c in configs if c.proxy_protocol),
                trusted_proxies=trusted_proxies,
                guard=guard,
                inbox=inbox,
                max_new_tasks=max_new_tasks,
                max_admitted_tasks=max_admitted_tasks,
                refuse=refuse,
                on_shed=on_shed,
                memory=memory,
            )
            layer.start_listeners(bound)
            task_status.started(layer)
            await trio.sleep_forever()
    finally:
        for _, sock in bound:
            sock.close()


async def _read_until_closed(
    udp: DatagramSocket, deliver: Callable[[bytes, Peer], None], stats: Counter[str]
) -> None:
    try:
        await udp.read(deliver, stats)
    finally:
        udp.close()
