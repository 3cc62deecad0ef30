"""The root of a running edgeport: one nursery holding every long-lived task.

``serve(config)`` builds the processor client (the built-in processor's
handler called in process when ``spec.processor.addr`` is ``builtin``, else
a gRPC client), the event publishers, the transaction timers, every
transport listener and the health server, and runs until cancelled or, with
``handle_signals``, until SIGTERM/SIGINT. On a signal it drains: new
requests get 503, in-flight transactions get up to ``shutdown_timeout``
seconds, queued events are flushed, then everything closes. A second
signal stops at once.

A worker process (``edgeport.workers``, which this module does not import)
passes its parts as plain parameters: ``branch_factory``, ``loop_key``,
``memory`` (its share of the budget), ``health_unix_path`` and
``handoffs``, its hand-offs to the sibling workers (:class:`Handoffs`),
plugged into the transports when they are built.
"""

from __future__ import annotations

import logging
import secrets
import signal
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import trio

from edgeport.config import BUILTIN_PROCESSOR
from edgeport.events import EventBus, serve_event_publishers
from edgeport.memory import MemoryBudget
from edgeport.metrics import METRICS
from edgeport.processor import (
    InProcessProcessorClient,
    ProcessorClient,
    open_processor_client,
)
from edgeport.processor_switch import SwitchingProcessorClient
from edgeport.protection import EdgeGuard
from edgeport.protection.guard import source_key
from edgeport.proxy import Destination, Proxy, Responder, new_branch, new_tag, on_stream
from edgeport.reload.watch import watch_tls_files
from edgeport.sip.timers import TimerConfig
from edgeport.sip.transport import Transport
from edgeport.transaction_layer import TransactionLayer
from edgeport.transports import (
    Connection,
    InboundMessage,
    Peer,
    TransportLayer,
    serve_transports,
)

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Awaitable, Callable

    from edgeport.capture.sender import HepCapture
    from edgeport.config import EdgePortConfig
    from edgeport.memory import Account
    from edgeport.reload.reloader import ConfigSource, Reloader
    from edgeport.transports import Handler
    from edgeport.transports.connections import TableObserver
    from edgeport.transports.inbox import InboxLimits
    from edgeport.transports.plugins import RemoteHolder
    from edgeport.transports.tls import TlsSet

logger = logging.getLogger(__name__)

EVENT_FLUSH_TIMEOUT: Final = 5.0  # seconds to publish queued events at shutdown
DRAIN_POLL_INTERVAL: Final = 0.1  # seconds between checks for in-flight transactions
ADMITTED_TASKS_PER_IN_FLIGHT: Final = 2  # handlers of responses/ACK/CANCEL per spec.maxInFlight


class Handoffs(Protocol):
    """A worker process's hand-offs to its siblings, plugged into this server.

    The transports are built with its ``table_observer`` (told of every
    connection and alias they hold), its ``remote`` holder (takes a send for
    a peer another worker holds) and ``inbound_handler(proxy's handler)`` as
    their handler; ``serve`` then runs, once they do, to take what the
    siblings hand over.
    """

    @property
    def table_observer(self) -> TableObserver: ...

    @property
    def remote(self) -> RemoteHolder: ...

    def inbound_handler(self, local: Handler) -> Handler: ...

    async def serve(
        self,
        transports: TransportLayer,
        guard: EdgeGuard,
        *,
        task_status: trio.TaskStatus[None] = ...,
    ) -> None: ...


@dataclass(slots=True)
class RunningServer:
    """What ``serve`` reports once every listener is bound."""

    config: EdgePortConfig
    transports: TransportLayer
    transactions: TransactionLayer[Destination]
    proxy: Proxy
    processor_switch: SwitchingProcessorClient
    events: EventBus
    guard: EdgeGuard
    processor_addr: str
    health_port: int | None
    shutdown: Callable[[], None]
    reloader: Reloader | None = None  # None: started without a ConfigSource

    @property
    def listening_points(self) -> list[Peer]:
        return self.transports.listening_points

    @property
    def processor(self) -> ProcessorClient:
        """The processor client new calls go to (a reload may have replaced it)."""
        return self.processor_switch.current


async def serve(
    config: EdgePortConfig,
    *,
    handle_signals: bool = False,
    timers: TimerConfig | None = None,
    inbox: InboxLimits | None = None,
    branch_factory: Callable[[], str] = new_branch,
    loop_key: bytes | None = None,
    memory: MemoryBudget | None = None,
    handoffs: Handoffs | None = None,
    health_unix_path: str | None = None,
    source: ConfigSource | None = None,
    watch_files: bool = True,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run edgeport until cancelled (or a signal, with ``handle_signals``).

    ``timers`` and ``inbox`` replace the RFC 3261 timers and the inbox bounds
    (for tests). A worker process passes ``branch_factory`` (branches naming
    it), ``loop_key`` (the same in every worker), ``memory`` (its share of
    ``spec.limits.memory``), ``handoffs`` and ``health_unix_path`` (health and
    metrics there, for the supervisor, instead of ``spec.health``).

    With ``source`` (where ``config`` was read from) the configuration can be
    reloaded (:mod:`edgeport.reload`): on SIGHUP with ``handle_signals``, on a
    ``POST /reload`` to the health socket of a worker, and, unless
    ``watch_files`` is False (a worker: its supervisor watches), when the
    files of ``spec.securityContext`` change on disk.
    """
    async with trio.open_nursery() as root:
        processor_addr = config.processor.addr
        async with _open_processor(config) as processor:
            events = EventBus.from_config(config.publishers)
            await root.start(serve_event_publishers, config.publishers, events)

            # The transports call the proxy, and the proxy sends through the
            # transports: the gate takes the transports' calls until the proxy
            # is built on them.
            gate = _ProxyGate()
            handler: Handler = gate.handle_inbound
            if handoffs is not None:  # responses of another worker go there
                handler = handoffs.inbound_handler(gate.handle_inbound)
            if memory is None:
                memory = MemoryBudget.per_worker(config.limits.memory, 1)

            # TLS: the listeners' context, and the one outbound connections verify
            # with (trustStore, system CAs, our certificate for mutual TLS).
            tls_set: TlsSet | None = None
            if config.security_context is not None:
                from edgeport.transports.tls import build_tls

                tls_set = build_tls(config.security_context)
            tls = None if tls_set is None else tls_set.server
            tls_client = None if tls_set is None else tls_set.client
            work = await _open_work_nursery(root)
            guard = EdgeGuard.from_config(config, processor_addr)  # edge protection
            capture = None if config.hep is None else await _start_capture(root, config)
            transports: TransportLayer = await root.start(
                _serve_transports_named,
                config,
                gate,
                handler,
                (tls, tls_client),
                inbox,
                guard,
                memory,
                capture,
                handoffs,
            )
            responder = Responder(
                transports.sender, METRICS, methods=config.methods, tag_factory=new_tag
            )
            transactions: TransactionLayer[Destination] = TransactionLayer(
                timers or TimerConfig(),
                responder.send_outgoing,
                fails_whole=on_stream,
                budget=memory.transactions,
                source_of=source_of,
                on_evicted=METRICS.transactions_evicted.inc,
            )
            await root.start(transactions.serve)
            proxy = Proxy(
                config,
                processor,
                events,
                transactions=transactions,
                responder=responder,
                aliases=transports.connections,
                listening_points=transports.listening_points,
                nursery=work,
                strays=guard,
                branch_factory=branch_factory,
                loop_key=loop_key if loop_key is not None else secrets.token_bytes(16),
                streams=transports.sender,
            )
            gate.open(proxy)
            if handoffs is not None:
                await root.start(handoffs.serve, transports, guard)
            _register_gauges(transactions, transports, memory)
            reloader = None
            if source is not None:
                from edgeport.reload.live import LiveParts
                from edgeport.reload.reloader import Reloader

                parts = LiveParts(
                    config=config,
                    transports=transports,
                    guard=guard,
                    proxy=proxy,
                    processor=processor,
                    capture=capture,
                    tls=tls_set,
                    nursery=work,
                )
                reloader = Reloader(source, config, parts)
                if watch_files:
                    live = reloader
                    root.start_soon(watch_tls_files, lambda: live.config, live.reload, live.changes)

            health_port = None
            if health_unix_path is not None:  # a worker's, for the supervisor to gather
                await root.start(
                    _serve_health_named, config, processor, transports, reloader, health_unix_path
                )
            elif config.health.enabled:
                health_port = await root.start(
                    _serve_health_named, config, processor, transports, reloader
                )
                logger.info("health and metrics on %s:%d", config.health_bind_addr, health_port)

            stop = trio.Event()
            running = RunningServer(
                config=config,
                transports=transports,
                transactions=transactions,
                proxy=proxy,
                processor_switch=processor,
                events=events,
                guard=guard,
                processor_addr=processor_addr,
                health_port=health_port,
                shutdown=stop.set,
                reloader=reloader,
            )
            if handle_signals:
                root.start_soon(_watch_signals, stop, root.cancel_scope, reloader)
            task_status.started(running)
            await stop.wait()
            transports.stop_accepting()
            await _drain(config, proxy, events)
            root.cancel_scope.cancel()


@asynccontextmanager
async def _open_processor(config: EdgePortConfig) -> AsyncIterator[SwitchingProcessorClient]:
    """The built-in processor's handler in process, or a gRPC client for ``host:port``,
    behind the switch a reload points at another processor."""
    timeout = config.processor.timeout
    if config.processor.addr != BUILTIN_PROCESSOR:
        async with open_processor_client(config.processor.addr, timeout=timeout) as client:
            switch = SwitchingProcessorClient(client, timeout=timeout)
            try:
                yield switch
            finally:
                if switch.current is not client:  # a reload moved to another processor
                    await SwitchingProcessorClient.close_client(switch.current)
        return
    from edgeport.builtin.service import builtin_processor_for

    logger.info("built-in processor in process")
    in_process = InProcessProcessorClient(builtin_processor_for(config).process)
    try:
        yield SwitchingProcessorClient(in_process, timeout=timeout)
    finally:
        in_process.close()


async def _start_capture(root: trio.Nursery, config: EdgePortConfig) -> HepCapture:
    from edgeport.capture.sender import HepCapture

    assert config.hep is not None
    capture = HepCapture(config.hep)
    await root.start(capture.serve)
    return capture


class _ProxyGate:
    """The transports' callbacks until the proxy, which is built on the transports, exists.

    A message that arrives in between waits for it (the gate opens before
    ``serve`` reports the server started).
    """

    def __init__(self) -> None:
        self._proxy: Proxy | None = None
        self._ready = trio.Event()

    def open(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._ready.set()

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        await (self._proxy or await self._opened()).handle_inbound(inbound)

    async def refuse_overloaded(self, inbound: InboundMessage) -> None:
        await (self._proxy or await self._opened()).refuse_overloaded(inbound)

    async def _opened(self) -> Proxy:
        # Only before the proxy exists: once it does, a message goes on with no
        # pass through the scheduler, so messages keep their arrival order.
        await self._ready.wait()
        assert self._proxy is not None
        return self._proxy

    def connection_closed(self, conn: Connection) -> None:
        if self._proxy is not None:
            self._proxy.connection_closed(conn)


def source_of(destination: Destination) -> str:
    """Whose share of the transaction table a server transaction counts against:
    its source address (an IPv6 source as its /64, as the flood limit counts)."""
    return source_key(destination.peer.host)


async def _open_work_nursery(root: trio.Nursery) -> trio.Nursery:
    """A nursery for the proxy's own tasks (response relays), living as long as ``root``."""

    async def hold(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()

    nursery: trio.Nursery = await root.start(hold)
    return nursery


async def _serve_transports_named(
    config: EdgePortConfig,
    proxy: _ProxyGate,
    handler: Handler,
    tls: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
    inbox: InboxLimits | None,
    guard: EdgeGuard,
    memory: MemoryBudget,
    capture: HepCapture | None,
    handoffs: Handoffs | None,
    *,
    task_status: trio.TaskStatus[TransportLayer],
) -> None:
    server_context, client_context = tls
    await serve_transports(
        config.transports,
        handler,
        tls=server_context,
        tls_client_context=client_context,
        limits=config.connections,
        websocket=config.websocket,
        on_connection_closed=proxy.connection_closed,
        inbox=inbox,
        trusted_proxies=config.proxy_protocol.trusted_proxies,
        guard=guard,
        # New requests beyond the in-flight bound wait in the inbox, shed first;
        # responses, ACKs and CANCELs have their own, larger share of handlers.
        max_new_tasks=config.max_in_flight,
        max_admitted_tasks=ADMITTED_TASKS_PER_IN_FLIGHT * config.max_in_flight,
        refuse=proxy.refuse_overloaded,
        on_shed=_count_shed,
        memory=memory,
        capture=capture,
        table_observer=None if handoffs is None else handoffs.table_observer,
        remote=None if handoffs is None else handoffs.remote,
        task_status=task_status,
    )


def _count_shed(reason: str) -> None:
    METRICS.dropped_messages.labels(reason=reason).inc()


async def _serve_health_named(
    config: EdgePortConfig,
    processor: ProcessorClient,
    transports: TransportLayer,
    reloader: Reloader | None,
    unix_path: str | None = None,
    *,
    task_status: trio.TaskStatus[int],
) -> None:
    from edgeport.health import HealthChecks, serve_health

    checks = HealthChecks()
    if reloader is not None:
        checks.set_details(lambda: {"configGeneration": reloader.generation})
    for point in transports.listening_points:
        checks.add_liveness(f"listener {point}", _listener_alive(transports, point))
    checks.set_readiness(processor.ready, problem=f"processor {processor.name} is not answering")
    exporter = _TransportStatsExporter(transports)
    await serve_health(
        config.health.port,
        host=config.health_bind_addr,
        checks=checks,
        render_metrics=exporter.render,
        unix_path=unix_path,
        # POST /reload only where the supervisor asks (a worker's own socket).
        reload=_reload_request(reloader) if reloader is not None and unix_path else None,
        task_status=task_status,
    )


def _reload_request(reloader: Reloader) -> Callable[[], Awaitable[dict[str, object]]]:
    async def reload() -> dict[str, object]:
        return (await reloader.reload("requested by the supervisor")).as_dict()

    return reload


class _TransportStatsExporter:
    """Copies the transport layer's counters into ``edgeport_transport_events_total``."""

    def __init__(self, transports: TransportLayer) -> None:
        self._transports = transports
        self._seen: dict[str, int] = {}

    def render(self) -> str:
        for key, value in list(self._transports.stats.items()):
            if key.startswith(("received_", "sent_")):
                continue  # counted per message by the proxy
            delta = value - self._seen.get(key, 0)
            if delta > 0:
                METRICS.transport_events.labels(event=key).inc(delta)
                self._seen[key] = value
        return METRICS.render()


def _listener_alive(transports: TransportLayer, point: Peer) -> Callable[[], bool]:
    def alive() -> bool:
        return transports.listener_alive(point)

    return alive


def _register_gauges(
    transactions: TransactionLayer[Destination],
    transports: TransportLayer,
    memory: MemoryBudget,
) -> None:
    METRICS.active_transactions.set_function(
        lambda: float(
            transactions.active_server_transactions + transactions.active_client_transactions
        )
    )
    for account in memory.accounts:
        METRICS.memory_used.labels(share=account.name).set_function(_used_bytes(account))
        METRICS.memory_limit.labels(share=account.name).set(float(account.limit))
    for transport in (Transport.TCP, Transport.TLS, Transport.WS, Transport.WSS):
        METRICS.active_connections.labels(transport=transport.value).set_function(
            _connection_count(transports, transport)
        )


def _used_bytes(account: Account) -> Callable[[], float]:
    def used() -> float:
        return float(account.used)

    return used


def _connection_count(transports: TransportLayer, transport: Transport) -> Callable[[], float]:
    def count() -> float:
        return float(sum(1 for conn in transports.connections if conn.transport is transport))

    return count


async def _watch_signals(
    stop: trio.Event, root: trio.CancelScope, reloader: Reloader | None
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                if reloader is None:
                    logger.warning("SIGHUP: no configuration source to reload from")
                elif not stop.is_set():
                    await reloader.reload("SIGHUP")
                continue
            if not stop.is_set():
                logger.info(
                    "%s: draining, a second signal stops at once", signal.Signals(signum).name
                )
                stop.set()
            else:
                logger.warning("second signal: stopping now")
                root.cancel()
                return


async def _drain(config: EdgePortConfig, proxy: Proxy, events: EventBus) -> None:
    """Graceful shutdown: refuse new work, let transactions end, flush events."""
    proxy.stop_accepting()
    with trio.move_on_after(config.shutdown_timeout) as scope:
        # Polled: the counts change in many places, and a drain happens once.
        while proxy.pending_forwards > 0 or proxy.in_flight > 0:  # noqa: ASYNC110
            await trio.sleep(DRAIN_POLL_INTERVAL)
    if scope.cancelled_caught:
        logger.warning(
            "shutdown: %d forwarded requests still unanswered after %.0f s",
            proxy.pending_forwards,
            config.shutdown_timeout,
        )
    with trio.move_on_after(EVENT_FLUSH_TIMEOUT):
        await events.drain()
    if events.pending():
        logger.warning("shutdown: %d events not published", events.pending())
