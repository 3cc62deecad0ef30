"""Inbound dispatch: every message the transports deliver starts here.

A retransmission of a request still being routed is dropped before parsing
(``edgeport.admission``); anything else is parsed and counted, a WebSocket
client's ``.invalid`` Contact host is learned (RFC 7118 §5.2), and the
message goes to the request side or the response side. A request too broken
to process gets a stateless 4xx/5xx (RFC 3261 §16.3); a defect met while
handling one message is logged with its Call-ID and counted, and never ends
the server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from edgeport.metrics import status_class
from edgeport.proxy.model import Destination
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.message import Request, Response, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias

if TYPE_CHECKING:
    from edgeport.admission import Routing
    from edgeport.metrics import EdgeportMetrics
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.requests import RequestHandler
    from edgeport.proxy.upstream import UpstreamRelay
    from edgeport.transports import Connection, InboundMessage

logger = logging.getLogger(__name__)

_WEBSOCKETS = (Transport.WS, Transport.WSS)


class AliasBinder(Protocol):
    """Where a WebSocket client's ``.invalid`` hosts are bound (the connection table)."""

    def bind_alias(self, host: str, conn: Connection) -> object: ...


class Dispatcher:
    """Parses what the transports deliver and hands it to the side it belongs to."""

    def __init__(
        self,
        requests: RequestHandler,
        responses: UpstreamRelay,
        responder: Responder,
        metrics: EdgeportMetrics,
        *,
        routing: Routing,
        aliases: AliasBinder,
    ) -> None:
        self._requests = requests
        self._responses = responses
        self._responder = responder
        self._metrics = metrics
        self._routing = routing
        self._aliases = aliases
        self._drops = RateLimitedLog(logger)

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        """Handle one raw message from a transport (the transport layer's handler)."""
        if self._routing.is_retransmission(inbound):
            # Its server transaction would absorb it; not even parsed.
            self._metrics.dropped_messages.labels(reason="retransmission").inc()
            return
        try:
            message = parse_message(inbound.data)
        except SipParseError as error:
            await self._refuse_unparsable(inbound, error)
            return
        try:
            conn = inbound.connection
            if isinstance(message, Request):
                self._metrics.messages_received.labels(
                    inbound.peer.transport.value, message.method, "request"
                ).inc()
                if conn is not None and conn.transport in _WEBSOCKETS:
                    self._learn_aliases(message, conn)
                await self._requests.on_request(message, inbound)
            else:
                self._metrics.messages_received.labels(
                    inbound.peer.transport.value,
                    message.cseq.method,
                    status_class(message.status_code),
                ).inc()
                if conn is not None and conn.transport in _WEBSOCKETS:
                    self._learn_aliases(message, conn)
                await self._responses.on_response(message, inbound)
        except SipParseError as error:
            await self._refuse_unparsable(inbound, error, message)
        except Exception:
            # A defect, not bad input: one message is lost, never the server.
            logger.exception("%s: handling a message from %s failed", message.call_id, inbound.peer)
            self._metrics.dropped_messages.labels(reason="internal_error").inc()

    def _learn_aliases(self, message: Request | Response, conn: Connection) -> None:
        """RFC 7118 §5.2: remember a WebSocket client's ``.invalid`` Contact host."""
        for contact in message.contacts:
            host = getattr(contact.uri, "host", "")
            if is_websocket_alias(host):
                self._aliases.bind_alias(host, conn)

    async def _refuse_unparsable(
        self,
        inbound: InboundMessage,
        error: SipParseError,
        message: Request | Response | None = None,
    ) -> None:
        """RFC 3261 §16.3: a request too broken to process gets a stateless 4xx/5xx."""
        partial = message if message is not None else error.message
        if isinstance(partial, Request) and partial.method != "ACK":
            try:
                response = make_response(partial, error.status_code, error.reason)
                data = response.to_bytes()
            except (SipParseError, SipSerializeError, ValueError):
                pass
            else:
                self._drops.info(
                    "refused %s from %s: %s %s",
                    partial.method,
                    inbound.peer,
                    error.status_code,
                    error.reason,
                )
                self._metrics.dropped_messages.labels(reason="malformed").inc()
                await self._responder.send_quietly(
                    data, Destination(inbound.peer, inbound.connection)
                )
                return
        self._drops.info("dropped an unparsable message from %s: %s", inbound.peer, error.reason)
        self._metrics.dropped_messages.labels(reason="unparsable").inc()

    async def refuse_overloaded(self, inbound: InboundMessage) -> None:
        """A new request the transport layer shed from a stream: stateless 503 with Retry-After.

        Over a stream nobody retransmits, so silence would leave the client
        waiting for its Timer B/F; the parse is the price of a clear answer.
        """
        try:
            message = parse_message(inbound.data)
        except SipParseError:
            message = None
        self._metrics.dropped_messages.labels(reason="overload").inc()
        if not isinstance(message, Request) or message.method == "ACK":
            return
        self._drops.warning("%s: %s shed (overloaded); 503", message.call_id, message.method)
        try:
            await self._responder.answer_statelessly(
                message, Destination(inbound.peer, inbound.connection), 503, retry_after=True
            )
        except (SipParseError, SipSerializeError, ValueError) as error:
            self._drops.info("%s: no 503 for a shed request: %s", inbound.peer, error)
