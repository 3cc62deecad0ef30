"""The one processor call each message makes (contract §3): the MessageRequest, the
budgets, the outcome.

A failed or late call is None, logged once (rate-limited) and counted; the
caller answers 503. A response, ACK or CANCEL takes a call from a budget of
its own (``edgeport.admission``), so new requests never starve the
transactions already admitted; when none is left the call is not made
(counted ``overload_processor``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from edgeport import convert
from edgeport._proto import common_pb2, processor_pb2
from edgeport.admission import ADMITTED_CALLS_PER_IN_FLIGHT, CallBudget
from edgeport.processor import ProcessorError, ProcessorTimeout
from edgeport.proxy.model import Exchange
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.message import Response
from edgeport.sip.transport import Transport

if TYPE_CHECKING:
    from collections.abc import Iterable

    from edgeport.config import EdgePortConfig
    from edgeport.metrics import EdgeportMetrics
    from edgeport.processor import ProcessorClient
    from edgeport.sip.message import Request
    from edgeport.transports import Peer

logger = logging.getLogger(__name__)

PROTO_TRANSPORT: Final = {
    Transport.UDP: common_pb2.UDP,
    Transport.TCP: common_pb2.TCP,
    Transport.TLS: common_pb2.TLS,
    Transport.WS: common_pb2.WS,
    Transport.WSS: common_pb2.WSS,
}


class ProcessorCalls:
    """Builds each message's MessageRequest and calls the processor with it."""

    def __init__(
        self,
        config: EdgePortConfig,
        processor: ProcessorClient,
        metrics: EdgeportMetrics,
        *,
        listening_points: Iterable[Peer],
    ) -> None:
        self._processor = processor
        self._metrics = metrics
        bind = {c.protocol: c.bind_addr for c in config.transports}
        self._listening_points = [
            processor_pb2.NetInterface(
                host=bind.get(point.transport, point.host),
                port=point.port,
                transport=PROTO_TRANSPORT[point.transport],
            )
            for point in listening_points
        ]
        self._requests = self._builder(config)
        self._admitted = CallBudget(ADMITTED_CALLS_PER_IN_FLIGHT * config.max_in_flight)
        self._log = RateLimitedLog(logger, burst=5)
        self._drops = RateLimitedLog(logger)

    def _builder(self, config: EdgePortConfig) -> convert.MessageRequestBuilder:
        return convert.MessageRequestBuilder(
            edge_port_ref=config.ref,
            listening_points=self._listening_points,
            external_addrs=config.external_addrs,
            localnets=config.localnets,
        )

    def reconfigure(self, config: EdgePortConfig) -> None:
        """A reload: the next MessageRequest carries ``config``'s ref, externalAddrs and
        localnets (the listening points stay: the listeners do)."""
        self._requests = self._builder(config)

    async def call(self, message: Request | Response, source: Peer | None) -> Exchange | None:
        """The processor's reply for ``message`` received from ``source``; None when
        the call failed or was not made. Raises ConversionError for a message the
        conversion cannot carry."""
        admitted = isinstance(message, Response) or message.method in ("ACK", "CANCEL")
        if not admitted:
            return await self._process(message, source)
        if not self._admitted.try_take():
            self._drops.warning(
                "%s: %d processor calls for responses/ACK/CANCEL; this one skipped",
                message.call_id,
                self._admitted.in_use,
            )
            self._metrics.dropped_messages.labels(reason="overload_processor").inc()
            return None
        try:
            return await self._process(message, source)
        finally:
            self._admitted.give_back()

    async def _process(self, message: Request | Response, source: Peer | None) -> Exchange | None:
        request = self._requests.build(message, sender=self._sender(source))
        # A LAN browser's .invalid Via host, shown as its address when there
        # is no external address to place the EdgePort with (browser_via).
        convert.show_browser_source(request)
        started = trio.current_time()
        try:
            reply = await self._processor.process(request)
        except ProcessorError as error:
            outcome = "timeout" if isinstance(error, ProcessorTimeout) else "error"
            self._metrics.processor_calls.labels(outcome=outcome).inc()
            self._log.warning("%s: processor call failed: %s", message.call_id, error)
            return None
        self._metrics.processor_calls.labels(outcome="ok").inc()
        self._metrics.processor_latency.observe(trio.current_time() - started)
        return Exchange(request.message, reply)

    @staticmethod
    def _sender(source: Peer | None) -> processor_pb2.NetInterface:
        """contract §3: the packet's real source, never the Via a client wrote.

        Processors run trunk ACLs on ``sender.host``, and a browser's Via host
        is a ``.invalid`` name; the peer is the socket's (the address a
        trusted PROXY protocol header gave, where one was accepted), and its
        transport is that of the listener it came in on.
        """
        if source is None:
            return processor_pb2.NetInterface()
        return processor_pb2.NetInterface(
            host=source.host, port=source.port, transport=PROTO_TRANSPORT[source.transport]
        )
