"""Responses on their way upstream (RFC 3261 §16.7): through the processor, then
back through the server transaction they belong to, or statelessly to the top
Via (received/rport, RFC 3581) when they have none (a 2xx retransmission)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edgeport import convert
from edgeport.events import call_ended, x_headers
from edgeport.proxy.core import _CURRENT_INBOUND, Destination, Exchange, ProxyCore, _extensions
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.transport import Transport
from edgeport.transports import InboundMessage, Peer

if TYPE_CHECKING:
    from edgeport.proxy.forwarding import Forward
    from edgeport.sip.message import Response

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
        """RFC 3261 §16.7/§16.11: a response without a transaction (a 2xx retransmission)."""
        if not convert.should_send_response(response.status_code):
            return
        if self._reacknowledge(response):
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
        await self._send_upstream_statelessly(out, data)

    async def _send_upstream_statelessly(self, out: Response, data: bytes) -> None:
        destination = self._upstream_of(out)
        if destination is None:
            self._drops.info(
                "%s: response dropped: top Via transport %r unknown",
                out.call_id,
                out.top_via.transport,
            )
            self.metrics.dropped_messages.labels(reason="stray_response").inc()
            return
        if await self._send_quietly(data, destination):
            self._count_sent(out, destination.peer.transport)

    def _upstream_of(self, response: Response) -> Destination | None:
        """RFC 3261 §18.2.2 and RFC 3581 §4: received/rport of the top Via, else sent-by.

        None when the top Via names a transport edgeport does not speak.
        """
        via = response.top_via
        try:
            transport = Transport.from_via_token(via.transport)
        except ValueError:
            return None
        host = via.received or via.host
        port = via.rport or via.port or transport.default_port
        peer = Peer(transport, host.strip("[]"), port)
        conn = None
        if transport.stream and self._transports is not None:
            conn = self._transports.connections.get(transport, peer.host, peer.port)
        return Destination(peer, conn)

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
        if not sent and 200 <= status < 300 and method == "INVITE":
            # The server transaction ended with the first 2xx: later ones go statelessly.
            await self._send_upstream_statelessly(out, out.to_bytes())
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
