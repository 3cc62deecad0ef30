"""The proxy's core: its state, its wiring, sending and answering, the processor call.

Every inbound message enters at :meth:`ProxyCore.handle_inbound`, is parsed
and counted, and goes on to the request side (``requests.py``) or the
response side (``upstream.py``). What both need lives here: where messages
are sent (a peer, or the connection they came on), how a request is
answered (statefully through its server transaction, or statelessly), and
the one processor call each message makes (a failed or late call is None,
logged once and counted; the caller answers 503).
"""

from __future__ import annotations

import collections
import contextvars
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from edgeport import convert
from edgeport._proto import common_pb2, processor_pb2, sipmessage_pb2
from edgeport.admission import ADMITTED_CALLS_PER_IN_FLIGHT, CallBudget, Routing
from edgeport.edge_checks import own_hosts
from edgeport.metrics import METRICS, EdgeportMetrics, status_class
from edgeport.own_addresses import OwnAddresses
from edgeport.processor import ProcessorError, ProcessorTimeout
from edgeport.proxy.answered import AnsweredInvites
from edgeport.proxy.ordering import CallTurns
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.loops import loop_mark, marked_branch
from edgeport.sip.message import Request, Response, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.timers import TimerConfig
from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transaction_layer import (
    ClientTransactionHandle,
    Outgoing,
    SendFailed,
    ServerTransactionHandle,
    TransactionLayer,
)
from edgeport.transports import Connection, InboundMessage, Peer, SendError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from edgeport.config import EdgePortConfig
    from edgeport.events import EventBus
    from edgeport.processor import ProcessorClient
    from edgeport.protection import EdgeGuard
    from edgeport.proxy.forwarding import Forward
    from edgeport.transports import TransportLayer

logger = logging.getLogger(__name__)

RETRY_AFTER: Final = "5"  # seconds suggested to a client after a 503
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


def on_stream(destination: Destination) -> bool:
    """Whether a destination is a stream peer: its connection can fail all its
    transactions at once (the transaction layer indexes those)."""
    return destination.peer.transport.stream


def new_branch() -> str:
    """RFC 3261 §8.1.1.7: a branch starts with the magic cookie ``z9hG4bK``."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def _release_views(handle: ServerTransactionHandle[Destination]) -> None:
    """A transaction with its final response only lingers to absorb retransmissions
    (Timer J, H): the parsed views of its messages go, to be parsed again if ever used."""
    handle.request.drop_views()
    last = handle.machine.last_response
    if last is not None:
        last.drop_views()


def _extensions(reply: processor_pb2.MessageResponse) -> Iterator[tuple[str, str]]:
    return ((ext.name, ext.value) for ext in reply.message.extensions)


def _sip_aor(message: Request | Response, which: str) -> str:
    addr = message.from_ if which == "from" else message.to
    uri = addr.uri
    user = getattr(uri, "user", None)
    host = getattr(uri, "host", None)
    if host is None:
        return str(uri)
    return f"sip:{user}@{host}" if user else f"sip:{host}"


class ProxyCore:
    """State and services shared by the request side and the response side."""

    def __init__(
        self,
        config: EdgePortConfig,
        processor: ProcessorClient,
        events: EventBus,
        *,
        metrics: EdgeportMetrics = METRICS,
        branch_factory: Callable[[], str] = new_branch,
        tag_factory: Callable[[], str] = new_tag,
        loop_key: bytes | None = None,
    ) -> None:
        self.config = config
        self.processor = processor
        self.events = events
        self.metrics = metrics
        self._branch = branch_factory
        # Keys the loop mark of edgeport's branches (RFC 3261 §16.6 item 8): one
        # per edgeport (shared by its workers), so another edgeport's Via never
        # matches.
        self._loop_key = loop_key if loop_key is not None else secrets.token_bytes(16)
        self._tag = tag_factory
        self._limiter = trio.CapacityLimiter(config.max_in_flight)
        # Processor calls for responses, ACKs and CANCELs: a budget of their own,
        # so new requests never starve the transactions already admitted.
        self._admitted_calls = CallBudget(ADMITTED_CALLS_PER_IN_FLIGHT * config.max_in_flight)
        # Requests of one call reach the next hop in the order they came.
        self._call_turns = CallTurns()
        # Requests whose processor call is running: their retransmissions go unparsed.
        self._routing = Routing()
        # Lines a flood could multiply: at most a burst every few seconds.
        self._drops = RateLimitedLog(logger)
        self._processor_log = RateLimitedLog(logger, burst=5)
        self._methods = frozenset(config.methods)
        # Forwards whose caller still waits for a final response, by server transaction.
        self._forwards: dict[object, Forward] = {}
        self._ended_dialogs: collections.OrderedDict[tuple[str, int], tuple[bytes, Destination]] = (
            collections.OrderedDict()
        )
        self._cseq_offsets: collections.OrderedDict[tuple[str, str], int] = (
            collections.OrderedDict()
        )
        self._nursery: trio.Nursery | None = None
        self._transports: TransportLayer | None = None
        self.transactions: TransactionLayer[Destination] | None = None
        self._listening_points: list[processor_pb2.NetInterface] = []
        self._requests = convert.MessageRequestBuilder(
            edge_port_ref=config.ref, listening_points=(), external_addrs=(), localnets=()
        )
        self._edge_hosts: frozenset[str] = frozenset()
        self._own_addresses = OwnAddresses((), clock=trio.current_time)
        self._guard: EdgeGuard | None = None
        # Where the later 2xx of an answered INVITE go (stray responses).
        self._answered: AnsweredInvites[Destination] = AnsweredInvites(
            TimerConfig().transaction_timeout
        )
        self.accepting = True

    def attach(
        self,
        nursery: trio.Nursery,
        transports: TransportLayer,
        transactions: TransactionLayer[Destination],
        guard: EdgeGuard | None = None,
    ) -> None:
        """Connect the proxy to the layers the server started (and the edge guard,
        which counts stray responses toward the flood limit)."""
        self._nursery = nursery
        self._transports = transports
        self.transactions = transactions
        self._guard = guard
        # RFC 6026 Timer M (64*T1): how long an INVITE client transaction takes 2xx.
        self._answered = AnsweredInvites(transactions.timers.transaction_timeout)
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
        self._own_addresses = OwnAddresses(
            transports.listening_points, self.config.external_addrs, clock=trio.current_time
        )

    def _marked_branches(self, request: Request) -> Callable[[], str]:
        """Branches for what edgeport sends on behalf of ``request`` (as received):
        each unique, each with the request's loop mark (RFC 3261 §16.6 item 8)."""
        mark = loop_mark(request, self._loop_key)

        def new_branch() -> str:
            return marked_branch(self._branch(), mark)

        return new_branch

    def _routed_to_self(self, request: Request, written_host: str, peer: Peer) -> bool:
        """RFC 3261 §16.3 item 4: a next hop that is edgeport itself, however its
        address was written, is a loop (logged and counted)."""
        if not self._own_addresses.is_own(peer, written_host):
            return False
        self._drops.warning(
            "%s: %s routed to edgeport itself (%s, %s)",
            request.call_id,
            request.method,
            written_host,
            peer,
        )
        self.metrics.dropped_messages.labels(reason="loop").inc()
        return True

    def _spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn`` in the proxy's nursery; a defect in it is logged and counted,
        never raised into the nursery (which would end the server)."""
        assert self._nursery is not None, "Proxy.attach was not called"
        self._nursery.start_soon(self._guarded, fn)

    async def _guarded(self, fn: Callable[[], Awaitable[object]]) -> None:
        try:
            await fn()
        except Exception:
            logger.exception("a task of the message path failed")
            self.metrics.dropped_messages.labels(reason="internal_error").inc()

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
                transport.value, message.cseq.method, status_class(message.status_code)
            ).inc()

    def connection_closed(self, conn: Connection) -> None:
        """A stream connection left the table: fail the transactions that used it."""
        if self.transactions is None:
            return
        failed = self.transactions.fail_destination(Destination(conn.peer, conn))
        failed += self.transactions.fail_destination(Destination(conn.peer, None))
        if failed:
            logger.info("%s closed: %d transactions failed", conn.id, failed)

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
                    status_class(message.status_code),
                ).inc()
                await self._on_response(message, inbound)
        except SipParseError as error:
            await self._refuse_unparsable(inbound, error, message)
        except Exception:
            # A defect, not bad input: one message is lost, never the server.
            logger.exception("%s: handling a message from %s failed", message.call_id, inbound.peer)
            self.metrics.dropped_messages.labels(reason="internal_error").inc()

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
            if is_websocket_alias(host):
                assert self._transports is not None
                self._transports.connections.bind_alias(host, conn)

    def _sender(self, inbound: InboundMessage) -> processor_pb2.NetInterface:
        """contract §3: the packet's real source, never the Via a client wrote.

        Processors run trunk ACLs on ``sender.host``, and a browser's Via host
        is a ``.invalid`` name; the peer is the socket's (the address a
        trusted PROXY protocol header gave, where one was accepted) and the
        transport is the listener's.
        """
        return processor_pb2.NetInterface(
            host=inbound.peer.host,
            port=inbound.peer.port,
            transport=_PROTO_TRANSPORT[inbound.local.transport],
        )

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

    async def _call_processor(
        self, message: Request | Response, inbound: InboundMessage | None
    ) -> Exchange | None:
        """One processor call; None (logged once, counted) when it failed.

        A response, ACK or CANCEL takes a call from its own budget; when none
        is left the call is not made (counted as ``overload_processor``).
        """
        admitted = isinstance(message, Response) or message.method in ("ACK", "CANCEL")
        if not admitted:
            return await self._process(message, inbound)
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

    async def _process(
        self, message: Request | Response, inbound: InboundMessage | None
    ) -> Exchange | None:
        sender = self._sender(inbound) if inbound is not None else processor_pb2.NetInterface()
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

    # the two sides ----------------------------------------------------------

    async def _on_request(self, request: Request, inbound: InboundMessage) -> None:
        raise NotImplementedError

    async def _on_response(self, response: Response, inbound: InboundMessage) -> None:
        raise NotImplementedError


class _IgnoreResponses:
    """The TU of a CANCEL edgeport sends: its 200 (or failure) ends there."""

    def on_response(self, handle: ClientTransactionHandle[Destination], response: Response) -> None:
        return None

    def on_timeout(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None

    def on_transport_error(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None
