"""A stream connection's life, inbound or outbound: its table entry, its reader, its count.

RFC 3261 §18.2.2, §18.3: every TCP, TLS, WS and WSS connection, whichever
side opened it, is in the connection table while it lives, so what goes to
its peer leaves over it. :class:`ConnectionRunner` keeps the connection in
the table for as long as its reader runs (framing: :mod:`.stream`,
:mod:`.websocket`), hands each message read to dispatch, and counts the
open streams against ``spec.connections.max``.

Edge protection (:class:`edgeport.protection.EdgeGuard`): a message read on
an inbound connection from a denied, banned or scanning source is dropped
and its connection closed; an inbound connection is reported ready (its
first message is due) once it is in the table. Outbound connections are
edgeport's own and are not checked.

Concurrency: the reader runs in the task that serves the connection (a
listener's connection task, or an outbound task in the transports' nursery).
"""

from __future__ import annotations

import itertools
import logging
from functools import partial
from typing import TYPE_CHECKING

import trio

from edgeport.protection import Verdict
from edgeport.transports.stream import read_stream
from edgeport.transports.websocket import read_websocket

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Awaitable, Callable

    from edgeport.config import ConnectionLimits
    from edgeport.memory import Account
    from edgeport.protection import EdgeGuard
    from edgeport.sip.transport import Transport
    from edgeport.transports.base import Connection, Peer
    from edgeport.transports.connections import ConnectionTable, Key
    from edgeport.transports.stream import StreamConnection
    from edgeport.transports.websocket import WebSocketConnection

    Deliver = Callable[[bytes, Peer, Connection | None, Peer], None]

logger = logging.getLogger(__name__)


class ConnectionRunner:
    """Runs stream connections: table entry, reader, guard check of what is read.

    Counts in ``stats``: ``connections_opened``, ``connections_closed``,
    ``reader_errors`` (and, through the readers, what :mod:`.stream` and
    :mod:`.websocket` count).
    """

    def __init__(
        self,
        connections: ConnectionTable,
        deliver: Deliver,
        stats: Counter[str],
        *,
        limits: ConnectionLimits,
        max_message_bytes: int,
        buffers: Account,
        guard: EdgeGuard | None = None,
    ) -> None:
        self._connections = connections
        self._deliver = deliver  # dispatch
        self._stats = stats
        self._limits = limits
        self._max_message_bytes = max_message_bytes
        self._buffers = buffers  # the streams share of the memory budget
        self._guard = guard
        self._open_streams = 0
        self._ids = itertools.count(1)

    # -- the count of open streams (spec.connections.max) ----------------------

    @property
    def full(self) -> bool:
        """True while ``max_connections`` streams are open: a new inbound one is refused."""
        return self._open_streams >= self._limits.max_connections

    def stream_opened(self) -> None:
        self._open_streams += 1

    def stream_closed(self) -> None:
        self._open_streams -= 1

    def new_id(self, transport: Transport) -> str:
        return f"{transport.value}-{next(self._ids)}"

    # -- running one connection ------------------------------------------------

    async def run(
        self,
        conn: Connection,
        reader: Callable[[], Awaitable[None]],
        *,
        extra_keys: tuple[Key, ...] = (),
        task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Table entry for the connection's lifetime; the reader runs until it ends or
        ``conn.close()`` is called."""
        self._connections.add(conn, *extra_keys)
        self._stats["connections_opened"] += 1
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
                    # (outbound readers run in the transports' own nursery).
                    logger.exception("%s %s reader failed", conn.id, conn.peer)
                    self._stats["reader_errors"] += 1
        finally:
            conn.close()
            self._connections.remove(conn)
            self._stats["connections_closed"] += 1
            await conn.aclose_transport()

    def stream_reader(self, conn: StreamConnection) -> Callable[[], Awaitable[None]]:
        """The reader of a TCP or TLS connection (RFC 3261 §18.3 framing)."""
        return partial(
            read_stream,
            conn,
            self.deliver_on,
            self._stats,
            idle_timeout=self._limits.idle_timeout,
            max_message_bytes=self._max_message_bytes,
            buffers=self._buffers,
        )

    def websocket_reader(self, conn: WebSocketConnection) -> Callable[[], Awaitable[None]]:
        """The reader of a WS or WSS connection (RFC 7118 §5.1: one message per frame)."""
        return partial(
            read_websocket,
            conn,
            self.deliver_on,
            self._stats,
            idle_timeout=self._limits.idle_timeout,
            max_message_bytes=self._max_message_bytes,
            buffers=self._buffers,
            ping_interval=self._limits.web_socket_ping_interval,
        )

    def deliver_on(self, data: bytes, conn: Connection) -> None:
        """One message read on ``conn``, for dispatch."""
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
