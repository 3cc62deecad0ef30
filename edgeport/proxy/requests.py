"""New requests: stamped, matched to a server transaction, checked at the edge, sent to
the processor, then answered or forwarded as the reply says (contract §3-4).

Every request that opens a server transaction gets an answer, whatever goes
wrong. Requests of one Call-ID (CANCEL excepted) take turns in arrival order
(:mod:`.ordering`); a CANCEL overtakes its INVITE. The ACK of a 2xx goes
through the processor and on statelessly.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from edgeport import convert
from edgeport.dns import UnresolvableHost
from edgeport.edge_checks import Verdict, check_request, unsupported_proxy_options
from edgeport.events import endpoint_registered, x_headers
from edgeport.forward_state import ForwardState
from edgeport.proxy.model import MAX_QUEUE_DELAY, Destination, aor_of
from edgeport.proxy.ordering import CallTurns
from edgeport.proxy.targets import peer_of
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.received import stamp_received
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS
from edgeport.transaction_layer import StrayAck, TransactionTableFull

if TYPE_CHECKING:
    from collections.abc import Collection

    from edgeport.admission import Routing
    from edgeport.config import UnknownMethodAction
    from edgeport.events import EventBus
    from edgeport.metrics import EdgeportMetrics
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.dialog_state import CSeqShifts
    from edgeport.proxy.forwarding import Forward, Forwarder
    from edgeport.proxy.large_requests import LargeRequests
    from edgeport.proxy.loop_guard import LoopGuard
    from edgeport.proxy.model import Exchange
    from edgeport.proxy.processor_calls import ProcessorCalls
    from edgeport.proxy.targets import NextHops
    from edgeport.sip.message import Request
    from edgeport.transaction_layer import ServerTransactionHandle, TransactionLayer
    from edgeport.transports import InboundMessage

logger = logging.getLogger(__name__)


class RequestHandler:
    """The request side of the message path."""

    def __init__(
        self,
        transactions: TransactionLayer[Destination],
        responder: Responder,
        calls: ProcessorCalls,
        forwarder: Forwarder,
        events: EventBus,
        metrics: EdgeportMetrics,
        *,
        routing: Routing,
        loops: LoopGuard,
        cseq: CSeqShifts,
        methods: Collection[str],
        unknown_method_action: UnknownMethodAction,
        edge_hosts: Collection[str],
        max_in_flight: int,
        hops: NextHops,
        large: LargeRequests,
    ) -> None:
        self._transactions = transactions
        self._hops = hops
        self._responder = responder
        self._calls = calls
        self._forwarder = forwarder
        self._events = events
        self._metrics = metrics
        self._routing = routing
        self._loops = loops
        self._cseq = cseq
        self._methods = frozenset(methods)
        self._unknown_method_action = unknown_method_action
        self._edge_hosts = edge_hosts
        self._large = large  # RFC 3261 §18.1.1: over TCP when too large for UDP
        self._limiter = trio.CapacityLimiter(max_in_flight)
        # Requests of one call reach the next hop in the order they came.
        self._call_turns = CallTurns()
        self._drops = RateLimitedLog(logger)
        self.accepting = True

    def reconfigure(
        self,
        *,
        methods: Collection[str],
        unknown_method_action: UnknownMethodAction,
        edge_hosts: Collection[str],
    ) -> None:
        """A reload: the next request is checked against these."""
        self._methods = frozenset(methods)
        self._unknown_method_action = unknown_method_action
        self._edge_hosts = edge_hosts

    @property
    def in_flight(self) -> int:
        """New requests being routed (processor call and what follows)."""
        return int(self._limiter.borrowed_tokens)

    async def on_request(self, request: Request, inbound: InboundMessage) -> None:
        """A request as received (parsed)."""
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
                unknown_method_action=self._unknown_method_action,
                edge_hosts=self._edge_hosts,
                has_looped=self._loops.has_looped,
            )
            if verdict is Verdict.DISCARD:
                self._drops.info(
                    "%s: discarded %s (method not accepted)", request.call_id, request.method
                )
                self._metrics.dropped_messages.labels(reason="method_not_accepted").inc()
                return
        try:
            result = await self._transactions.receive_request(
                request, source, reliable=inbound.peer.transport.reliable, size=len(inbound.data)
            )
        except TransactionTableFull:
            await self._responder.answer_statelessly(request, source, 503, retry_after=True)
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
            self._metrics.dropped_messages.labels(reason="internal_error").inc()
        finally:
            # Every server transaction gets an answer, whatever went wrong.
            forward = self._forwarder.waiting(handle)
            if forward is not None and forward.machine.state is ForwardState.ROUTING:
                self._forwarder.answered(forward)
                forward = None
            if forward is None:
                if handle.can_respond:
                    await self._responder.answer(handle, 500, "Internal Server Error")
                if not handle.can_respond:
                    handle.release_views()

    async def _on_new_request(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        inbound: InboundMessage,
        verdict: Verdict,
    ) -> None:
        answer = self._responder.answer
        if not handle.can_respond:
            # Answered while it waited for its Call-ID turn or for its 100 Trying
            # to be written: a CANCEL overtook it (and answered it 487).
            logger.info(
                "%s: %s answered before routing; not routed", request.call_id, request.method
            )
            return
        if verdict is Verdict.METHOD_NOT_ALLOWED:
            await answer(handle, 405, allow=True)
            return
        if verdict is Verdict.TOO_MANY_HOPS:
            await answer(handle, 483)
            return
        if verdict is Verdict.LOOP_DETECTED:
            self._loops.count_loop(request)
            await answer(handle, 482)
            return
        if verdict is Verdict.BAD_EXTENSION:
            await answer(handle, 420, unsupported=", ".join(unsupported_proxy_options(request)))
            return
        if verdict is Verdict.ANSWER_OPTIONS:
            await answer(handle, 200, allow=True)
            return
        if not self.accepting:
            await answer(handle, 503, retry_after=True)
            return
        if request.method == "CANCEL":
            await self._forwarder.cancel(handle, request, inbound)
            return
        waited = trio.current_time() - inbound.received_at
        if waited > MAX_QUEUE_DELAY:
            self._drops.warning(
                "%s: waited %.1f s before handling (overloaded); 503", request.call_id, waited
            )
            self._metrics.dropped_messages.labels(reason="overload").inc()
            await answer(handle, 503, retry_after=True)
            return
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            self._drops.warning("%s: %d messages in flight; 503", request.call_id, self.in_flight)
            self._metrics.dropped_messages.labels(reason="overload").inc()
            await answer(handle, 503, retry_after=True)
            return
        # Until the reply is acted on, a retransmission is dropped unparsed.
        routing = self._routing.begin(inbound)
        try:
            await self._route(handle, request, inbound)
        finally:
            self._routing.end(routing)
            self._limiter.release()

    async def _route(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        inbound: InboundMessage,
    ) -> None:
        """The processor call, then what its reply says."""
        forward = None
        if request.method == "INVITE":
            # Known from now on, so a CANCEL that comes while the processor
            # is routing finds it (and the INVITE is then never sent).
            forward = self._forwarder.open(handle)
        try:
            if forward is None:
                exchange = await self._calls.call(request, inbound.peer)
            else:
                with trio.CancelScope() as forward.routing_scope:
                    exchange = await self._calls.call(request, inbound.peer)
                if forward.machine.state is ForwardState.ABANDONED:
                    logger.info("%s: cancelled while routing; not forwarded", request.call_id)
                    return
        except convert.ConversionError as error:
            # A typed header the conversion needs is malformed (Expires: soon).
            await self._responder.answer(handle, error.status_code, error.reason)
            return
        if exchange is None:
            await self._responder.answer(handle, 503, retry_after=True)
            return
        await self._act_on_reply(handle, request, exchange, forward)

    async def _act_on_reply(
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
                    reply, request, to_tag=self._responder.new_tag(), sent=exchange.sent
                )
            except convert.ConversionError as error:
                logger.warning("%s: unusable processor reply: %s", request.call_id, error)
                await self._responder.answer(handle, 500, "Malformed Processor Reply")
                return
            await self._responder.respond(handle, response)
            if request.method == "REGISTER" and response.status_code == 200:
                self._publish_registered(request)
            return
        if kind == "request_uri":
            await self._forwarder.forward(handle, request, exchange, forward)
            return
        logger.warning("%s: processor reply sets neither response nor request", request.call_id)
        await self._responder.answer(handle, 500, "Malformed Processor Reply")

    async def _forward_stateless_ack(self, request: Request, inbound: InboundMessage) -> None:
        """The ACK for a 2xx: through the processor, then statelessly to the next hop."""
        try:
            exchange = await self._calls.call(request, inbound.peer)
        except convert.ConversionError as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            exchange = None
        if exchange is None or exchange.reply.message.WhichOneof("message_type") != "request_uri":
            self._metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        try:
            outgoing = convert.build_forward_request(
                exchange.reply,
                request,
                branch_factory=self._loops.marked_branches(request),
                sent=exchange.sent,
                replace_branch=True,
            ).request
            self._cseq.shift(outgoing)
            hop = convert.next_hop(outgoing)
            # Stateless: the first target only (an ACK has no transaction to fail over).
            target = (await self._hops.targets(hop))[0]
            outgoing = self._hops.fit(outgoing, target)
            peer = peer_of(target)
        except (convert.ConversionError, UnresolvableHost) as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            self._metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        if self._loops.routed_to_self(request, hop.host, peer):
            return  # an ACK is never answered
        destination = await self._large.destination(outgoing, peer)
        try:
            data = outgoing.to_bytes()
        except SipSerializeError as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            self._metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        if await self._responder.send_quietly(data, destination):
            self._responder.count_sent(outgoing, destination.peer.transport)

    def _publish_registered(self, request: Request) -> None:
        if not self._events.enabled:
            return
        expires = request.expires
        if expires is None:
            contacts = request.contacts
            expires = contacts[0].expires if contacts and contacts[0].expires is not None else 0
        # contract §5: the REGISTER's own X- headers, as Routr's EventProcessor reads them.
        extra = x_headers(request.headers)
        self._events.publish(
            endpoint_registered(aor_of(request, "from"), expires, extra, datetime.now(UTC))
        )
