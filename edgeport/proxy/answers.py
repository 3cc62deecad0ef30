"""Putting messages on the wire, and answering requests: the send side of the message path.

:class:`Responder` sends bytes to a :class:`~edgeport.proxy.model.Destination`
(over its connection while it is open, else to its peer), is the
transaction layer's send callback, and builds edgeport's own answers: through
a server transaction (with its retransmissions), or statelessly for a
request that has none. Every message sent is counted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from edgeport.metrics import status_class
from edgeport.proxy.model import RETRY_AFTER, Destination
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.message import Request, Response, make_response
from edgeport.transaction_layer import SendFailed
from edgeport.transports import SendError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from edgeport.metrics import EdgeportMetrics
    from edgeport.sip.transport import Transport
    from edgeport.transaction_layer import Outgoing, ServerTransactionHandle
    from edgeport.transports import Connection, Peer

logger = logging.getLogger(__name__)


class Wire(Protocol):
    """What the message path sends with (the transport layer)."""

    async def send(self, peer: Peer, data: bytes) -> None: ...

    async def send_on(self, conn: Connection, data: bytes) -> None: ...


class Responder:
    """Sending bytes, the transaction layer's send callback, and edgeport's own answers."""

    def __init__(
        self,
        wire: Wire,
        metrics: EdgeportMetrics,
        *,
        methods: Collection[str],
        tag_factory: Callable[[], str],
    ) -> None:
        self._wire = wire
        self._metrics = metrics
        self._allow = ", ".join(sorted(methods))
        self.new_tag = tag_factory
        self._drops = RateLimitedLog(logger)

    def set_methods(self, methods: Collection[str]) -> None:
        """A reload: the Allow header of the next 405 lists ``methods``."""
        self._allow = ", ".join(sorted(methods))

    # -- sending -------------------------------------------------------------

    async def send_outgoing(self, outgoing: Outgoing, destination: Destination) -> None:
        """The transaction layer's send callback."""
        try:
            await self.send_bytes(outgoing.data, destination)
        except SendError as error:
            raise SendFailed(str(error)) from None
        if outgoing.retransmission:
            self._metrics.retransmissions.labels(transport=destination.peer.transport.value).inc()
        self.count_sent(outgoing.message, destination.peer.transport)

    async def send_bytes(self, data: bytes, destination: Destination) -> None:
        conn = destination.connection
        if conn is not None and not conn.closed:
            await self._wire.send_on(conn, data)
        else:
            await self._wire.send(destination.peer, data)

    async def send_quietly(self, data: bytes, destination: Destination) -> bool:
        """Send; a failure is logged (rate-limited) and counted, never raised."""
        try:
            await self.send_bytes(data, destination)
        except SendError as error:
            self._drops.info("could not send to %s: %s", destination.peer, error)
            self._metrics.dropped_messages.labels(reason="send_failed").inc()
            return False
        return True

    def count_sent(self, message: object, transport: Transport) -> None:
        if isinstance(message, Request):
            self._metrics.messages_sent.labels(transport.value, message.method, "request").inc()
        elif isinstance(message, Response):
            self._metrics.messages_sent.labels(
                transport.value, message.cseq.method, status_class(message.status_code)
            ).inc()

    # -- answering -----------------------------------------------------------

    async def answer(
        self,
        handle: ServerTransactionHandle[Destination],
        status: int,
        reason: str | None = None,
        *,
        retry_after: bool = False,
        allow: bool = False,
        to_tag: str | None = None,
        unsupported: str | None = None,
    ) -> None:
        """Answer through the server transaction (a To tag added for non-100)."""
        request = handle.request
        response = make_response(
            request, status, reason, to_tag=None if status == 100 else (to_tag or self.new_tag())
        )
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        if allow:
            response.headers.add("Allow", self._allow)
        if unsupported:
            response.headers.add("Unsupported", unsupported)
        await self.respond(handle, response)

    async def respond(
        self, handle: ServerTransactionHandle[Destination], response: Response
    ) -> bool:
        """Send ``response`` through the transaction; one that cannot be serialised
        becomes a 500. False when the transaction took nothing more."""
        try:
            return await handle.respond(response)
        except SipSerializeError as error:
            logger.warning("%s: response not sendable: %s", handle.request.call_id, error)
            if response.status_code != 500:
                return await self.respond(
                    handle, make_response(handle.request, 500, "Internal Server Error")
                )
            return False

    async def answer_statelessly(
        self, request: Request, source: Destination, status: int, *, retry_after: bool = False
    ) -> None:
        """A stateless answer (RFC 3261 §16.3, §8.2): no transaction holds it."""
        if request.method == "ACK":
            return
        response = make_response(request, status, to_tag=self.new_tag())
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        await self.send_quietly(response.to_bytes(), source)
