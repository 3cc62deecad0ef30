"""Responses on their way upstream (RFC 3261 §16.7): through the processor, then
back through the server transaction they belong to, or, for a later 2xx of an
answered INVITE (a retransmission, another fork), statelessly to where the
first one went (:mod:`edgeport.proxy.answered`). Any other stray response is
dropped and counted toward its source's flood limit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from edgeport import convert
from edgeport.events import call_ended, x_headers
from edgeport.proxy.core import _CURRENT_INBOUND, Destination, Exchange, ProxyCore, _extensions
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.loops import is_marked_branch
from edgeport.sip.transport import Transport

if TYPE_CHECKING:
    from edgeport.proxy.forwarding import Forward
    from edgeport.sip.message import Response
    from edgeport.transports import InboundMessage

logger = logging.getLogger(__name__)


class UpstreamRelay(ProxyCore):
    """The response side of the proxy."""

    async def _on_response(self, response: Response, inbound: InboundMessage) -> None:
        assert self.transactions is not None
        conn = inbound.connection
        if conn is not None and conn.transport in (Transport.WS, Transport.WSS):
            self._learn_aliases(response, conn)
        source = Destination(inbound.peer, inbound.connection)
        token = _CURRENT_INBOUND.set(inbound)
        try:
            taken = await self.transactions.receive_response(response, source)
        finally:
            _CURRENT_INBOUND.reset(token)
        if taken:
            return
        await self._relay_stray_response(response, inbound)

    async def _relay_stray_response(self, response: Response, inbound: InboundMessage) -> None:
        """RFC 3261 §16.7/§16.11: a response without a transaction.

        RFC 3261 §18.1.2: "If the value of the "sent-by" parameter in that
        header field value does not correspond to a value that the client
        transport would have inserted into the request, the response MUST be
        silently discarded." edgeport writes its own branch in every Via
        it forwards with: a stray response is relayed only when its top Via
        carries one edgeport recorded for an answered INVITE (a retransmitted
        or forked 2xx), and only to where that INVITE's first 2xx went. Any
        other is dropped, counted, and counted toward its source's flood limit.
        """
        branch = response.top_via.branch or ""
        if not is_marked_branch(branch):
            self._drop_stray(response, inbound, "its top Via is not edgeport's")
            return
        if self._reacknowledge(response):
            return
        destination = None
        if 200 <= response.status_code < 300 and response.cseq.method == "INVITE":
            destination = self._answered.destination(branch, trio.current_time())
        if destination is None:
            self._drop_stray(response, inbound, "no transaction and no answered INVITE")
            return
        try:
            exchange = await self._call_processor(response, inbound)
        except convert.ConversionError as error:
            self._drops.info("%s: stray response dropped: %s", response.call_id, error)
            self.metrics.dropped_messages.labels(reason="stray_response").inc()
            return
        if exchange is None:
            return
        try:
            out = convert.build_forward_response(exchange.reply, response, sent=exchange.sent)
            data = out.to_bytes()
        except (convert.ConversionError, SipSerializeError) as error:
            self._drops.info("%s: stray response dropped: %s", response.call_id, error)
            self.metrics.dropped_messages.labels(reason="stray_response").inc()
            return
        await self._send_upstream_statelessly(out, data, destination)

    def _drop_stray(self, response: Response, inbound: InboundMessage, why: str) -> None:
        self._drops.info(
            "%s: dropped a stray %d from %s: %s",
            response.call_id,
            response.status_code,
            inbound.peer,
            why,
        )
        self.metrics.dropped_messages.labels(reason="stray_response").inc()
        if self._guard is not None:
            self._guard.stray_response(inbound.peer)

    async def _send_upstream_statelessly(
        self, out: Response, data: bytes, destination: Destination
    ) -> None:
        if await self._send_quietly(data, destination):
            self._count_sent(out, destination.peer.transport)

    async def _relay_upstream(
        self, forward: Forward, response: Response, inbound: InboundMessage | None
    ) -> None:
        status = response.status_code
        method = forward.server.request.method
        exchange = None
        if convert.should_send_response(status):
            try:
                exchange = await self._call_processor(response, inbound)
            except convert.ConversionError as error:
                # Still relayed: a malformed header the processor cannot see
                # is no reason to lose the caller's answer.
                logger.info("%s: response not shown to the processor: %s", response.call_id, error)
        out = self._upstream_response(forward, response, exchange)
        to_tag = out.to.tag
        if to_tag is not None and status > 100:
            forward.upstream_to_tag = to_tag
        reply = exchange.reply if exchange is not None else None
        sent = await self._respond(forward.server, out)
        if 200 <= status < 300 and method == "INVITE":
            if sent:
                # Retransmissions of this 2xx, and 2xx of other forks, come as
                # stray responses on this branch: they go where this one went.
                self._answered.record(
                    response.top_via.branch or "", forward.server.destination, trio.current_time()
                )
            else:
                # The server transaction ended with the first 2xx: later ones go statelessly.
                await self._send_upstream_statelessly(
                    out, out.to_bytes(), forward.server.destination
                )
        if (method == "INVITE" and forward.server.request.to.tag is None and status >= 300) or (
            method == "BYE" and status >= 200
        ):
            self.events.publish(
                call_ended(
                    response.call_id,
                    status,
                    x_headers(_extensions(reply)) if reply else {},
                    datetime.now(UTC),
                )
            )

    def _upstream_response(
        self,
        forward: Forward,
        response: Response,
        exchange: Exchange | None,
    ) -> Response:
        cseq = forward.server.request.headers.get("CSeq")
        if exchange is not None:
            try:
                return convert.build_forward_response(
                    exchange.reply, response, cseq=cseq, sent=exchange.sent
                )
            except convert.ConversionError as error:
                logger.warning("%s: unusable processor reply: %s", response.call_id, error)
        # Without a usable reply, the response still goes upstream: the Vias
        # it needs are exactly those of the request the server transaction got.
        out = response.copy()
        out.headers.remove("Via")
        for value in forward.server.request.headers.get_all("Via"):
            out.headers.add("Via", value)
        if cseq is not None:
            out.headers.set("CSeq", cseq)
        return out

    def _reacknowledge(self, response: Response) -> bool:
        """A retransmitted 2xx of a dialog edgeport ended: send the ACK again, relay nothing."""
        if not self._ended_dialogs or not 200 <= response.status_code < 300:
            return False
        if response.cseq.method != "INVITE":
            return False
        ended = self._ended_dialogs.get((response.call_id, response.cseq.seq))
        if ended is None:
            return False
        data, destination = ended
        self._spawn(lambda: self._send_quietly(data, destination))
        return True
