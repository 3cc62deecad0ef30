"""New requests: stamped, matched to a server transaction, checked at the edge,
sent to the processor, then answered or forwarded as the reply says (contract
§3-4). The ACK of a 2xx goes through the processor and on statelessly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from edgeport import convert
from edgeport.edge_checks import Verdict, check_request, unsupported_proxy_options
from edgeport.events import endpoint_registered, x_headers
from edgeport.forward_state import Event, ForwardState
from edgeport.proxy.core import MAX_QUEUE_DELAY, Destination, Exchange, _release_views, _sip_aor
from edgeport.proxy.forwarding import Forward, Forwarding
from edgeport.routing import UnresolvableHost, resolve_peer
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.received import stamp_received
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS
from edgeport.sip.transport import Transport
from edgeport.transaction_layer import (
    ServerTransactionHandle,
    StrayAck,
    TransactionTableFull,
)

if TYPE_CHECKING:
    from edgeport.sip.message import Request
    from edgeport.transports import InboundMessage

logger = logging.getLogger(__name__)


class Proxy(Forwarding):
    """The transaction user: every inbound message ends here."""

    async def _on_request(self, request: Request, inbound: InboundMessage) -> None:
        assert self.transactions is not None
        conn = inbound.connection
        if conn is not None and conn.transport in (Transport.WS, Transport.WSS):
            self._learn_aliases(request, conn)
        # contract §2: on a connection, received and rport always name its source.
        stamp_received(
            request,
            inbound.peer.host,
            inbound.peer.port,
            force_rport=inbound.peer.transport.stream,
        )
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards > DEFAULT_MAX_FORWARDS:
            # A loop edgeport cannot see (through elements that hide it) costs
            # at most 70 passes, not 255.
            request.headers.set("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
        source = Destination(inbound.peer, inbound.connection)
        verdict = Verdict.PROCESS
        if request.method != "ACK":
            verdict = check_request(
                request,
                methods=self._methods,
                unknown_method_action=self.config.unknown_method_action,
                edge_hosts=self._edge_hosts,
                loop_key=self._loop_key,
            )
            if verdict is Verdict.DISCARD:
                self._drops.info(
                    "%s: discarded %s (method not accepted)", request.call_id, request.method
                )
                self.metrics.dropped_messages.labels(reason="method_not_accepted").inc()
                return
        try:
            result = await self.transactions.receive_request(
                request, source, reliable=inbound.peer.transport.reliable, size=len(inbound.data)
            )
        except TransactionTableFull:
            await self._answer_statelessly(request, source, 503, retry_after=True)
            return
        if result is None:
            return  # a retransmission or the ACK of a non-2xx: absorbed
        if isinstance(result, StrayAck):
            async with self._call_turns.turn(request.call_id):
                await self._forward_stateless_ack(request, inbound)
            return
        if request.method == "CANCEL":
            # No turn: a CANCEL must overtake the INVITE it cancels.
            await self._on_new_transaction(result, request, inbound, verdict)
            return
        async with self._call_turns.turn(request.call_id):
            await self._on_new_transaction(result, request, inbound, verdict)

    async def _on_new_transaction(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        inbound: InboundMessage,
        verdict: Verdict,
    ) -> None:
        """Handle a request that opened a server transaction; it always gets an answer."""
        try:
            await self._on_new_request(handle, request, inbound, verdict)
        except Exception:
            logger.exception("%s: handling %s failed", request.call_id, request.method)
            self.metrics.dropped_messages.labels(reason="internal_error").inc()
        finally:
            # Every server transaction gets an answer, whatever went wrong.
            forward = self._forwards.get(handle.key)
            if forward is not None and forward.machine.state is ForwardState.ROUTING:
                self._settle(forward, forward.machine.handle(Event.ANSWERED))
                forward = None
            if forward is None:
                if handle.can_respond:
                    await self._answer(handle, 500, "Internal Server Error")
                if not handle.can_respond:
                    _release_views(handle)

    async def _on_new_request(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        inbound: InboundMessage,
        verdict: Verdict,
    ) -> None:
        if not handle.can_respond:
            # Answered while it waited for its Call-ID turn or for its 100 Trying
            # to be written: a CANCEL overtook it (and answered it 487).
            logger.info(
                "%s: %s answered before routing; not routed", request.call_id, request.method
            )
            return
        if verdict is Verdict.METHOD_NOT_ALLOWED:
            await self._answer(handle, 405, allow=True)
            return
        if verdict is Verdict.TOO_MANY_HOPS:
            await self._answer(handle, 483)
            return
        if verdict is Verdict.LOOP_DETECTED:
            self._drops.warning("%s: %s has looped back; 482", request.call_id, request.method)
            self.metrics.dropped_messages.labels(reason="loop").inc()
            await self._answer(handle, 482)
            return
        if verdict is Verdict.BAD_EXTENSION:
            await self._answer(
                handle, 420, unsupported=", ".join(unsupported_proxy_options(request))
            )
            return
        if verdict is Verdict.ANSWER_OPTIONS:
            await self._answer(handle, 200, allow=True)
            return
        if not self.accepting:
            await self._answer(handle, 503, retry_after=True)
            return
        if request.method == "CANCEL":
            await self._on_cancel(handle, request, inbound)
            return
        waited = trio.current_time() - inbound.received_at
        if waited > MAX_QUEUE_DELAY:
            self._drops.warning(
                "%s: waited %.1f s before handling (overloaded); 503", request.call_id, waited
            )
            self.metrics.dropped_messages.labels(reason="overload").inc()
            await self._answer(handle, 503, retry_after=True)
            return
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            self._drops.warning("%s: %d messages in flight; 503", request.call_id, self.in_flight)
            self.metrics.dropped_messages.labels(reason="overload").inc()
            await self._answer(handle, 503, retry_after=True)
            return
        # Until the reply is acted on, a retransmission is dropped unparsed.
        routing = self._routing.begin(inbound)
        forward = None
        if request.method == "INVITE":
            # Known from now on, so a CANCEL that comes while the processor
            # is routing finds it (and the INVITE is then never sent).
            forward = Forward(self, handle)
            self._forwards[handle.key] = forward
        try:
            try:
                if forward is None:
                    exchange = await self._call_processor(request, inbound)
                else:
                    with trio.CancelScope() as forward.routing_scope:
                        exchange = await self._call_processor(request, inbound)
                    if forward.machine.state is ForwardState.ABANDONED:
                        logger.info("%s: cancelled while routing; not forwarded", request.call_id)
                        return
            except convert.ConversionError as error:
                # A typed header the conversion needs is malformed (Expires: soon).
                await self._answer(handle, error.status_code, error.reason)
                return
            if exchange is None:
                await self._answer(handle, 503, retry_after=True)
                return
            await self._act_on_request_reply(handle, request, exchange, forward)
        finally:
            self._routing.end(routing)
            self._limiter.release()

    async def _act_on_request_reply(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        exchange: Exchange,
        forward: Forward | None,
    ) -> None:
        reply = exchange.reply
        kind = reply.message.WhichOneof("message_type")
        if kind == "response_type":
            try:
                response = convert.build_answer(
                    reply, request, to_tag=self._tag(), sent=exchange.sent
                )
            except convert.ConversionError as error:
                logger.warning("%s: unusable processor reply: %s", request.call_id, error)
                await self._answer(handle, 500, "Malformed Processor Reply")
                return
            await self._respond(handle, response)
            if request.method == "REGISTER" and response.status_code == 200:
                self._publish_registered(request)
            return
        if kind == "request_uri":
            await self._forward(handle, request, exchange, forward or Forward(self, handle))
            return
        logger.warning("%s: processor reply sets neither response nor request", request.call_id)
        await self._answer(handle, 500, "Malformed Processor Reply")

    async def _forward_stateless_ack(self, request: Request, inbound: InboundMessage) -> None:
        """The ACK for a 2xx: through the processor, then statelessly to the next hop."""
        try:
            exchange = await self._call_processor(request, inbound)
        except convert.ConversionError as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            exchange = None
        if exchange is None or exchange.reply.message.WhichOneof("message_type") != "request_uri":
            self.metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        try:
            outgoing = convert.build_forward_request(
                exchange.reply,
                request,
                branch_factory=self._marked_branches(request),
                sent=exchange.sent,
                replace_branch=True,
            ).request
            self._shift_cseq(outgoing)
            hop = convert.next_hop(outgoing)
            peer = await resolve_peer(hop.host, hop.port, hop.transport)
            data = outgoing.to_bytes()
        except (convert.ConversionError, SipSerializeError, UnresolvableHost) as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            self.metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        if self._routed_to_self(request, hop.host, peer):
            return  # an ACK is never answered
        if await self._send_quietly(data, Destination(peer)):
            self._count_sent(outgoing, peer.transport)

    def _publish_registered(self, request: Request) -> None:
        if not self.events.enabled:
            return
        expires = request.expires
        if expires is None:
            contacts = request.contacts
            expires = contacts[0].expires if contacts and contacts[0].expires is not None else 0
        # contract §5: the REGISTER's own X- headers, as Routr's EventProcessor reads them.
        extra = x_headers(request.headers)
        self.events.publish(
            endpoint_registered(_sip_aor(request, "from"), expires, extra, datetime.now(UTC))
        )
