"""The forward lifecycle: a request the processor routes goes downstream through a
client transaction, and the :class:`Forward` that links it to the caller's
server transaction moves through :mod:`edgeport.forward_state` until the
caller has its final answer.

CANCEL (RFC 3261 §9, §16.10), Timer B/C/F and transport failures (§16.7 step
10, §16.8), auth on behalf (contract §4) and a 2xx that crossed a CANCEL (ACK
and BYE downstream) are handled here; responses go upstream through
:class:`~edgeport.proxy.upstream.UpstreamRelay`.

Failover between the targets of a next hop (RFC 3263 §4.3) is
:class:`~edgeport.proxy.failover.Failover`'s; the CANCEL, ACK and BYE
edgeport sends itself are :class:`~edgeport.proxy.own_requests.OwnRequests`'.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import trio

from edgeport import convert
from edgeport.dns import UnresolvableHost
from edgeport.events import call_ended, call_started, x_headers
from edgeport.forward_state import Action, Event, ForwardMachine, ForwardState
from edgeport.gateway_auth import GatewayAuthError, GatewayCredentials, answer_challenge
from edgeport.proxy.model import Destination, aor_of, new_branch
from edgeport.proxy.targets import peer_of
from edgeport.sip.errors import SipSerializeError
from edgeport.sip.transaction import build_cancel, matching_invite_key
from edgeport.transaction_layer import TransactionTableFull

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edgeport.dns import Target
    from edgeport.events import EventBus
    from edgeport.metrics import EdgeportMetrics
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.dialog_state import CSeqShifts, ReadyRelays
    from edgeport.proxy.failover import Attempt, Failover
    from edgeport.proxy.large_requests import LargeRequests
    from edgeport.proxy.loop_guard import LoopGuard
    from edgeport.proxy.model import Exchange
    from edgeport.proxy.own_requests import OwnRequests
    from edgeport.proxy.processor_calls import ProcessorCalls
    from edgeport.proxy.targets import NextHops
    from edgeport.proxy.tasks import GuardedTasks
    from edgeport.proxy.upstream import UpstreamRelay
    from edgeport.sip.message import Request, Response
    from edgeport.transaction_layer import (
        ClientTransactionHandle,
        ServerTransactionHandle,
        TransactionLayer,
    )
    from edgeport.transports import InboundMessage, Peer

logger = logging.getLogger(__name__)

MAX_RELAY_QUEUE: Final = 64  # responses waiting for one forwarded request
AUTH_METHODS: Final = frozenset({"INVITE", "MESSAGE", "REGISTER"})
# Actions that answer the caller: the forward stays in the table until they are done.
_OWED: Final = frozenset({Action.RELAY, Action.ANSWER_487, Action.ANSWER_408, Action.ANSWER_503})


@dataclass(eq=False)
class Forward:
    """One request edgeport may forward statefully: the client transaction's TU.

    It links the server transaction upstream to the client transaction
    downstream, moves through :class:`ForwardMachine` (from ROUTING, while the
    processor decides, to DONE), and has its :class:`Forwarder` carry out what
    happens to it, one job at a time, in order. Every job is guarded: a
    failure is logged with the Call-ID, counted, and answered 500 when the
    caller still waits.
    """

    forwarder: Forwarder
    server: ServerTransactionHandle[Destination]
    machine: ForwardMachine = field(default_factory=ForwardMachine)
    request: Request | None = None  # as sent downstream (the latest attempt)
    destination: Destination | None = None
    credentials: GatewayCredentials | None = None
    client: ClientTransactionHandle[Destination] | None = None
    auth_answered: bool = False
    upstream_to_tag: str | None = None  # the To tag of the last response relayed upstream
    # Cancelled when the caller cancels while the processor is still routing.
    routing_scope: trio.CancelScope | None = None
    # Branches for what goes downstream on the caller's behalf (the request,
    # a retry with credentials), with the loop mark of the request as received.
    new_branch: Callable[[], str] = new_branch
    # RFC 3263 §4.3: the target sent to, the ones left, and the attempts given up
    # for silence (their request and destination), which may still answer.
    target: Target | None = None
    targets: list[Target] = field(default_factory=list)
    abandoned: dict[object, Attempt] = field(default_factory=dict)
    relayed_provisional: bool = False  # the caller saw a 1xx: no failover any more
    failure: str = ""  # why the current target failed, for the log
    silence_timer: trio.CancelScope | None = None
    _queue: collections.deque[Callable[[], Awaitable[object]]] = field(
        default_factory=collections.deque
    )
    _relaying: bool = False

    @property
    def call_id(self) -> str:
        return self.server.request.call_id

    # ClientTU -------------------------------------------------------------

    def _current(self, handle: ClientTransactionHandle[Destination]) -> bool:
        # ``client`` is None while ``send_request`` runs: a transport error on
        # the first send arrives before the handle is known.
        if self.client is None:
            return handle not in self.abandoned
        return handle is self.client

    def on_response(
        self,
        handle: ClientTransactionHandle[Destination],
        response: Response,
        source: Destination | None,
    ) -> None:
        if not self._current(handle):
            if handle in self.abandoned:  # a target given up for silence woke up
                self._enqueue(
                    lambda: self.forwarder.failover.abandoned_response(self, handle, response),
                    inline=True,
                )
            return  # a late response of an attempt that auth on behalf replaced
        self.stop_silence_timer()
        peer = source.peer if source is not None else None
        # Relayed by the task that read the response, once the transaction
        # layer is done with it (UpstreamRelay.on_response runs the ready ones).
        self._enqueue(lambda: self.forwarder.relay_response(self, response, peer), inline=True)

    def on_timeout(self, handle: ClientTransactionHandle[Destination]) -> None:
        if self._current(handle):
            self._enqueue(
                lambda: self.forwarder.attempt_failed(self, Event.TIMEOUT, "transaction timeout")
            )

    def on_transport_error(self, handle: ClientTransactionHandle[Destination]) -> None:
        if self._current(handle):
            self._enqueue(
                lambda: self.forwarder.attempt_failed(
                    self, Event.TRANSPORT_ERROR, "transport error"
                )
            )

    def on_silence(self, handle: ClientTransactionHandle[Destination]) -> None:
        """No response at all from the current target within the failover timeout."""
        if self._current(handle):
            self._enqueue(lambda: self.forwarder.attempt_failed(self, None, "no response"))

    def stop_silence_timer(self) -> None:
        if self.silence_timer is not None:
            self.silence_timer.cancel()
            self.silence_timer = None

    # ordering -------------------------------------------------------------

    def _enqueue(self, job: Callable[[], Awaitable[object]], *, inline: bool = False) -> None:
        """Queue ``job``; with none running, ``inline`` leaves it to the task that read
        the response, else (a timer, a broken connection) a task of its own runs it."""
        if len(self._queue) >= MAX_RELAY_QUEUE:
            self.forwarder.queue_full(self)
            return
        self._queue.append(job)
        if not self._relaying:
            self._relaying = True
            if inline:
                self.forwarder.ready.add(self)
            else:
                self.forwarder.tasks.spawn(self.drain)

    async def drain(self) -> None:
        """Run the queued jobs, in order, until none is left."""
        try:
            while self._queue:
                job = self._queue.popleft()
                try:
                    await job()
                except Exception:
                    await self.forwarder.job_failed(self)
        finally:
            self._relaying = False


class Forwarder:
    """Forwards: sending downstream, CANCEL, failures, auth on behalf, and their table."""

    def __init__(
        self,
        transactions: TransactionLayer[Destination],
        responder: Responder,
        calls: ProcessorCalls,
        upstream: UpstreamRelay,
        events: EventBus,
        metrics: EdgeportMetrics,
        tasks: GuardedTasks,
        *,
        loops: LoopGuard,
        cseq: CSeqShifts,
        ready: ReadyRelays,
        hops: NextHops,
        large: LargeRequests,
        failover: Failover,
        own: OwnRequests,
        strip_session_progress_sdp: bool = False,
    ) -> None:
        self._transactions = transactions
        self._hops = hops
        self._responder = responder
        self._calls = calls
        self._upstream = upstream
        self._events = events
        self._metrics = metrics
        self.tasks = tasks
        self._loops = loops
        self._cseq = cseq
        self.ready = ready
        self._large = large  # RFC 3261 §18.1.1: over TCP when too large for UDP
        self._strip_183_sdp = strip_session_progress_sdp
        self.failover = failover  # RFC 3263 §4.3: the next target when one fails
        self._own = own  # CANCEL, ACK and BYE of edgeport's own
        # Forwards whose caller still waits for a final response, by server transaction.
        self._forwards: dict[object, Forward] = {}

    @property
    def pending(self) -> int:
        """Forwarded requests still waiting for their final response."""
        return len(self._forwards)

    def forwards(self) -> list[Forward]:
        return list(self._forwards.values())

    def open(self, handle: ServerTransactionHandle[Destination]) -> Forward:
        """A forward known from now on (an INVITE being routed), so a CANCEL that
        comes while the processor routes finds it (and the INVITE is never sent)."""
        forward = Forward(self, handle)
        self._forwards[handle.key] = forward
        return forward

    def waiting(self, handle: ServerTransactionHandle[Destination]) -> Forward | None:
        return self._forwards.get(handle.key)

    def answered(self, forward: Forward) -> None:
        """The request was answered without being forwarded (the forward ends)."""
        if forward.machine.state is ForwardState.ROUTING:
            self._settle(forward, forward.machine.handle(Event.ANSWERED))

    # -- sending downstream ------------------------------------------------

    async def forward(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        exchange: Exchange,
        forward: Forward | None = None,
    ) -> None:
        """Send the request as the processor's reply routes it (``forward``: the one
        :meth:`open` gave while it was routed, if any)."""
        if forward is None:
            forward = Forward(self, handle)
        reply = exchange.reply
        try:
            forward.new_branch = self._loops.marked_branches(request)
            forwarded = convert.build_forward_request(
                reply,
                request,
                branch_factory=forward.new_branch,
                sent=exchange.sent,
                replace_branch=True,
            )
            outgoing = forwarded.request
            credentials = (
                GatewayCredentials.parse(forwarded.gateway_auth)
                if forwarded.gateway_auth is not None
                else None
            )
            self._cseq.shift(outgoing)
            hop = convert.next_hop(outgoing)
        except GatewayAuthError as error:
            logger.error("%s: X-Gateway-Auth refused: %s", request.call_id, error)
            await self._responder.answer(handle, 500, "Invalid Gateway Credentials")
            return
        except convert.ConversionError as error:
            logger.warning("%s: unusable processor reply: %s", request.call_id, error)
            await self._responder.answer(handle, 500, "Malformed Processor Reply")
            return
        targets: list[Target] = []
        try:
            with trio.CancelScope() as forward.routing_scope:
                targets = await self._hops.targets(hop)
        except UnresolvableHost as error:
            logger.warning("%s: next hop %s: %s", request.call_id, hop.host, error)
            await self._responder.answer(handle, 503, "Next Hop Unresolvable", retry_after=True)
            return
        if forward.machine.state is not ForwardState.ROUTING or not targets:
            logger.info("%s: cancelled while routing; not forwarded", request.call_id)
            return
        target, *forward.targets = targets
        peer = peer_of(target)
        if self._loops.routed_to_self(request, hop.host, peer):
            await self._responder.answer(handle, 482)
            return
        forward.target = target
        outgoing = self._hops.fit(outgoing, target)
        # RFC 3261 §18.1.1: too large for a UDP target, it goes over TCP (a connect
        # the CANCEL of a routing INVITE cuts short).
        with trio.CancelScope() as forward.routing_scope:
            destination = await self._large.destination(outgoing, peer)
        if forward.machine.state is not ForwardState.ROUTING:
            logger.info("%s: cancelled while routing; not forwarded", request.call_id)
            return
        forward.request = outgoing
        forward.destination = destination
        forward.credentials = credentials
        self._forwards[handle.key] = forward
        forward.machine.handle(Event.ROUTED)
        if request.method == "INVITE" and request.to.tag is None and self._events.enabled:
            self._events.publish(
                call_started(
                    request.call_id,
                    aor_of(request, "from"),
                    aor_of(request, "to"),
                    x_headers(exchange.extensions()),
                    dict(reply.metadata),
                    datetime.now(UTC),
                )
            )
        await self._send_attempt(forward)

    async def _send_attempt(self, forward: Forward) -> None:
        """Send ``forward.request`` to ``forward.destination``: a new client transaction."""
        assert forward.request is not None
        assert forward.destination is not None
        try:
            forward.client = await self._transactions.send_request(
                forward.request,
                forward.destination,
                reliable=forward.destination.peer.transport.reliable,
                tu=forward,
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            logger.warning("%s: could not forward: %s", forward.call_id, error)
            await self.handle_event(forward, Event.SEND_FAILED)
            return
        if forward.targets:
            self.failover.start_silence_timer(forward, forward.client)
        # A CANCEL that came during the send left the machine in
        # CANCEL_WAITING: the CANCEL goes down with the first provisional.
        await self.handle_event(forward, Event.SENT)

    async def attempt_failed(self, forward: Forward, event: Event | None, why: str) -> bool:
        """The current target failed: the next target if there is one and the caller has
        seen nothing yet (True), else ``event`` (None: nothing happens)."""
        if self.failover.takes_over(forward, why):
            await self.handle_event(forward, Event.TARGET_FAILED)
            return True
        if event is not None:
            await self.handle_event(forward, event)
        return False

    # -- CANCEL ------------------------------------------------------------

    async def cancel(
        self,
        handle: ServerTransactionHandle[Destination],
        cancel: Request,
        inbound: InboundMessage,
    ) -> None:
        """RFC 3261 §16.10: answer the CANCEL, cancel downstream, 487 the INVITE upstream.

        The forward learns of the CANCEL at once, before the processor sees
        it: an INVITE still being routed is then never sent, and one being
        sent is cancelled as soon as RFC 3261 §9.1 allows.
        """
        invite = self._transactions.server_transaction(matching_invite_key(cancel))
        forward = self._forwards.get(invite.key) if invite is not None else None
        if invite is None or (forward is None and not invite.can_respond):
            await self._responder.answer(handle, 481)
            return
        actions: tuple[Action, ...] = (Action.ANSWER_487,)
        if forward is not None:
            actions = forward.machine.handle(Event.CANCEL)
            if forward.machine.state is ForwardState.ABANDONED and forward.routing_scope:
                forward.routing_scope.cancel()
            self._settle(forward, actions)
        try:
            exchange = await self._calls.call(cancel, inbound.peer)
        except convert.ConversionError as error:
            # Still a CANCEL: the caller gets its 200 and 487 all the same.
            logger.info("%s: CANCEL not shown to the processor: %s", cancel.call_id, error)
            exchange = None
        await self._responder.answer(handle, 200)
        if forward is None:
            await self._responder.answer(invite, 487)
        else:
            try:
                await self._carry_out(forward, actions)
            finally:
                self._settle(forward)
        if Action.ANSWER_487 in actions:
            extra = x_headers(exchange.extensions()) if exchange is not None else {}
            self._events.publish(call_ended(cancel.call_id, 200, extra, datetime.now(UTC)))

    # -- what happens to a forward -----------------------------------------

    def _settle(self, forward: Forward, actions: tuple[Action, ...] = ()) -> None:
        """Keep ``forward`` in the table while the caller waits for it (drain and CANCEL
        see it); an answer still to be carried out keeps it there until it is done."""
        if forward.machine.upstream_waiting or not _OWED.isdisjoint(actions):
            return
        if self._forwards.get(forward.server.key) is forward:
            del self._forwards[forward.server.key]

    async def handle_event(self, forward: Forward, event: Event) -> None:
        actions = forward.machine.handle(event)
        self._settle(forward, actions)
        try:
            await self._carry_out(forward, actions)
        finally:
            self._settle(forward)

    async def relay_response(
        self, forward: Forward, response: Response, source: Peer | None
    ) -> None:
        """A response of a forwarded request, on its way upstream (RFC 3261 §16.7)."""
        status = response.status_code
        assert forward.request is not None
        if (
            status in (401, 407)
            and forward.credentials is not None
            and not forward.auth_answered
            and forward.machine.upstream_waiting
            and forward.request.method in AUTH_METHODS
            and await self._answer_challenge(forward, response)
        ):
            return
        # RFC 3263 §4.3: "If a 503 error response is received, the client
        # SHOULD try the next element".
        if status == 503 and await self.attempt_failed(forward, None, "503 Service Unavailable"):
            return
        if 100 < status < 200:
            forward.relayed_provisional = True
        actions = forward.machine.response(status)
        self._settle(forward, actions)
        try:
            await self._carry_out(forward, actions, response, source)
        finally:
            self._settle(forward)

    async def _carry_out(
        self,
        forward: Forward,
        actions: tuple[Action, ...],
        response: Response | None = None,
        source: Peer | None = None,
    ) -> None:
        """Do what the forward's state machine asked for, in order."""
        for action in actions:
            if action is Action.RELAY:
                assert response is not None
                if response.status_code == 183 and self._strip_183_sdp:
                    response.body = b""
                    response.headers.remove("Content-Type")
                try:
                    await self._upstream.relay(forward, response, source)
                finally:
                    if response.status_code >= 200:
                        self._finish(forward)
            elif action is Action.ANSWER_487:
                # RFC 3261 §9.2: the 487 keeps the To tag the caller already saw, if any.
                await self._responder.answer(forward.server, 487, to_tag=forward.upstream_to_tag)
                self._finish(forward)
            elif action is Action.ANSWER_408 or action is Action.ANSWER_503:
                await self._fail(forward, 408 if action is Action.ANSWER_408 else 503)
            elif action is Action.NEXT_TARGET:
                if await self.failover.next_target(forward):
                    await self._send_attempt(forward)
                else:
                    await self.handle_event(forward, Event.SEND_FAILED)
            elif action is Action.SEND_CANCEL:
                assert forward.request is not None
                assert forward.destination is not None
                await self._own.send(build_cancel(forward.request), forward.destination)
            elif action is Action.END_DIALOG:
                assert response is not None
                assert forward.request is not None
                assert forward.destination is not None
                await self._own.end_dialog(forward.request, forward.destination, response)

    def _finish(self, forward: Forward) -> None:
        """The caller has its final answer: the views of what was sent can go."""
        forward.server.release_views()
        if forward.request is not None:
            forward.request.drop_views()

    async def _fail(self, forward: Forward, status: int) -> None:
        """Timer B/C/F or a transport error: RFC 3261 §16.7 step 10 and §16.9."""
        request = forward.server.request
        why = "no final response" if status == 408 else "next hop unreachable"
        logger.info("%s: %s %s: %s", request.call_id, request.method, status, why)
        await self._responder.answer(forward.server, status, retry_after=status == 503)
        self._finish(forward)
        if request.method == "INVITE" and request.to.tag is None:
            self._events.publish(call_ended(request.call_id, status, {}, datetime.now(UTC)))

    def queue_full(self, forward: Forward) -> None:
        self._metrics.dropped_messages.labels(reason="relay_queue_full").inc()
        logger.warning("%s: too many responses waiting; one dropped", forward.call_id)

    async def job_failed(self, forward: Forward) -> None:
        """A job of ``forward`` raised: log it with the Call-ID, count it, answer if owed."""
        logger.exception(
            "%s: relaying for %s failed", forward.call_id, forward.server.request.method
        )
        self._metrics.dropped_messages.labels(reason="internal_error").inc()
        waiting = forward.machine.upstream_waiting
        forward.machine.state = ForwardState.DONE
        self._settle(forward)
        if waiting and forward.server.can_respond:
            try:
                await self._responder.answer(forward.server, 500, "Internal Server Error")
            except Exception:
                logger.exception("%s: answering 500 failed", forward.call_id)

    async def _answer_challenge(self, forward: Forward, challenge: Response) -> bool:
        """Auth on behalf: answer a 401/407 with the X-Gateway-Auth credentials, CSeq + 1."""
        assert forward.credentials is not None
        assert forward.request is not None
        assert forward.destination is not None
        forward.auth_answered = True
        try:
            retry = answer_challenge(
                forward.request, challenge, forward.credentials, branch=forward.new_branch()
            )
        except GatewayAuthError as error:
            logger.warning("%s: challenge not answered: %s", challenge.call_id, error)
            return False
        self._cseq.moved_once(retry)
        forward.request = retry
        forward.client = None
        forward.machine.handle(Event.RETRY)
        try:
            forward.client = await self._transactions.send_request(
                retry,
                forward.destination,
                reliable=forward.destination.peer.transport.reliable,
                tu=forward,
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            logger.warning("%s: authenticated retry not sent: %s", retry.call_id, error)
            await self.handle_event(forward, Event.SEND_FAILED)
            return True
        await self.handle_event(forward, Event.SENT)
        return True
