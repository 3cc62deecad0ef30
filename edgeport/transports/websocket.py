"""SIP over WebSocket (WS and WSS) with trio-websocket.

RFC 7118: the handshake must negotiate the ``sip`` subprotocol (§4.1), each
WebSocket message carries exactly one SIP message, text or binary (§5.1),
and a client's Contact host is a ``.invalid`` name reached only over its
connection (§5.2). trio-websocket answers pings and runs the close handshake.
Optional Origin allow-list (RFC 6455 §10.2) for browser clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio
import trio_websocket

from edgeport.transports.base import CLOSE_TIMEOUT, Connection, Peer
from edgeport.transports.errors import ConnectionLost
from edgeport.transports.stream import HANDSHAKE_TIMEOUT, tls_handshake

if TYPE_CHECKING:
    from collections import Counter

    from edgeport.config import WebSocketConfig
    from edgeport.sip.transport import Transport

logger = logging.getLogger(__name__)

SUBPROTOCOL: Final = "sip"
MESSAGE_QUEUE_SIZE: Final = 4  # received WebSocket messages waiting for the reader

Deliver = Callable[[bytes, Connection], None]


class WebSocketConnection(Connection):
    """One accepted WebSocket; replies go out as text when they are UTF-8."""

    def __init__(
        self,
        conn_id: str,
        transport: Transport,
        ws: trio_websocket.WebSocketConnection,
        peer: Peer,
        local: Peer,
    ) -> None:
        super().__init__(conn_id, transport, peer, local, outbound=False)
        self.ws = ws

    async def _send(self, data: bytes) -> None:
        message: str | bytes
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        try:
            await self.ws.send_message(message)
        except trio_websocket.ConnectionClosed:
            self.close()
            raise ConnectionLost(f"{self.id} closed") from None

    async def aclose_transport(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await self.ws.aclose()


def refusal(
    request: trio_websocket.WebSocketRequest, config: WebSocketConfig
) -> tuple[int, str] | None:
    """The HTTP status and reason to refuse a handshake with, or None to accept it."""
    if SUBPROTOCOL not in (p.strip().lower() for p in request.proposed_subprotocols):
        return 400, "the sip subprotocol is required (RFC 7118)"
    if config.allowed_origins:
        origin = next((v for k, v in request.headers if k.lower() == b"origin"), None)
        # Clients other than browsers send no Origin; only a present one is checked.
        allowed = {o.lower() for o in config.allowed_origins}
        if origin is not None and origin.decode("latin-1").lower() not in allowed:
            return 403, "origin not allowed"
    return None


async def accept_websocket(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    peer: Peer,
    config: WebSocketConfig,
    stats: Counter[str],
    *,
    max_message_bytes: int,
) -> trio_websocket.WebSocketConnection | None:
    """TLS (for WSS) and WebSocket handshakes under HANDSHAKE_TIMEOUT; None when refused.

    The WebSocket's reader task runs in ``nursery``.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
        if isinstance(stream, trio.SSLStream) and not await tls_handshake(stream, peer):
            stats["tls_handshake_failed"] += 1
            return None
        try:
            request = await trio_websocket.wrap_server_stream(
                nursery,
                stream,
                message_queue_size=MESSAGE_QUEUE_SIZE,
                max_message_size=max_message_bytes,
            )
            refused = refusal(request, config)
            if refused is None:
                return await request.accept(subprotocol=SUBPROTOCOL)
            status, reason = refused
            logger.info("WebSocket handshake from %s refused: %s", peer, reason)
            stats["ws_handshake_refused"] += 1
            await request.reject(status, body=reason.encode())
            return None
        except trio_websocket.ConnectionClosed:
            logger.info("WebSocket handshake from %s: peer went away", peer)
            return None
    if scope.cancelled_caught:
        logger.info("WebSocket handshake from %s timed out", peer)
        stats["ws_handshake_timeout"] += 1
    return None


async def read_websocket(
    conn: WebSocketConnection,
    deliver: Deliver,
    stats: Counter[str],
    *,
    idle_timeout: float,
) -> None:
    """Deliver one SIP message per WebSocket message until close or idle timeout."""
    while True:
        with trio.CancelScope(deadline=conn.last_activity + idle_timeout) as scope:
            try:
                message = await conn.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                logger.info("%s %s closed: %s", conn.id, conn.peer, exc.reason)
                return
        if scope.cancelled_caught:
            if trio.current_time() >= conn.last_activity + idle_timeout:
                logger.info("%s %s idle, closing", conn.id, conn.peer)
                stats["connections_idle_closed"] += 1
                return
            continue
        conn.last_activity = trio.current_time()
        data = message.encode("utf-8") if isinstance(message, str) else message
        if not data.strip(b"\r\n"):
            continue  # a CRLF keepalive sent as a message
        deliver(data, conn)
