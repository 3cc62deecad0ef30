"""The message path composed from its parts, each built whole with its collaborators.

:class:`Proxy` builds, in this order (each part gets what it needs in its
constructor, nothing is attached later):

1. the shared pieces: :class:`~.processor_calls.ProcessorCalls` (the one
   processor call of each message), :class:`~.loop_guard.LoopGuard`
   (branches and loop checks), the dialog state (:mod:`.dialog_state`), the
   routing table of requests in flight (``edgeport.admission.Routing``);
2. :class:`~.upstream.UpstreamRelay`, the response side;
3. :class:`~.own_requests.OwnRequests` (the CANCEL, ACK and BYE edgeport
   sends itself) and :class:`~.failover.Failover` (RFC 3263 failover
   between the targets of a next hop), then
   :class:`~.forwarding.Forwarder`, the forward lifecycle (it relays
   responses through 2);
4. :class:`~.requests.RequestHandler`, the request side (it forwards
   through 3);
5. :class:`~.inbound.Dispatcher`, where every inbound message starts.

The :class:`~.answers.Responder` (the send side, and the transaction
layer's send callback) and the transaction layer are built by the caller
first, since the transaction layer needs the responder and every part needs
the transaction layer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from edgeport.admission import Routing
from edgeport.dns import DnsResolver
from edgeport.edge_checks import own_hosts
from edgeport.metrics import METRICS
from edgeport.own_addresses import OwnAddresses
from edgeport.proxy.dialog_state import CSeqShifts, EndedDialogs, ReadyRelays
from edgeport.proxy.failover import Failover
from edgeport.proxy.forwarding import Forwarder
from edgeport.proxy.inbound import Dispatcher
from edgeport.proxy.large_requests import LargeRequests
from edgeport.proxy.loop_guard import LoopGuard
from edgeport.proxy.model import Destination, new_branch
from edgeport.proxy.own_requests import OwnRequests
from edgeport.proxy.processor_calls import ProcessorCalls
from edgeport.proxy.requests import RequestHandler
from edgeport.proxy.targets import NextHops
from edgeport.proxy.tasks import GuardedTasks
from edgeport.proxy.upstream import UpstreamRelay
from edgeport.sip.transport import Transport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from edgeport.config import EdgePortConfig
    from edgeport.events import EventBus
    from edgeport.metrics import EdgeportMetrics
    from edgeport.processor import ProcessorClient
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.inbound import AliasBinder
    from edgeport.proxy.large_requests import StreamOpener
    from edgeport.proxy.upstream import StrayCounter
    from edgeport.transaction_layer import TransactionLayer
    from edgeport.transports import Connection, InboundMessage, Peer

logger = logging.getLogger(__name__)


class Proxy:
    """The transaction user: every inbound message ends in one of its parts."""

    def __init__(
        self,
        config: EdgePortConfig,
        processor: ProcessorClient,
        events: EventBus,
        *,
        transactions: TransactionLayer[Destination],
        responder: Responder,
        aliases: AliasBinder,
        listening_points: Sequence[Peer],
        nursery: trio.Nursery,
        strays: StrayCounter | None = None,
        branch_factory: Callable[[], str] = new_branch,
        loop_key: bytes,
        streams: StreamOpener | None = None,
        metrics: EdgeportMetrics = METRICS,
    ) -> None:
        self._transactions = transactions
        self.responder = responder
        tasks = GuardedTasks(nursery, metrics)
        self.calls = ProcessorCalls(config, processor, metrics, listening_points=listening_points)
        own_addresses = OwnAddresses(
            listening_points, config.external_addrs, clock=trio.current_time
        )
        loops = LoopGuard(own_addresses, metrics, branch_factory=branch_factory, loop_key=loop_key)
        cseq = CSeqShifts()
        ended = EndedDialogs()
        ready = ReadyRelays()
        routing = Routing()
        # RFC 3263: the transports DNS may choose are those edgeport can send over.
        supported = {Transport.TCP, *(p.transport for p in listening_points)}
        if config.security_context is not None:
            supported.add(Transport.TLS)
        hops = NextHops(
            DnsResolver(config.dns, supported=supported, metrics=metrics),
            metrics,
            listening_points=listening_points,
            failover_timeout=config.dns.failover_timeout,
        )
        # RFC 3261 §18.1.1: requests too large for UDP go over TCP (needs ``streams``).
        large = LargeRequests(config.large_requests_over_tcp, streams, listening_points)
        self.upstream = UpstreamRelay(
            transactions,
            responder,
            self.calls,
            events,
            metrics,
            tasks,
            ended=ended,
            ready=ready,
            strays=strays,
        )
        own = OwnRequests(transactions, responder, loops=loops, ended=ended)
        self.forwarder = Forwarder(
            transactions,
            responder,
            self.calls,
            self.upstream,
            events,
            metrics,
            tasks,
            loops=loops,
            cseq=cseq,
            ready=ready,
            hops=hops,
            large=large,
            failover=Failover(hops, loops, large, tasks, own),
            own=own,
            strip_session_progress_sdp=config.strip_session_progress_sdp,
        )
        self._listening_points = tuple(listening_points)
        self._loops = loops
        self.requests = RequestHandler(
            transactions,
            responder,
            self.calls,
            self.forwarder,
            events,
            metrics,
            routing=routing,
            loops=loops,
            cseq=cseq,
            methods=config.methods,
            unknown_method_action=config.unknown_method_action,
            edge_hosts=self._edge_hosts(config),
            max_in_flight=config.max_in_flight,
            hops=hops,
            large=large,
        )
        self.dispatcher = Dispatcher(
            self.requests,
            self.upstream,
            responder,
            metrics,
            routing=routing,
            aliases=aliases,
        )

    def _edge_hosts(self, config: EdgePortConfig) -> frozenset[str]:
        return own_hosts(
            [p.host for p in self._listening_points],
            config.external_addrs,
            ["localhost", "127.0.0.1", "::1"],
        )

    def reconfigure(self, config: EdgePortConfig) -> None:
        """A reload: ``spec.methods``, ``unknownMethodAction``, ``externalAddrs``,
        ``localnets`` and ``ref`` apply from the next message on; transactions,
        forwards and dialogs in progress carry on."""
        self.responder.set_methods(config.methods)
        self.calls.reconfigure(config)
        self._loops.own_addresses = OwnAddresses(
            self._listening_points, config.external_addrs, clock=trio.current_time
        )
        self.requests.reconfigure(
            methods=config.methods,
            unknown_method_action=config.unknown_method_action,
            edge_hosts=self._edge_hosts(config),
        )

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        """The transports' handler: one raw message."""
        await self.dispatcher.handle_inbound(inbound)

    async def refuse_overloaded(self, inbound: InboundMessage) -> None:
        """A new request the transports shed from a stream: a stateless 503."""
        await self.dispatcher.refuse_overloaded(inbound)

    def connection_closed(self, conn: Connection) -> None:
        """A stream connection left the table: fail the transactions that used it."""
        failed = self._transactions.fail_destination(Destination(conn.peer, conn))
        failed += self._transactions.fail_destination(Destination(conn.peer, None))
        if failed:
            logger.info("%s closed: %d transactions failed", conn.id, failed)

    @property
    def pending_forwards(self) -> int:
        """Forwarded requests still waiting for their final response."""
        return self.forwarder.pending

    @property
    def in_flight(self) -> int:
        """New requests being routed."""
        return self.requests.in_flight

    def stop_accepting(self) -> None:
        """Draining: new requests get 503 from now on."""
        self.requests.accepting = False
