"""TCP and TLS connections: listening sockets, outbound connects, the reader loop.

RFC 3261 §18.3 (framing on streams, via :mod:`edgeport.sip.framing`),
RFC 5626 §4.4.1 (CRLF keepalive: a double CRLF ping gets a CRLF pong),
RFC 3261 §18.2.2 (a connection opened by a client carries its responses).
The reader closes a connection that is idle for ``idle_timeout`` seconds,
that breaks a framing limit, or that the peer closes.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from edgeport.memory import Charge
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.framing import FramingError, KeepalivePing, StreamFramer, error_response
from edgeport.sip.transport import Transport
from edgeport.transports.base import Connection, Peer
from edgeport.transports.errors import ConnectionLost, TlsHandshakeError
from edgeport.transports.sockets import aclose_stream

if TYPE_CHECKING:
    from collections import Counter

    from edgeport.memory import Account

logger = logging.getLogger(__name__)
_budget_log = RateLimitedLog(logger)

RECEIVE_BYTES: Final = 64 * 1024  # one read; the framer bounds what is kept
CONNECT_TIMEOUT: Final = 10.0  # outbound TCP connect plus TLS handshake
HANDSHAKE_TIMEOUT: Final = 10.0  # inbound TLS (and WebSocket) handshake
PONG: Final = b"\r\n"

Deliver = Callable[[bytes, Connection], None]


class StreamConnection(Connection):
    """A TCP or TLS connection over a trio stream."""

    def __init__(
        self,
        conn_id: str,
        transport: Transport,
        stream: trio.abc.Stream,
        peer: Peer,
        local: Peer,
        *,
        outbound: bool,
    ) -> None:
        super().__init__(conn_id, transport, peer, local, outbound=outbound)
        self.stream = stream

    async def _send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.close()
            raise ConnectionLost(f"{self.id} broken") from None

    async def aclose_transport(self) -> None:
        await aclose_stream(self.stream)


async def tls_handshake(stream: trio.SSLStream[trio.SocketStream], peer: Peer) -> bool:
    """Run the TLS handshake under HANDSHAKE_TIMEOUT; False (logged) when it fails."""
    with trio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            logger.warning("TLS handshake with %s failed: %s", peer, exc.__cause__ or exc)
            return False
    if scope.cancelled_caught:
        logger.warning("TLS handshake with %s timed out", peer)
        return False
    return True


async def open_stream(
    transport: Transport, host: str, port: int, client_context: ssl.SSLContext
) -> trio.abc.Stream:
    """Connect to ``host:port``; TLS verifies the server against ``client_context``.

    The server's certificate must name ``host``: its DNS names when ``host``
    is a name, its IP addresses (subjectAltName iPAddress) when ``host`` is
    an IP address (see :func:`edgeport.transports.tls.build_client_context`).
    A failed handshake raises :class:`TlsHandshakeError` saying why. The
    caller puts a deadline around it (CONNECT_TIMEOUT).
    """
    tcp = await trio.open_tcp_stream(host, port)
    if transport is not Transport.TLS:
        return tcp
    tls = trio.SSLStream(tcp, client_context, server_hostname=host, https_compatible=True)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(tls)
        raise TlsHandshakeError(_handshake_failure(exc.__cause__)) from exc
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return tls


def _handshake_failure(cause: BaseException | None) -> str:
    """One line for the log: why an outbound TLS handshake failed."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    return f"TLS handshake failed: {cause or 'connection closed'}"


async def read_stream(
    conn: StreamConnection,
    deliver: Deliver,
    stats: Counter[str],
    *,
    idle_timeout: float,
    max_message_bytes: int,
    buffers: Account | None = None,
) -> None:
    """Read frames from ``conn`` until the peer closes, it idles out, or framing fails.

    ``buffers`` is the streams share of the memory budget: the partial
    message the framer holds is charged to it, and a connection whose buffer
    would not fit is closed.
    """
    framer = StreamFramer(max_message_bytes=max_message_bytes)
    charge = None if buffers is None else Charge(buffers)
    try:
        await _read_frames(conn, framer, charge, deliver, stats, idle_timeout=idle_timeout)
    finally:
        if charge is not None:
            charge.release()


async def _read_frames(
    conn: StreamConnection,
    framer: StreamFramer,
    charge: Charge | None,
    deliver: Deliver,
    stats: Counter[str],
    *,
    idle_timeout: float,
) -> None:
    while True:
        with trio.CancelScope(deadline=conn.last_activity + idle_timeout) as scope:
            try:
                data = await conn.stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                logger.info("%s %s broken: %s", conn.id, conn.peer, exc.__cause__ or exc)
                stats["connections_broken"] += 1
                return
        if scope.cancelled_caught:
            if trio.current_time() >= conn.last_activity + idle_timeout:
                logger.info("%s %s idle, closing", conn.id, conn.peer)
                stats["connections_idle_closed"] += 1
                return
            continue
        if not data:
            if framer.buffered:
                logger.info(
                    "%s %s closed mid-message (%d bytes dropped)",
                    conn.id,
                    conn.peer,
                    framer.buffered,
                )
                stats["dropped_partial"] += 1
            return
        conn.last_activity = trio.current_time()
        try:
            frames = framer.feed(data)
        except FramingError as exc:
            await _handle_frames(conn, exc.frames, deliver)
            await _reject(conn, exc, stats)
            return
        if not await _handle_frames(conn, frames, deliver):
            return
        del data, frames  # an idle connection keeps no received bytes
        if charge is not None and not charge.resize(framer.buffered):
            budget_closed(conn, framer.buffered, stats)
            return


def budget_closed(conn: Connection, size: int, stats: Counter[str]) -> None:
    """A connection closed because its partial message does not fit the memory budget."""
    _budget_log.warning(
        "%s %s closed: a partial message of %d bytes does not fit the streams memory budget",
        conn.id,
        conn.peer,
        size,
    )
    stats["dropped_memory_budget"] += 1


async def _handle_frames(
    conn: Connection, frames: list[bytes | KeepalivePing], deliver: Deliver
) -> bool:
    ponged = False
    for frame in frames:
        if isinstance(frame, KeepalivePing):
            # RFC 5626 §3.5.1, §4.4.1: a double-CRLF ping is answered with a CRLF pong.
            # Pings read together get one pong: a keep-alive client sends one at a
            # time, and a burst of them must not cost a write each.
            if ponged:
                continue
            ponged = True
            try:
                await conn.send(PONG)
            except ConnectionLost:
                return False
        else:
            deliver(frame, conn)
    return True


async def _reject(conn: Connection, exc: FramingError, stats: Counter[str]) -> None:
    """Answer the unframeable request when its header section was readable, then close."""
    logger.warning("%s %s framing error: %s, closing", conn.id, conn.peer, exc.reason)
    stats[f"dropped_{exc.reason.lower().replace(' ', '_').replace('-', '_')}"] += 1
    if exc.head is None:
        return
    response = error_response(exc.head, exc.status_code, exc.reason, to_tag=secrets.token_hex(4))
    if response is None:
        return
    try:
        await conn.send(response)
    except ConnectionLost:
        return
    stats[f"sent_{conn.transport.value}"] += 1
