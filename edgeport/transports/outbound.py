"""Outbound connections: TCP and TLS connections edgeport opens to send a message.

RFC 3261 §18.1.1 (a request for a stream peer with no connection opens one),
RFC 5630 and RFC 6125 (the TLS server's certificate must name the host
dialled: :func:`edgeport.transports.tls.build_client_context`). Concurrent
senders to one (transport, host, port) share one connect attempt and its
outcome. Each outbound connection runs in the transports' nursery, under
the :class:`~edgeport.transports.running.ConnectionRunner`, registered under
its peer address and under the name it was dialled by.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

import trio

from edgeport.transports.base import Peer
from edgeport.transports.connections import connection_key
from edgeport.transports.errors import SendError
from edgeport.transports.sockets import aclose_stream, remote_peer, socket_of
from edgeport.transports.stream import CONNECT_TIMEOUT, StreamConnection, open_stream

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Sequence

    from edgeport.sip.transport import Transport
    from edgeport.transports.base import Connection
    from edgeport.transports.connections import Key
    from edgeport.transports.running import ConnectionRunner

logger = logging.getLogger(__name__)


def default_client_context() -> ssl.SSLContext:
    """System trust store, hostname checks, TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _ConnectAttempt:
    """One outbound connect in progress; later senders wait for its outcome."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.conn: Connection | None = None
        self.error = "connect failed"


class Outbound:
    """Opens connections for the send side; counts ``connect_failed_<transport>``.

    ``client_context`` verifies servers on outbound TLS; ``listening_points``
    give an outbound connection its local address (the listener of its
    transport, else its socket's).
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        runner: ConnectionRunner,
        stats: Counter[str],
        *,
        client_context: ssl.SSLContext,
        listening_points: Sequence[Peer],
    ) -> None:
        self._nursery = nursery
        self._runner = runner
        self._stats = stats
        self._client_context = client_context
        self._listening_points = tuple(listening_points)
        self._connecting: dict[Key, _ConnectAttempt] = {}

    @property
    def client_context(self) -> ssl.SSLContext:
        """What the next outbound TLS connection verifies with (a reload replaces it;
        connections already open keep theirs)."""
        return self._client_context

    @client_context.setter
    def client_context(self, context: ssl.SSLContext) -> None:
        self._client_context = context

    async def connect(self, transport: Transport, host: str, port: int) -> Connection:
        """The live connection to (transport, host, port); concurrent senders share one
        connection attempt and its outcome. Raises SendError."""
        key = connection_key(transport, host, port)
        attempt = self._connecting.get(key)
        if attempt is not None:
            await attempt.done.wait()
            if attempt.conn is None:
                raise SendError(attempt.error)
            return attempt.conn
        attempt = self._connecting[key] = _ConnectAttempt()
        try:
            attempt.conn = await self._nursery.start(self._serve, transport, host, port)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)
            attempt.error = f"cannot connect to {transport.value}:{host}:{port}: {reason}"
            logger.warning("%s", attempt.error)
            self._stats[f"connect_failed_{transport.value}"] += 1
            raise SendError(attempt.error) from exc
        finally:
            del self._connecting[key]
            attempt.done.set()
        return attempt.conn

    async def _serve(
        self,
        transport: Transport,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await open_stream(transport, host, port, self._client_context)
        runner = self._runner
        runner.stream_opened()
        try:
            peer = remote_peer(stream, transport)
            local = next((p for p in self._listening_points if p.transport is transport), None)
            if local is None:
                local = Peer(transport, *socket_of(stream).getsockname()[:2])
            conn = StreamConnection(
                runner.new_id(transport), transport, stream, peer, local, outbound=True
            )
            await runner.run(
                conn,
                runner.stream_reader(conn),
                extra_keys=(connection_key(transport, host, port),),
                task_status=task_status,
            )
        finally:
            runner.stream_closed()
            await aclose_stream(stream)
