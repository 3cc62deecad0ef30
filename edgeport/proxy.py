"""The message path: what edgeport does with each SIP message (contract §3-4).

A request is parsed, stamped with where it came from (RFC 3261 §18.2.1,
RFC 3581), matched to a server transaction, checked at the edge, sent to the
processor, and then answered or forwarded as the reply says. A response
finds its client transaction, goes to the processor and back upstream
through the server transaction it belongs to. Everything that can go wrong
ends in a SIP answer or one log line and a counter, never a silent drop:
a failed or late processor call is 503 with Retry-After, a reply that cannot
become a message is 500, a forwarded request without a final response is
408 (RFC 3261 §16.7 step 10), a broken connection fails its transactions.

Concurrency: the transport layer runs each inbound message in a task of its
own (bounded, after a bounded inbox that sheds new requests first). A
``trio.CapacityLimiter`` bounds the new requests in flight; past it a request
gets 503 at once. Processor calls for responses, ACKs and CANCELs have a
separate, larger budget (``edgeport.admission``). A retransmission of a
request still being routed is dropped before parsing. Responses of one
forwarded request are relayed in order, by one worker task per forwarded
request.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import trio

from edgeport import convert
from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2
from edgeport.admission import ADMITTED_CALLS_PER_IN_FLIGHT, CallBudget, Routing
from edgeport.edge_checks import Verdict, check_request, own_hosts, unsupported_proxy_options
from edgeport.events import EventBus, call_ended, call_started, endpoint_registered
from edgeport.gateway_auth import GatewayAuthError, GatewayCredentials, answer_challenge
from edgeport.metrics import METRICS, EdgeportMetrics
from edgeport.processor import ProcessorError, ProcessorTimeout
from edgeport.ratelimit import RateLimitedLog
from edgeport.routing import UnresolvableHost, resolve_peer
from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.message import Request, Response, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.received import stamp_received
from edgeport.sip.transaction import build_cancel, matching_invite_key
from edgeport.sip.transport import Transport
from edgeport.transaction_layer import (
    ClientTransactionHandle,
    Outgoing,
    SendFailed,
    ServerTransactionHandle,
    StrayAck,
    TransactionLayer,
    TransactionTableFull,
)
from edgeport.transports import Connection, InboundMessage, Peer, SendError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edgeport.config import EdgePortConfig
    from edgeport.processor import ProcessorClient

logger = logging.getLogger(__name__)

RETRY_AFTER: Final = "5"  # seconds suggested to a client after a 503
MAX_RELAY_QUEUE: Final = 64  # responses waiting for one forwarded request
MAX_DIALOG_OFFSETS: Final = 10_000  # dialogs whose CSeq edgeport shifted (auth on behalf)
MAX_ALIASES_PER_CONNECTION: Final = 16  # .invalid Contact hosts remembered per WebSocket
AUTH_METHODS: Final = frozenset({"INVITE", "MESSAGE", "REGISTER"})
# A new request that waited longer than this between the socket and its
# handler means edgeport is saturated: its client has already retransmitted
# (T1 = 0.5 s), so it gets a 503 at once instead of a processor call that
# would only deepen the queue.
MAX_QUEUE_DELAY: Final = 1.0  # seconds

# The message being handled, for callbacks the transaction layer makes while
# handling it (a client transaction hands its response to ``Forward``).
_CURRENT_INBOUND: Final[contextvars.ContextVar[InboundMessage | None]] = contextvars.ContextVar(
    "edgeport_current_inbound", default=None
)

_PROTO_TRANSPORT: Final = {
    Transport.UDP: common_pb2.UDP,
    Transport.TCP: common_pb2.TCP,
    Transport.TLS: common_pb2.TLS,
    Transport.WS: common_pb2.WS,
    Transport.WSS: common_pb2.WSS,
}


@dataclass(frozen=True, slots=True)
class Exchange:
    """A processor call: the SIPMessage edgeport sent, and the processor's reply."""

    sent: sipmessage_pb2.SIPMessage
    reply: processor_pb2.MessageResponse


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the transaction layer sends: a peer, and the connection to use when it is open."""

    peer: Peer
    connection: Connection | None = None


def new_branch() -> str:
    """RFC 3261 §8.1.1.7: a branch starts with the magic cookie ``z9hG4bK``."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def _status_class(status: int | None) -> str:
    return "request" if status is None else f"{status // 100}xx"


def _release_views(handle: ServerTransactionHandle[Destination]) -> None:
    """A transaction with its final response only lingers to absorb retransmissions
    (Timer J, H): the parsed views of its messages go, to be parsed again if ever used."""
    handle.request.drop_views()
    last = handle.machine.last_response
    if last is not None:
        last.drop_views()


def _x_headers(reply: processor_pb2.MessageResponse) -> dict[str, str]:
    return {ext.name: ext.value for ext in reply.message.extensions if ext.name[:2].lower() == "x-"}


def _sip_aor(message: Request | Response, which: str) -> str:
    addr = message.from_ if which == "from" else message.to
    uri = addr.uri
    user = getattr(uri, "user", None)
    host = getattr(uri, "host", None)
    if host is None:
        return str(uri)
    return f"sip:{user}@{host}" if user else f"sip:{host}"


@dataclass(eq=False)
class Forward:
    """One request edgeport forwarded statefully: the client transaction's TU.

    It links the server transaction upstream to the client transaction
    downstream, and relays the responses, in order, through the processor.
    """

    proxy: Proxy
    server: ServerTransactionHandle[Destination]
    request: Request  # as sent downstream (the latest attempt)
    destination: Destination
    credentials: GatewayCredentials | None = None
    client: ClientTransactionHandle[Destination] | None = None
    auth_answered: bool = False
    cancelled: bool = False
    cancel_when_provisional: bool = False
    provisional_seen: bool = False
    upstream_to_tag: str | None = None  # the To tag of the last response relayed upstream
    finished: bool = False
    _queue: collections.deque[Callable[[], Awaitable[None]]] = field(
        default_factory=collections.deque
    )
    _relaying: bool = False

    # ClientTU -------------------------------------------------------------

    def _current(self, handle: ClientTransactionHandle[Destination]) -> bool:
        # ``client`` is None while ``send_request`` runs: a transport error on
        # the first send arrives before the handle is known.
        return self.client is None or handle is self.client

    def on_response(self, handle: ClientTransactionHandle[Destination], response: Response) -> None:
        if not self._current(handle):
            return  # a late response of an attempt that auth on behalf replaced
        inbound = _CURRENT_INBOUND.get()
        self._enqueue(lambda: self.proxy._relay_response(self, response, inbound))

    def on_timeout(self, handle: ClientTransactionHandle[Destination]) -> None:
        if self._current(handle):
            self._enqueue(lambda: self.proxy._fail_forward(self, 408, "no final response"))

    def on_transport_error(self, handle: ClientTransactionHandle[Destination]) -> None:
        if self._current(handle):
            self._enqueue(lambda: self.proxy._fail_forward(self, 503, "next hop unreachable"))

    # ordering -------------------------------------------------------------

    def _enqueue(self, job: Callable[[], Awaitable[None]]) -> None:
        if len(self._queue) >= MAX_RELAY_QUEUE:
            METRICS.dropped_messages.labels(reason="relay_queue_full").inc()
            logger.warning(
                "%s: too many responses waiting; one dropped", self.server.request.call_id
            )
            return
        self._queue.append(job)
        if not self._relaying:
            self._relaying = True
            self.proxy._spawn(self._drain)

    async def _drain(self) -> None:
        try:
            while self._queue:
                job = self._queue.popleft()
                await job()
        finally:
            self._relaying = False


class Proxy:
    """The transaction user: every inbound message ends here."""

    def __init__(
        self,
        config: EdgePortConfig,
        processor: ProcessorClient,
        events: EventBus,
        *,
        metrics: EdgeportMetrics = METRICS,
        branch_factory: Callable[[], str] = new_branch,
        tag_factory: Callable[[], str] = new_tag,
    ) -> None:
        self.config = config
        self.processor = processor
        self.events = events
        self.metrics = metrics
        self._branch = branch_factory
        self._tag = tag_factory
        self._limiter = trio.CapacityLimiter(config.max_in_flight)
        self._admitted_calls = CallBudget(ADMITTED_CALLS_PER_IN_FLIGHT * config.max_in_flight)
        self._routing = Routing()
        # Lines a flood could multiply: at most a burst every few seconds.
        self._drops = RateLimitedLog(logger)
        self._processor_log = RateLimitedLog(logger, burst=5)
        self._methods = frozenset(config.methods)
        self._forwards: dict[object, Forward] = {}
        self._cseq_offsets: collections.OrderedDict[tuple[str, str], int] = (
            collections.OrderedDict()
        )
        self._nursery: trio.Nursery | None = None
        self._transports: TransportLayerLike | None = None
        self.transactions: TransactionLayer[Destination] | None = None
        self._listening_points: list[processor_pb2.NetInterface] = []
        self._requests = convert.MessageRequestBuilder(
            edge_port_ref=config.ref, listening_points=(), external_addrs=(), localnets=()
        )
        self._edge_hosts: frozenset[str] = frozenset()
        self.accepting = True

    # wiring ---------------------------------------------------------------

    def attach(
        self,
        nursery: trio.Nursery,
        transports: TransportLayerLike,
        transactions: TransactionLayer[Destination],
    ) -> None:
        """Connect the proxy to the layers the server started."""
        self._nursery = nursery
        self._transports = transports
        self.transactions = transactions
        bind = {c.protocol: c.bind_addr for c in self.config.transports}
        self._listening_points = [
            processor_pb2.NetInterface(
                host=bind.get(point.transport, point.host),
                port=point.port,
                transport=_PROTO_TRANSPORT[point.transport],
            )
            for point in transports.listening_points
        ]
        self._requests = convert.MessageRequestBuilder(
            edge_port_ref=self.config.ref,
            listening_points=self._listening_points,
            external_addrs=self.config.external_addrs,
            localnets=self.config.localnets,
        )
        self._edge_hosts = own_hosts(
            [p.host for p in transports.listening_points],
            self.config.external_addrs,
            ["localhost", "127.0.0.1", "::1"],
        )

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self._nursery is not None, "Proxy.attach was not called"
        self._nursery.start_soon(fn)

    @property
    def pending_forwards(self) -> int:
        """Forwarded requests still waiting for their final response."""
        return len(self._forwards)

    @property
    def in_flight(self) -> int:
        return int(self._limiter.borrowed_tokens)

    async def send_outgoing(self, outgoing: Outgoing, destination: Destination) -> None:
        """The transaction layer's send callback."""
        try:
            await self._send_bytes(outgoing.data, destination)
        except SendError as error:
            raise SendFailed(str(error)) from None
        if outgoing.retransmission:
            self.metrics.retransmissions.labels(transport=destination.peer.transport.value).inc()
        self._count_sent(outgoing.message, destination.peer.transport)

    async def _send_bytes(self, data: bytes, destination: Destination) -> None:
        assert self._transports is not None
        conn = destination.connection
        if conn is not None and not conn.closed:
            await self._transports.send_on(conn, data)
        else:
            await self._transports.send(destination.peer, data)

    def _count_sent(self, message: Request | Response | object, transport: Transport) -> None:
        if isinstance(message, Request):
            self.metrics.messages_sent.labels(transport.value, message.method, "request").inc()
        elif isinstance(message, Response):
            self.metrics.messages_sent.labels(
                transport.value, message.cseq.method, _status_class(message.status_code)
            ).inc()

    def connection_closed(self, conn: Connection) -> None:
        """A stream connection left the table: fail the transactions that used it."""
        if self.transactions is None:
            return
        failed = self.transactions.fail_destination(Destination(conn.peer, conn))
        failed += self.transactions.fail_destination(Destination(conn.peer, None))
        if failed:
            logger.info("%s closed: %d transactions failed", conn.id, failed)

    # inbound --------------------------------------------------------------

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        """Handle one raw message from a transport (the transport layer's handler)."""
        if self._routing.is_retransmission(inbound):
            # Its server transaction would absorb it; not even parsed.
            self.metrics.dropped_messages.labels(reason="retransmission").inc()
            return
        try:
            message = parse_message(inbound.data)
        except SipParseError as error:
            await self._refuse_unparsable(inbound, error)
            return
        try:
            if isinstance(message, Request):
                self.metrics.messages_received.labels(
                    inbound.peer.transport.value, message.method, "request"
                ).inc()
                await self._on_request(message, inbound)
            else:
                self.metrics.messages_received.labels(
                    inbound.peer.transport.value,
                    message.cseq.method,
                    _status_class(message.status_code),
                ).inc()
                await self._on_response(message, inbound)
        except SipParseError as error:
            await self._refuse_unparsable(inbound, error, message)

    async def refuse_overloaded(self, inbound: InboundMessage) -> None:
        """A new request the transport layer shed from a stream: stateless 503 with Retry-After.

        Over a stream nobody retransmits, so silence would leave the client
        waiting for its Timer B/F; the parse is the price of a clear answer.
        """
        try:
            message = parse_message(inbound.data)
        except SipParseError:
            message = None
        self.metrics.dropped_messages.labels(reason="overload").inc()
        if not isinstance(message, Request) or message.method == "ACK":
            return
        self._drops.warning("%s: %s shed (overloaded); 503", message.call_id, message.method)
        try:
            await self._answer_statelessly(
                message, Destination(inbound.peer, inbound.connection), 503, retry_after=True
            )
        except (SipParseError, SipSerializeError, ValueError) as error:
            self._drops.info("%s: no 503 for a shed request: %s", inbound.peer, error)

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
                self.metrics.dropped_messages.labels(reason="malformed").inc()
                await self._send_quietly(data, Destination(inbound.peer, inbound.connection))
                return
        self._drops.info("dropped an unparsable message from %s: %s", inbound.peer, error.reason)
        self.metrics.dropped_messages.labels(reason="unparsable").inc()

    async def _send_quietly(self, data: bytes, destination: Destination) -> bool:
        try:
            await self._send_bytes(data, destination)
        except SendError as error:
            self._drops.info("could not send to %s: %s", destination.peer, error)
            self.metrics.dropped_messages.labels(reason="send_failed").inc()
            return False
        return True

    def _learn_aliases(self, message: Request | Response, conn: Connection) -> None:
        """RFC 7118 §5.2: remember a WebSocket client's ``.invalid`` Contact host."""
        for contact in message.contacts:
            host = getattr(contact.uri, "host", "")
            if host.lower().endswith(".invalid") and len(conn.aliases) < MAX_ALIASES_PER_CONNECTION:
                assert self._transports is not None
                self._transports.connections.bind_alias(host.lower(), conn)

    # requests -------------------------------------------------------------

    async def _on_request(self, request: Request, inbound: InboundMessage) -> None:
        assert self.transactions is not None
        conn = inbound.connection
        if conn is not None and conn.transport in (Transport.WS, Transport.WSS):
            self._learn_aliases(request, conn)
        stamp_received(request, inbound.peer.host, inbound.peer.port)
        source = Destination(inbound.peer, inbound.connection)
        verdict = Verdict.PROCESS
        if request.method != "ACK":
            verdict = check_request(
                request,
                methods=self._methods,
                unknown_method_action=self.config.unknown_method_action,
                edge_hosts=self._edge_hosts,
            )
            if verdict is Verdict.DISCARD:
                self._drops.info(
                    "%s: discarded %s (method not accepted)", request.call_id, request.method
                )
                self.metrics.dropped_messages.labels(reason="method_not_accepted").inc()
                return
        try:
            result = await self.transactions.receive_request(
                request, source, reliable=inbound.peer.transport.reliable
            )
        except TransactionTableFull:
            await self._answer_statelessly(request, source, 503, retry_after=True)
            return
        if result is None:
            return  # a retransmission or the ACK of a non-2xx: absorbed
        if isinstance(result, StrayAck):
            await self._forward_stateless_ack(request, inbound)
            return
        handle = result
        try:
            await self._on_new_request(handle, request, inbound, verdict)
        finally:
            # Every server transaction gets an answer, whatever went wrong.
            if handle.can_respond and handle.key not in self._forwards:
                await self._answer(handle, 500, "Internal Server Error")
            if not handle.can_respond and handle.key not in self._forwards:
                _release_views(handle)

    async def _on_new_request(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        inbound: InboundMessage,
        verdict: Verdict,
    ) -> None:
        if verdict is Verdict.METHOD_NOT_ALLOWED:
            await self._answer(handle, 405, allow=True)
            return
        if verdict is Verdict.TOO_MANY_HOPS:
            await self._answer(handle, 483)
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
        try:
            try:
                exchange = await self._call_processor(request, inbound)
            except SipParseError as error:
                # A typed header the conversion needs is malformed (Expires: soon).
                await self._answer(handle, error.status_code, error.reason)
                return
            if exchange is None:
                await self._answer(handle, 503, retry_after=True)
                return
            await self._act_on_request_reply(handle, request, exchange)
        finally:
            self._routing.end(routing)
            self._limiter.release()

    def _sender(
        self, message: Request | Response, inbound: InboundMessage
    ) -> processor_pb2.NetInterface:
        if isinstance(message, Request):
            # contract §3: the top Via's sent-by, as Routr sends it.
            via = message.top_via
            try:
                transport = Transport.from_via_token(via.transport)
            except ValueError:
                transport = inbound.peer.transport
            port = via.port if via.port is not None else transport.default_port
            return processor_pb2.NetInterface(
                host=via.host, port=port, transport=_PROTO_TRANSPORT[transport]
            )
        return processor_pb2.NetInterface(
            host=inbound.peer.host,
            port=inbound.peer.port,
            transport=_PROTO_TRANSPORT[inbound.peer.transport],
        )

    async def _call_processor(
        self, message: Request | Response, inbound: InboundMessage | None
    ) -> Exchange | None:
        """One processor call; None (logged once, counted) when it failed.

        A response, ACK or CANCEL takes a call from its own budget; when none
        is left the call is not made (counted as ``overload_processor``).
        """
        admitted = isinstance(message, Response) or message.method in ("ACK", "CANCEL")
        if admitted:
            if not self._admitted_calls.try_take():
                self._drops.warning(
                    "%s: %d processor calls for responses/ACK/CANCEL; this one skipped",
                    message.call_id,
                    self._admitted_calls.in_use,
                )
                self.metrics.dropped_messages.labels(reason="overload_processor").inc()
                return None
            try:
                return await self._process(message, inbound)
            finally:
                self._admitted_calls.give_back()
        return await self._process(message, inbound)

    async def _process(
        self, message: Request | Response, inbound: InboundMessage | None
    ) -> Exchange | None:
        if inbound is not None:
            sender = self._sender(message, inbound)
        else:
            sender = processor_pb2.NetInterface()
        request = self._requests.build(message, sender=sender)
        started = trio.current_time()
        try:
            reply = await self.processor.process(request)
        except ProcessorError as error:
            outcome = "timeout" if isinstance(error, ProcessorTimeout) else "error"
            self.metrics.processor_calls.labels(outcome=outcome).inc()
            self._processor_log.warning("%s: processor call failed: %s", message.call_id, error)
            return None
        self.metrics.processor_calls.labels(outcome="ok").inc()
        self.metrics.processor_latency.observe(trio.current_time() - started)
        return Exchange(request.message, reply)

    async def _act_on_request_reply(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        exchange: Exchange,
    ) -> None:
        reply = exchange.reply
        kind = reply.message.WhichOneof("message_type")
        if kind == "response_type":
            try:
                response = convert.build_answer(
                    reply, request, to_tag=self._tag(), sent=exchange.sent
                )
            except (convert.ReplyError, SipParseError, ValueError) as error:
                logger.warning("%s: unusable processor reply: %s", request.call_id, error)
                await self._answer(handle, 500, "Malformed Processor Reply")
                return
            await self._respond(handle, response)
            if request.method == "REGISTER" and response.status_code == 200:
                self._publish_registered(request, reply)
            return
        if kind == "request_uri":
            await self._forward(handle, request, exchange)
            return
        logger.warning("%s: processor reply sets neither response nor request", request.call_id)
        await self._answer(handle, 500, "Malformed Processor Reply")

    async def _forward(
        self,
        handle: ServerTransactionHandle[Destination],
        request: Request,
        exchange: Exchange,
    ) -> None:
        assert self.transactions is not None
        reply = exchange.reply
        try:
            forwarded = convert.build_forward_request(
                reply, request, branch_factory=self._branch, sent=exchange.sent
            )
            outgoing = forwarded.request
            credentials = (
                GatewayCredentials.parse(forwarded.gateway_auth)
                if forwarded.gateway_auth is not None
                else None
            )
            self._shift_cseq(outgoing)
            hop = convert.next_hop(outgoing)
        except GatewayAuthError as error:
            logger.error("%s: X-Gateway-Auth refused: %s", request.call_id, error)
            await self._answer(handle, 500, "Invalid Gateway Credentials")
            return
        except (convert.ReplyError, SipParseError, ValueError) as error:
            logger.warning("%s: unusable processor reply: %s", request.call_id, error)
            await self._answer(handle, 500, "Malformed Processor Reply")
            return
        try:
            peer = await resolve_peer(hop.host, hop.port, hop.transport)
        except UnresolvableHost as error:
            logger.warning("%s: next hop %s: %s", request.call_id, hop.host, error)
            await self._answer(handle, 503, "Next Hop Unresolvable", retry_after=True)
            return
        forward = Forward(self, handle, outgoing, Destination(peer), credentials)
        self._forwards[handle.key] = forward
        try:
            forward.client = await self.transactions.send_request(
                outgoing, forward.destination, reliable=peer.transport.reliable, tu=forward
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            del self._forwards[handle.key]
            logger.warning("%s: could not forward: %s", request.call_id, error)
            await self._answer(handle, 503, retry_after=True)
            return
        if request.method == "INVITE" and request.to.tag is None and self.events.enabled:
            self.events.publish(
                call_started(
                    request.call_id,
                    _sip_aor(request, "from"),
                    _sip_aor(request, "to"),
                    _x_headers(reply),
                    dict(reply.metadata),
                    datetime.now(UTC),
                )
            )

    def _shift_cseq(self, request: Request) -> None:
        """Auth on behalf sent the caller's request with CSeq + 1: later ones follow."""
        tag = request.from_.tag
        if not self._cseq_offsets or tag is None:
            return
        offset = self._cseq_offsets.get((request.call_id, tag))
        if offset:
            cseq = request.cseq
            request.headers.set("CSeq", f"{cseq.seq + offset} {cseq.method}")

    async def _forward_stateless_ack(self, request: Request, inbound: InboundMessage) -> None:
        """The ACK for a 2xx: through the processor, then statelessly to the next hop."""
        exchange = await self._call_processor(request, inbound)
        if exchange is None or exchange.reply.message.WhichOneof("message_type") != "request_uri":
            self.metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        try:
            outgoing = convert.build_forward_request(
                exchange.reply, request, branch_factory=self._branch, sent=exchange.sent
            ).request
            self._shift_cseq(outgoing)
            hop = convert.next_hop(outgoing)
            peer = await resolve_peer(hop.host, hop.port, hop.transport)
            data = outgoing.to_bytes()
        except (convert.ReplyError, SipParseError, ValueError, UnresolvableHost) as error:
            logger.warning("%s: ACK not forwarded: %s", request.call_id, error)
            self.metrics.dropped_messages.labels(reason="ack_not_routed").inc()
            return
        if await self._send_quietly(data, Destination(peer)):
            self._count_sent(outgoing, peer.transport)

    async def _on_cancel(
        self,
        handle: ServerTransactionHandle[Destination],
        cancel: Request,
        inbound: InboundMessage,
    ) -> None:
        """RFC 3261 §16.10: answer the CANCEL, cancel downstream, 487 the INVITE upstream."""
        assert self.transactions is not None
        invite = self.transactions.server_transaction(matching_invite_key(cancel))
        if invite is None or not invite.can_respond:
            await self._answer(handle, 481)
            return
        exchange = await self._call_processor(cancel, inbound)
        await self._answer(handle, 200)
        forward = self._forwards.get(invite.key)
        if forward is not None and not forward.finished:
            forward.cancelled = True
            if forward.provisional_seen:
                await self._send_cancel(forward)
            else:
                # RFC 3261 §9.1: no CANCEL before a provisional response.
                forward.cancel_when_provisional = True
        # RFC 3261 §9.2: the 487 keeps the To tag the caller already saw, if any.
        await self._answer(
            invite, 487, to_tag=forward.upstream_to_tag if forward is not None else None
        )
        extra = _x_headers(exchange.reply) if exchange is not None else {}
        self.events.publish(call_ended(cancel.call_id, 200, extra, datetime.now(UTC)))

    async def _send_cancel(self, forward: Forward) -> None:
        assert self.transactions is not None
        forward.cancel_when_provisional = False
        cancel = build_cancel(forward.request)
        try:
            await self.transactions.send_request(
                cancel,
                forward.destination,
                reliable=forward.destination.peer.transport.reliable,
                tu=_IgnoreResponses(),
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            logger.warning("%s: CANCEL not sent: %s", cancel.call_id, error)

    # answering ------------------------------------------------------------

    async def _answer(
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
        request = handle.request
        response = make_response(
            request, status, reason, to_tag=None if status == 100 else (to_tag or self._tag())
        )
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        if allow:
            response.headers.add("Allow", ", ".join(sorted(self._methods)))
        if unsupported:
            response.headers.add("Unsupported", unsupported)
        await self._respond(handle, response)

    async def _respond(
        self, handle: ServerTransactionHandle[Destination], response: Response
    ) -> bool:
        try:
            return await handle.respond(response)
        except SipSerializeError as error:
            logger.warning("%s: response not sendable: %s", handle.request.call_id, error)
            if response.status_code != 500:
                return await self._respond(
                    handle, make_response(handle.request, 500, "Internal Server Error")
                )
            return False

    async def _answer_statelessly(
        self, request: Request, source: Destination, status: int, *, retry_after: bool = False
    ) -> None:
        if request.method == "ACK":
            return
        response = make_response(request, status, to_tag=self._tag())
        if retry_after:
            response.headers.add("Retry-After", RETRY_AFTER)
        await self._send_quietly(response.to_bytes(), source)

    def _publish_registered(self, request: Request, reply: processor_pb2.MessageResponse) -> None:
        if not self.events.enabled:
            return
        expires = request.expires
        if expires is None:
            contacts = request.contacts
            expires = contacts[0].expires if contacts and contacts[0].expires is not None else 0
        self.events.publish(
            endpoint_registered(
                _sip_aor(request, "from"), expires, _x_headers(reply), datetime.now(UTC)
            )
        )

    # responses ------------------------------------------------------------

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
        try:
            exchange = await self._call_processor(response, inbound)
        except SipParseError as error:
            self._drops.info("%s: stray response dropped: %s", response.call_id, error.reason)
            self.metrics.dropped_messages.labels(reason="stray_response").inc()
            return
        if exchange is None:
            return
        try:
            out = convert.build_forward_response(exchange.reply, response, sent=exchange.sent)
            destination = self._upstream_of(out)
            data = out.to_bytes()
        except (convert.ReplyError, SipParseError, ValueError) as error:
            self._drops.info("%s: stray response dropped: %s", response.call_id, error)
            self.metrics.dropped_messages.labels(reason="stray_response").inc()
            return
        if await self._send_quietly(data, destination):
            self._count_sent(out, destination.peer.transport)

    def _upstream_of(self, response: Response) -> Destination:
        """RFC 3261 §18.2.2 and RFC 3581 §4: received/rport of the top Via, else sent-by."""
        via = response.top_via
        transport = Transport.from_via_token(via.transport)
        host = via.received or via.host
        port = via.rport or via.port or transport.default_port
        peer = Peer(transport, host.strip("[]"), port)
        conn = None
        if transport.stream and self._transports is not None:
            conn = self._transports.connections.get(transport, peer.host, peer.port)
        return Destination(peer, conn)

    async def _relay_response(
        self, forward: Forward, response: Response, inbound: InboundMessage | None
    ) -> None:
        """A response of a forwarded request, on its way upstream (RFC 3261 §16.7)."""
        status = response.status_code
        method = forward.request.method
        if status < 200:
            forward.provisional_seen = True
            if forward.cancel_when_provisional:
                await self._send_cancel(forward)
        if status == 100 or forward.finished:
            return
        if forward.cancelled:
            # edgeport already answered 487 upstream; the client transaction
            # acknowledges the downstream final response.
            if status >= 200:
                self._finish(forward)
            return
        if (
            status in (401, 407)
            and forward.credentials is not None
            and not forward.auth_answered
            and method in AUTH_METHODS
            and await self._answer_challenge(forward, response)
        ):
            return
        if status == 183 and self.config.strip_session_progress_sdp:
            response.body = b""
            response.headers.remove("Content-Type")
        final = status >= 200
        if final:
            forward.finished = True  # later responses of this forward are ignored
        try:
            await self._relay_upstream(forward, response, inbound)
        finally:
            if final:
                # Only now: a draining server waits for this relay to be sent.
                self._finish(forward)

    async def _relay_upstream(
        self, forward: Forward, response: Response, inbound: InboundMessage | None
    ) -> None:
        status = response.status_code
        method = forward.request.method
        exchange = None
        if convert.should_send_response(status):
            try:
                exchange = await self._call_processor(response, inbound)
            except SipParseError as error:
                # Still relayed: a malformed header the processor cannot see
                # is no reason to lose the caller's answer.
                logger.info("%s: response not shown to the processor: %s", response.call_id, error)
        out = self._upstream_response(forward, response, exchange)
        if out is None:
            return
        to_tag = out.to.tag
        if to_tag is not None and status > 100:
            forward.upstream_to_tag = to_tag
        reply = exchange.reply if exchange is not None else None
        sent = await self._respond(forward.server, out)
        if not sent and 200 <= status < 300 and method == "INVITE":
            # The server transaction ended with the first 2xx: later ones go statelessly.
            await self._send_quietly(out.to_bytes(), self._upstream_of(out))
        if (method == "INVITE" and forward.server.request.to.tag is None and status >= 300) or (
            method == "BYE" and status >= 200
        ):
            self.events.publish(
                call_ended(
                    response.call_id, status, _x_headers(reply) if reply else {}, datetime.now(UTC)
                )
            )

    def _upstream_response(
        self,
        forward: Forward,
        response: Response,
        exchange: Exchange | None,
    ) -> Response | None:
        cseq = forward.server.request.headers.get("CSeq")
        if exchange is not None:
            try:
                return convert.build_forward_response(
                    exchange.reply, response, cseq=cseq, sent=exchange.sent
                )
            except (convert.ReplyError, SipParseError, ValueError) as error:
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

    def _finish(self, forward: Forward) -> None:
        forward.finished = True
        if self._forwards.get(forward.server.key) is forward:
            del self._forwards[forward.server.key]
        _release_views(forward.server)
        forward.request.drop_views()

    async def _fail_forward(self, forward: Forward, status: int, why: str) -> None:
        """Timer B/F or a transport error: RFC 3261 §16.7 step 10 and §16.9."""
        if forward.finished:
            return
        self._finish(forward)
        request = forward.server.request
        logger.info("%s: %s %s: %s", request.call_id, request.method, status, why)
        if status == 408 and forward.provisional_seen and forward.request.method == "INVITE":
            # Timer C fired after a provisional response (RFC 3261 §16.8): cancel
            # downstream. The client transaction stays to acknowledge the final
            # response that follows; this forward is finished, so it goes no further.
            await self._send_cancel(forward)
        if not forward.cancelled:
            await self._answer(forward.server, status, retry_after=status == 503)
        if request.method == "INVITE" and request.to.tag is None and not forward.cancelled:
            self.events.publish(call_ended(request.call_id, status, {}, datetime.now(UTC)))

    async def _answer_challenge(self, forward: Forward, challenge: Response) -> bool:
        """Auth on behalf: answer a 401/407 with the X-Gateway-Auth credentials, CSeq + 1."""
        assert self.transactions is not None
        assert forward.credentials is not None
        forward.auth_answered = True
        try:
            retry = answer_challenge(
                forward.request, challenge, forward.credentials, branch=self._branch()
            )
        except GatewayAuthError as error:
            logger.warning("%s: challenge not answered: %s", challenge.call_id, error)
            return False
        tag = retry.from_.tag
        if tag is not None:
            key = (retry.call_id, tag)
            self._cseq_offsets[key] = self._cseq_offsets.get(key, 0) + 1
            self._cseq_offsets.move_to_end(key)
            while len(self._cseq_offsets) > MAX_DIALOG_OFFSETS:
                self._cseq_offsets.popitem(last=False)
        forward.request = retry
        forward.provisional_seen = False
        forward.client = None
        try:
            forward.client = await self.transactions.send_request(
                retry,
                forward.destination,
                reliable=forward.destination.peer.transport.reliable,
                tu=forward,
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            logger.warning("%s: authenticated retry not sent: %s", retry.call_id, error)
            return False
        return True


class _IgnoreResponses:
    """The TU of a CANCEL edgeport sends: its 200 (or failure) ends there."""

    def on_response(self, handle: ClientTransactionHandle[Destination], response: Response) -> None:
        return None

    def on_timeout(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None

    def on_transport_error(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None


if TYPE_CHECKING:
    from edgeport.transports import TransportLayer as TransportLayerLike
else:
    TransportLayerLike = object
