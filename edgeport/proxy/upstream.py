"""Responses on their way upstream (RFC 3261 §16.7).

A response finds its client transaction (the transaction layer hands it to
the forward that sent the request, :mod:`edgeport.proxy.forwarding`), goes
through the processor, and back through the server transaction it belongs
to: :meth:`UpstreamRelay.relay`. A response without a transaction is a
stray: a later 2xx of an answered INVITE (a retransmission, another fork)
goes statelessly to where the first one went (:mod:`.answered`); a 2xx of a
dialog edgeport ended after a CANCEL is acknowledged again; any other is
dropped and counted toward its source's flood limit.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import trio

from edgeport import convert
from edgeport.events import call_ended, x_headers
from edgeport.proxy.answered import AnsweredInvites
from edgeport.proxy.model import Destination
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.loops import is_marked_branch

if TYPE_CHECKING:
    from edgeport.events import EventBus
    from edgeport.metrics import EdgeportMetrics
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.dialog_state import EndedDialogs, ReadyRelays
    from edgeport.proxy.forwarding import Forward
    from edgeport.proxy.model import Exchange
    from edgeport.proxy.processor_calls import ProcessorCalls
    from edgeport.proxy.tasks import GuardedTasks
    from edgeport.sip.message import Response
    from edgeport.transaction_layer import TransactionLayer
    from edgeport.transports import InboundMessage, Peer

logger = logging.getLogger(__name__)


class StrayCounter(Protocol):
    """Counts a stray response toward its source's flood limit (the edge guard)."""

    def stray_response(self, peer: Peer) -> None: ...


class UpstreamRelay:
    """The response side of the message path."""

    def __init__(
        self,
        transactions: TransactionLayer[Destination],
        responder: Responder,
        calls: ProcessorCalls,
        events: EventBus,
        metrics: EdgeportMetrics,
        tasks: GuardedTasks,
        *,
        ended: EndedDialogs,
        ready: ReadyRelays,
        strays: StrayCounter | None,
    ) -> None:
        self._transactions = transactions
        self._responder = responder
        self._calls = calls
        self._events = events
        self._metrics = metrics
        self._tasks = tasks
        self._ended = ended
        self._ready = ready
        self._strays = strays
        # Where the later 2xx of an answered INVITE go: RFC 6026 Timer M (64*T1),
        # as long as an INVITE client transaction takes 2xx.
        self.answered: AnsweredInvites[Destination] = AnsweredInvites(
            transactions.timers.transaction_timeout
        )
        self._drops = RateLimitedLog(logger)

    async def on_response(self, response: Response, inbound: InboundMessage) -> None:
        """A response as received: to its client transaction, else a stray."""
        source = Destination(inbound.peer, inbound.connection)
        if await self._transactions.receive_response(response, source):
            await self._ready.run()  # relayed here, by the task that read it
        else:
            await self._relay_stray(response, inbound)

    # -- stray responses -----------------------------------------------------

    async def _relay_stray(self, response: Response, inbound: InboundMessage) -> None:
        """RFC 3261 §16.7/§16.11: a response without a transaction.

        RFC 3261 §18.1.2: "If the value of the "sent-by" parameter in that
        header field value does not correspond to a value that the client
        transport would have inserted into the request, the response MUST be
        silently discarded." edgeport writes its own branch in every Via it
        forwards with: a stray response is relayed only when its top Via
        carries one edgeport recorded for an answered INVITE (a retransmitted
        or forked 2xx), and only to where that INVITE's first 2xx went. Any
        other is dropped, counted, and counted toward its source's flood limit.
        """
        branch = response.top_via.branch or ""
        if not is_marked_branch(branch):
            self._drop_stray(response, inbound, "its top Via is not edgeport's")
            return
        ended = self._ended.ack_for(response)
        if ended is not None:
            # The callee missed the ACK of a 2xx edgeport ended: the same ACK again.
            ack, callee = ended
            self._tasks.spawn(lambda: self._responder.send_quietly(ack, callee))
            return
        destination: Destination | None = None
        if 200 <= response.status_code < 300 and response.cseq.method == "INVITE":
            destination = self.answered.destination(branch, trio.current_time())
        if destination is None:
            self._drop_stray(response, inbound, "no transaction and no answered INVITE")
            return
        try:
            exchange = await self._calls.call(response, inbound.peer)
        except convert.ConversionError as error:
            self._drop_unusable(response, error)
            return
        if exchange is None:
            return
        try:
            out = convert.build_forward_response(exchange.reply, response, sent=exchange.sent)
            data = out.to_bytes()
        except (convert.ConversionError, SipSerializeError) as error:
            self._drop_unusable(response, error)
            return
        await self._send_statelessly(out, data, destination)

    def _drop_stray(self, response: Response, inbound: InboundMessage, why: str) -> None:
        self._drops.info(
            "%s: dropped a stray %d from %s: %s",
            response.call_id,
            response.status_code,
            inbound.peer,
            why,
        )
        self._metrics.dropped_messages.labels(reason="stray_response").inc()
        if self._strays is not None:
            self._strays.stray_response(inbound.peer)

    def _drop_unusable(self, response: Response, error: Exception) -> None:
        self._drops.info("%s: stray response dropped: %s", response.call_id, error)
        self._metrics.dropped_messages.labels(reason="stray_response").inc()

    async def _send_statelessly(self, out: Response, data: bytes, destination: Destination) -> None:
        if await self._responder.send_quietly(data, destination):
            self._responder.count_sent(out, destination.peer.transport)

    # -- responses of a forward ----------------------------------------------

    async def relay(self, forward: Forward, response: Response, source: Peer | None) -> None:
        """A response of ``forward``'s request, through the processor, to its caller."""
        status = response.status_code
        method = forward.server.request.method
        exchange = None
        if convert.should_send_response(status):
            try:
                exchange = await self._calls.call(response, source)
            except convert.ConversionError as error:
                # Still relayed: a malformed header the processor cannot see
                # is no reason to lose the caller's answer.
                logger.info("%s: response not shown to the processor: %s", response.call_id, error)
        out = self._upstream_response(forward, response, exchange)
        to_tag = out.to.tag
        if to_tag is not None and status > 100:
            forward.upstream_to_tag = to_tag
        sent = await self._responder.respond(forward.server, out)
        if 200 <= status < 300 and method == "INVITE":
            if sent:
                # Retransmissions of this 2xx, and 2xx of other forks, come as
                # stray responses on this branch: they go where this one went.
                self.answered.record(
                    response.top_via.branch or "", forward.server.destination, trio.current_time()
                )
            else:
                # The server transaction ended with the first 2xx: later ones go statelessly.
                await self._send_statelessly(out, out.to_bytes(), forward.server.destination)
        if (method == "INVITE" and forward.server.request.to.tag is None and status >= 300) or (
            method == "BYE" and status >= 200
        ):
            extra = x_headers(exchange.extensions()) if exchange is not None else {}
            self._events.publish(call_ended(response.call_id, status, extra, datetime.now(UTC)))

    def _upstream_response(
        self, forward: Forward, response: Response, exchange: Exchange | None
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
