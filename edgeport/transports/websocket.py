"""SIP over WebSocket (WS and WSS): a trio driver for wsproto's sans-IO state machine.

RFC 7118: the handshake must negotiate the ``sip`` subprotocol (§4.1), each
WebSocket message carries exactly one SIP message, text or binary (§5.1),
and a client's Contact host is a ``.invalid`` name reached only over its
connection (§5.2). Optional Origin allow-list (RFC 6455 §10.2) for browser
clients.

One task per connection, as for TCP: the reader feeds received bytes to a
``wsproto.connection.Connection`` and handles its events (messages, pings,
close). The HTTP upgrade runs on a ``wsproto.handshake.H11Handshake`` that is
dropped once the connection is open, so an idle connection keeps only the
frame protocol state. A connection can be probed (a Ping whose Pong must come
back, :meth:`WebSocketConnection.probe`) when another one claims its
``.invalid`` alias, and a silent one is pinged to keep NATs and load
balancers open, and closed when it stops answering (:mod:`.ws_keepalive`).
(trio-websocket, which the clients and tests use, keeps a second task, a
message channel and the handshake for each connection: about twice the
memory of an idle TCP connection.)
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection as FrameConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from edgeport.memory import Charge
from edgeport.transports.base import CLOSE_TIMEOUT, Connection, Peer
from edgeport.transports.errors import ConnectionLost
from edgeport.transports.sockets import aclose_stream
from edgeport.transports.stream import (
    HANDSHAKE_TIMEOUT,
    RECEIVE_BYTES,
    budget_closed,
    tls_handshake,
)
from edgeport.transports.ws_keepalive import Due, KeepalivePings

if TYPE_CHECKING:
    from collections import Counter

    from edgeport.config import WebSocketConfig
    from edgeport.memory import Account
    from edgeport.sip.transport import Transport

logger = logging.getLogger(__name__)

SUBPROTOCOL: Final = "sip"
# The HTTP upgrade request is bounded by h11 (16 KiB of head, then a 400) and
# by HANDSHAKE_TIMEOUT; reads while handshaking are small.
HANDSHAKE_RECEIVE_BYTES: Final = 4 * 1024
PROBE_PAYLOAD_BYTES: Final = 8  # random Ping payload a probe's Pong must echo

Deliver = Callable[[bytes, Connection], None]
_BROKEN: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


class WebSocketConnection(Connection):
    """One accepted WebSocket; replies go out as text when they are UTF-8.

    ``ws`` is the sans-IO frame protocol; only the reader feeds it, and every
    frame it produces is written under the connection's writer lock.
    """

    def __init__(
        self,
        conn_id: str,
        transport: Transport,
        stream: trio.abc.Stream,
        ws: FrameConnection,
        peer: Peer,
        local: Peer,
    ) -> None:
        super().__init__(conn_id, transport, peer, local, outbound=False)
        self.stream = stream
        self.ws = ws
        self._failed = False
        self._probe: tuple[bytes, trio.Event] | None = None  # the Ping awaiting its Pong

    async def probe(self) -> None:
        """Send a Ping and return once its Pong is back (the caller bounds the wait);
        raises ConnectionLost when the Ping cannot be sent.

        RFC 6455 §5.5.3: "A Pong frame sent in response to a Ping frame must have
        identical "Application data" as found in the message body of the Ping frame
        being replied to." One probe at a time (the caller's rule).
        """
        payload = secrets.token_bytes(PROBE_PAYLOAD_BYTES)
        answered = trio.Event()
        self._probe = (payload, answered)
        try:
            await self.send_control(Ping(payload=payload))
            await answered.wait()
        finally:
            self._probe = None

    def pong_received(self, payload: bytes) -> None:
        """The reader got a Pong; it answers the probe when it carries its payload."""
        probe = self._probe
        if probe is not None and probe[0] == payload:
            probe[1].set()

    async def _send(self, data: bytes) -> None:
        event: TextMessage | BytesMessage
        try:
            event = TextMessage(data=data.decode("utf-8"))
        except UnicodeDecodeError:
            event = BytesMessage(data=data)
        await self._write_event(event)

    async def send_control(self, event: Event) -> None:
        """Write a pong or close frame (under the writer lock and SEND_TIMEOUT)."""
        await self._exclusive(self._write_event, event)

    async def _write_event(self, event: Event) -> None:
        try:
            data = self.ws.send(event)
        except LocalProtocolError:
            # A message or pong after a close frame went either way.
            raise ConnectionLost(f"{self.id} is closing") from None
        try:
            await self.stream.send_all(data)
        except _BROKEN:
            self.close()
            raise ConnectionLost(f"{self.id} broken") from None

    async def fail(self, code: int, reason: str | None) -> None:
        """Send a Close frame for a protocol error; the stream then closes without
        waiting for the reply.

        RFC 6455 §7.1.7: "an endpoint MUST NOT continue to attempt to process data
        (including a responding Close frame) from the remote endpoint after being
        instructed to _Fail the WebSocket Connection_."
        """
        self._failed = True
        with contextlib.suppress(ConnectionLost):
            await self.send_control(CloseConnection(code=code, reason=reason))

    async def aclose_transport(self) -> None:
        """Run the close handshake (bounded by CLOSE_TIMEOUT), then close the stream.

        RFC 6455 §7.1.1: "the server SHOULD close the underlying TCP connection
        first", so the stream is closed as soon as the peer's Close frame is in.
        """
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            if self.ws.state is ConnectionState.OPEN:
                with contextlib.suppress(ConnectionLost):
                    await self.send_control(CloseConnection(code=CloseReason.NORMAL_CLOSURE))
            if self.ws.state is ConnectionState.LOCAL_CLOSING and not self._failed:
                await self._wait_close_reply()
        await aclose_stream(self.stream)

    async def _wait_close_reply(self) -> None:
        """Read, discarding messages, until the peer's Close frame or end of stream."""
        while True:
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            except _BROKEN:
                return
            if not data:
                return
            self.ws.receive_data(bytes(data))
            if any(isinstance(event, CloseConnection) for event in self.ws.events()):
                return


def offered_subprotocol(request: Request) -> str | None:
    """The client's spelling of ``sip`` among its proposals, if any.

    RFC 6455 §4.2.2: the selected subprotocol "MUST be derived from the client's
    handshake, specifically by selecting one of the values from the
    |Sec-WebSocket-Protocol| field".
    """
    return next((p for p in request.subprotocols if p.strip().lower() == SUBPROTOCOL), None)


def refusal(request: Request, config: WebSocketConfig) -> tuple[int, str] | None:
    """The HTTP status and reason to refuse a handshake with, or None to accept it."""
    if offered_subprotocol(request) is None:
        return 400, "the sip subprotocol is required (RFC 7118)"
    if config.allowed_origins:
        # wsproto lower-cases header names.
        origin = next((v for k, v in request.extra_headers if k == b"origin"), None)
        # Clients other than browsers send no Origin; only a present one is checked.
        allowed = {o.lower() for o in config.allowed_origins}
        if origin is not None and origin.decode("latin-1").lower() not in allowed:
            return 403, "origin not allowed"
    return None


async def accept_websocket(
    stream: trio.abc.Stream,
    peer: Peer,
    config: WebSocketConfig,
    stats: Counter[str],
) -> FrameConnection | None:
    """TLS (for WSS) and WebSocket handshakes under HANDSHAKE_TIMEOUT.

    Returns the open frame protocol, or None when the handshake failed or was
    refused (the refusal is sent). The HTTP state is dropped on return.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT) as scope:
        if isinstance(stream, trio.SSLStream) and not await tls_handshake(stream, peer):
            stats["tls_handshake_failed"] += 1
            return None
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            request = await _receive_request(stream, handshake)
            if request is None:
                logger.info("WebSocket handshake from %s: peer went away", peer)
                return None
            refused = refusal(request, config)
            if refused is None:
                accept = AcceptConnection(subprotocol=offered_subprotocol(request))
                await stream.send_all(handshake.send(accept))
                return handshake.connection
            status, reason = refused
            logger.info("WebSocket handshake from %s refused: %s", peer, reason)
            stats["ws_handshake_refused"] += 1
            await _reject(stream, handshake, status, reason)
            return None
        except RemoteProtocolError as exc:
            logger.info("WebSocket handshake from %s refused: %s", peer, exc)
            stats["ws_handshake_refused"] += 1
            hint = exc.event_hint
            if isinstance(hint, RejectConnection):
                await _reject(stream, handshake, hint.status_code, str(exc), hint.headers)
            return None
        except _BROKEN:
            logger.info("WebSocket handshake from %s: peer went away", peer)
            return None
    if scope.cancelled_caught:
        logger.info("WebSocket handshake from %s timed out", peer)
        stats["ws_handshake_timeout"] += 1
    return None


async def _receive_request(stream: trio.abc.Stream, handshake: H11Handshake) -> Request | None:
    """The client's upgrade request, or None at end of stream; RemoteProtocolError when
    it is not a valid WebSocket upgrade (RFC 6455 §4.2.1)."""
    while True:
        for event in handshake.events():
            if isinstance(event, Request):
                return event
        data = await stream.receive_some(HANDSHAKE_RECEIVE_BYTES)
        if not data:
            return None
        handshake.receive_data(bytes(data))


async def _reject(
    stream: trio.abc.Stream,
    handshake: H11Handshake,
    status: int,
    reason: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = reason.encode()
    headers = [
        *headers,
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    data = handshake.send(RejectConnection(status_code=status, headers=headers, has_body=True))
    data += handshake.send(RejectData(data=body))
    try:
        await stream.send_all(data)
    except _BROKEN:
        return


async def read_websocket(
    conn: WebSocketConnection,
    deliver: Deliver,
    stats: Counter[str],
    *,
    idle_timeout: float,
    max_message_bytes: int,
    buffers: Account | None = None,
    ping_interval: float = 0.0,
) -> None:
    """Deliver one SIP message per WebSocket message until close or idle timeout.

    Whatever the peer sends counts as activity (a Ping too), except a Pong:
    the answer to edgeport's keep-alive Ping (every ``ping_interval`` seconds
    of silence, 0: never; :mod:`.ws_keepalive`) keeps the connection open
    while the peer answers, up to the idle timeout. A message over
    ``max_message_bytes`` (counted in bytes, text as UTF-8) closes the
    connection with 1009. The fragments of a message being received are
    charged to ``buffers`` (the streams share of the memory budget); a
    connection whose message would not fit is closed.
    """
    message = _MessageBuffer(max_message_bytes, None if buffers is None else Charge(buffers))
    try:
        await _read_messages(
            conn,
            message,
            deliver,
            stats,
            idle_timeout=idle_timeout,
            ping_interval=ping_interval,
        )
    finally:
        message.release()


async def _read_messages(
    conn: WebSocketConnection,
    message: _MessageBuffer,
    deliver: Deliver,
    stats: Counter[str],
    *,
    idle_timeout: float,
    ping_interval: float,
) -> None:
    keepalive = KeepalivePings(ping_interval, trio.current_time())
    while True:
        if not await _handle_events(conn, message, deliver, stats):
            return
        deadline = min(conn.last_activity + idle_timeout, keepalive.deadline)
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                data = await conn.stream.receive_some(RECEIVE_BYTES)
            except _BROKEN as exc:
                logger.info("%s %s broken: %s", conn.id, conn.peer, exc.__cause__ or exc)
                stats["connections_broken"] += 1
                return
        if scope.cancelled_caught:
            now = trio.current_time()
            if now >= conn.last_activity + idle_timeout:
                logger.info("%s %s idle, closing", conn.id, conn.peer)
                stats["connections_idle_closed"] += 1
                return
            if not await _keep_alive(conn, keepalive, now, stats):
                return
            continue
        if not data:
            logger.info("%s %s closed without a close frame", conn.id, conn.peer)
            if message.size:
                stats["dropped_partial"] += 1
            return
        keepalive.heard_from(trio.current_time())
        conn.ws.receive_data(bytes(data))
        del data  # an idle connection keeps no received bytes


async def _keep_alive(
    conn: WebSocketConnection, keepalive: KeepalivePings, now: float, stats: Counter[str]
) -> bool:
    """Ping a silent peer, or close a connection whose Pings went unanswered; False when
    the reader should stop."""
    due = keepalive.due(now)
    if due is Due.CLOSE:
        logger.info(
            "%s %s answered no Ping in %g s, closing", conn.id, conn.peer, now - keepalive.heard
        )
        stats["ws_ping_timeouts"] += 1
        return False
    if due is Due.PING:
        keepalive.sent_ping(now)
        try:
            await conn.send_control(Ping())
        except ConnectionLost:
            return False
    return True


class _MessageBuffer:
    """The fragments of the message being received (RFC 6455 §5.4), bounded."""

    __slots__ = ("charge", "limit", "parts", "size")

    def __init__(self, limit: int, charge: Charge | None = None) -> None:
        self.limit = limit
        self.charge = charge
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> bool:
        """Append a fragment; False when the message would exceed the limit."""
        self.size += len(data)
        if self.size > self.limit:
            return False
        self.parts.append(data)
        return True

    def fits_budget(self) -> bool:
        """Charge the budget for what is held; False when it does not fit."""
        return self.charge is None or self.charge.resize(self.size)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        self.size = 0
        if self.charge is not None:
            self.charge.resize(0)
        return data

    def release(self) -> None:
        self.parts = []
        self.size = 0
        if self.charge is not None:
            self.charge.release()


async def _handle_events(
    conn: WebSocketConnection, message: _MessageBuffer, deliver: Deliver, stats: Counter[str]
) -> bool:
    """Handle what the received bytes produced; False when the reader should stop."""
    ping: Ping | None = None
    for event in conn.ws.events():
        if not isinstance(event, Pong):
            # A Pong answers edgeport's own Ping: the peer is there, not busy.
            conn.last_activity = trio.current_time()
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data.encode("utf-8") if isinstance(event.data, str) else bytes(event.data)
            if not message.add(data):
                logger.warning(
                    "%s %s message over %d bytes, closing", conn.id, conn.peer, message.limit
                )
                stats["dropped_message_too_large"] += 1
                # RFC 6455 §7.4.1: 1009 "indicates that an endpoint is terminating the
                # connection because it has received a message that is too big for it
                # to process."
                await _send_close(conn, CloseConnection(CloseReason.MESSAGE_TOO_BIG, "too big"))
                return False
            if not event.message_finished and not message.fits_budget():
                budget_closed(conn, message.size, stats)
                await _send_close(conn, CloseConnection(CloseReason.TRY_AGAIN_LATER, "busy"))
                return False
            if event.message_finished:
                data = message.take()
                if data.strip(b"\r\n"):  # else a CRLF keepalive sent as a message
                    deliver(data, conn)
        elif isinstance(event, Ping):
            # RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
            # Pong frame in response, unless it already received a Close frame."
            ping = event
        elif isinstance(event, Pong):
            conn.pong_received(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            if conn.ws.state is ConnectionState.REMOTE_CLOSING:
                logger.info("%s %s closed: %s %s", conn.id, conn.peer, event.code, event.reason)
                # RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not
                # previously send a Close frame, the endpoint MUST send a Close frame in
                # response."
                await _send_close(conn, event.response())
            else:
                # wsproto reports a frame it cannot parse as a close event with the
                # code to fail the connection with (RFC 6455 §7.1.7).
                logger.info("%s %s protocol error: %s", conn.id, conn.peer, event.reason)
                stats["ws_protocol_errors"] += 1
                await conn.fail(event.code, event.reason)
            return False
    if ping is not None:
        # RFC 6455 §5.5.3: "If an endpoint receives a Ping frame and has not yet sent
        # Pong frame(s) in response to previous Ping frame(s), the endpoint MAY elect
        # to send a Pong frame for only the most recently processed Ping frame." Pings
        # read together get one Pong: a burst of them must not cost a write each.
        try:
            await conn.send_control(ping.response())
        except ConnectionLost:
            return False
    return True


async def _send_close(conn: WebSocketConnection, close: CloseConnection) -> None:
    with contextlib.suppress(ConnectionLost):
        await conn.send_control(close)
