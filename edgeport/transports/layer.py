"""The transport layer: its parts built whole under one nursery, and the face they show.

RFC 3261 §18 (transport layer), §18.2.2 (responses over the connection the
request came on), RFC 7118 (WebSocket). :func:`serve_transports` binds every
listening point first (so a taken port fails the start with a
:class:`BindError`), then builds the parts, each given its collaborators
and plug-ins at construction, serves the listeners and reports a
:class:`TransportLayer`:

- the connection table (:mod:`.connections`), with the alias prober and,
  for worker processes, a table observer;
- dispatch (:mod:`.dispatch`): the bounded inbox, handler tasks, shedding;
- the connection runner (:mod:`.running`): a stream connection's life;
- outbound connections (:mod:`.outbound`);
- the send side (:mod:`.sending`), with the remote holder of worker processes;
- the listeners (:mod:`.listeners`).

Concurrency: the layer owns one nursery. Each listener runs in it; each
stream listener has its own nursery with one task per connection; outbound
connections, handler tasks, refusals and alias probes run in the layer's
nursery.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, NoReturn

import trio

from edgeport.config import ConnectionLimits, WebSocketConfig
from edgeport.memory import MemoryBudget
from edgeport.sip.errors import MAX_MESSAGE_BYTES
from edgeport.transports.alias_probe import AliasProber
from edgeport.transports.connections import ConnectionTable
from edgeport.transports.dispatch import MAX_ADMITTED_TASKS, MAX_NEW_TASKS, Dispatch
from edgeport.transports.listeners import (
    Listeners,
    ListenerSecurity,
    bind_listening_points,
    open_listening_points,
)
from edgeport.transports.outbound import Outbound, default_client_context
from edgeport.transports.proxied import TrustedProxies
from edgeport.transports.running import ConnectionRunner
from edgeport.transports.sending import Sender

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Sequence

    from edgeport.config import TransportConfig
    from edgeport.protection import EdgeGuard
    from edgeport.sip.transport import Transport
    from edgeport.transports.base import Connection, Handler, Peer
    from edgeport.transports.connections import HolderProber, TableObserver
    from edgeport.transports.inbox import Inbox, InboxLimits
    from edgeport.transports.plugins import CaptureSink, RemoteHolder


class TransportLayer:
    """The running transports as the proxy and the server use them.

    ``send(peer, data)`` and ``send_on(conn, data)`` are the send side's own
    (bound once: no extra call per message); ``connections`` is the
    connection table, ``inbox`` dispatch's inbox, ``memory`` the budget whose
    inbox and streams shares the transports charge.

    ``stats`` counts, by key: ``received_<transport>``, ``sent_<transport>``,
    ``send_failed_<transport>``, ``connect_failed_<transport>``,
    ``connections_opened``/``_closed``/``_refused``/``_idle_closed``/``_broken``,
    ``dropped_<reason>`` (``no_route``, ``partial``, and each framing error:
    ``message_too_large``, ``bad_content_length``, ``header_section_too_large``,
    ``too_many_headers``, ``not_a_sip_start_line``), ``udp_keepalives``,
    ``stun_answered``, ``stun_dropped``, ``ws_ping_timeouts``, ``tls_handshake_failed``,
    ``ws_handshake_refused``/``_timeout``, ``ws_protocol_errors``,
    ``handler_errors``, ``proxy_protocol_untrusted``/``_invalid``/``_timeout`` (connections
    closed on a PROXY protocol listener),
    ``shed_<lane>_<why>`` (``shed_new_full``, ``shed_new_stale``,
    ``shed_admitted_full``, ``shed_<lane>_memory``), ``refusals_dropped``,
    ``dropped_memory_budget`` (stream connections closed: their buffer did not fit),
    ``reader_errors``, ``listener_failures``.
    """

    def __init__(
        self,
        *,
        listeners: Listeners,
        dispatch: Dispatch,
        sender: Sender,
        connections: ConnectionTable,
        stats: Counter[str],
        memory: MemoryBudget,
        outbound: Outbound | None = None,
    ) -> None:
        self.listeners = listeners
        self.outbound = outbound
        self.dispatch = dispatch
        self.sender = sender
        self.connections = connections
        self.stats = stats
        self.memory = memory
        self.inbox: Inbox = dispatch.inbox
        self.send: Callable[[Peer, bytes], Awaitable[None]] = sender.send
        self.send_on: Callable[[Connection, bytes], Awaitable[None]] = sender.send_on

    @property
    def handler_tasks(self) -> int:
        """Handler tasks alive: started, or handling a message."""
        return self.dispatch.handler_tasks

    @property
    def listening_points(self) -> list[Peer]:
        """One per listener, with the port actually bound."""
        return self.listeners.listening_points

    def listening_point(self, transport: Transport) -> Peer | None:
        return self.listeners.listening_point(transport)

    def listener_alive(self, local: Peer) -> bool:
        """True while the listener of this listening point runs (for health checks)."""
        return self.listeners.listener_alive(local)

    def stop_accepting(self) -> None:
        """Close the stream listening sockets (for a graceful shutdown); open
        connections, UDP and sending carry on."""
        self.listeners.stop_accepting()

    def reconfigure(
        self,
        *,
        tls: ssl.SSLContext | None,
        tls_client_context: ssl.SSLContext | None,
        websocket: WebSocketConfig,
        trusted_proxies: Sequence[str],
    ) -> None:
        """A reload: new connections are accepted (TLS, WSS: handshaken) and outbound
        TLS connections opened with these; the connections already open keep theirs."""
        self.listeners.security = dataclasses.replace(
            self.listeners.security,
            tls=tls,
            websocket=websocket,
            trusted_proxies=TrustedProxies(trusted_proxies),
        )
        if self.outbound is not None:
            self.outbound.client_context = tls_client_context or default_client_context()


async def serve_transports(
    configs: Sequence[TransportConfig],
    handler: Handler,
    *,
    tls: ssl.SSLContext | None = None,
    tls_client_context: ssl.SSLContext | None = None,
    limits: ConnectionLimits | None = None,
    websocket: WebSocketConfig | None = None,
    on_connection_closed: Callable[[Connection], None] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    trusted_proxies: Sequence[str] = (),
    guard: EdgeGuard | None = None,
    inbox: InboxLimits | None = None,
    max_new_tasks: int = MAX_NEW_TASKS,
    max_admitted_tasks: int = MAX_ADMITTED_TASKS,
    refuse: Handler | None = None,
    on_shed: Callable[[str], None] | None = None,
    memory: MemoryBudget | None = None,
    capture: CaptureSink | None = None,
    table_observer: TableObserver | None = None,
    remote: RemoteHolder | None = None,
    prober: HolderProber | None = None,
    task_status: trio.TaskStatus[TransportLayer] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Bind every listening point, serve them all, report the layer once all are bound.

    ``tls`` is the server context for TLS and WSS listeners (required when one
    is configured); ``tls_client_context`` verifies servers on outbound TLS
    (default: the system trust store). A listener whose config sets
    ``proxy_protocol`` reads a PROXY protocol header from each connection, and
    only from ``trusted_proxies`` (networks). ``guard``: edge protection,
    checked before parsing.
    ``inbox``, ``max_new_tasks``, ``max_admitted_tasks``, ``refuse`` and
    ``on_shed``: see :mod:`.dispatch`;
    ``memory``: the budget whose inbox and streams shares bound what waits and
    what stream connections buffer (default: the default budget).
    ``on_connection_closed`` runs when a connection leaves the table.
    Plug-ins (:mod:`.plugins`): ``capture`` is told of every message received
    and sent; ``table_observer`` of every change to the connection table, and
    ``remote`` may take a send for a peer another worker holds (both for
    worker processes); ``prober`` checks that the holder of a claimed
    ``.invalid`` alias still answers (default: an :class:`AliasProber` in the
    layer's nursery).
    Raises BindError before ``started``.
    """
    if tls is None and any(c.protocol.secure for c in configs):
        raise ValueError("a TLS or WSS listener needs a server TLS context")
    bound = await bind_listening_points(configs)
    try:
        async with trio.open_nursery() as nursery:
            memory = memory or MemoryBudget()
            limits = limits or ConnectionLimits()
            stats: Counter[str] = Counter()
            connections = ConnectionTable(
                on_removed=on_connection_closed,
                observer=table_observer,
                # A claimed alias's holder must answer.
                prober=prober or AliasProber(nursery),
            )
            dispatch = Dispatch(
                nursery,
                handler,
                stats,
                inbox=inbox,
                account=memory.inbox,
                max_new_tasks=max_new_tasks,
                max_admitted_tasks=max_admitted_tasks,
                refuse=refuse,
                on_shed=on_shed,
                capture=capture,
            )
            runner = ConnectionRunner(
                connections,
                dispatch.deliver,
                stats,
                limits=limits,
                max_message_bytes=max_message_bytes,
                buffers=memory.streams,
                guard=guard,
            )
            points = open_listening_points(bound)
            outbound = Outbound(
                nursery,
                runner,
                stats,
                client_context=tls_client_context or default_client_context(),
                listening_points=[point.local for point in points],
            )
            sender = Sender(
                connections,
                outbound.connect,
                stats,
                udp_sockets=[point.udp for point in points if point.udp is not None],
                capture=capture,
                remote=remote,
            )
            security = ListenerSecurity(
                tls=tls,
                websocket=websocket or WebSocketConfig(),
                proxy_protocol=frozenset(c.protocol for c in configs if c.proxy_protocol),
                trusted_proxies=TrustedProxies(trusted_proxies),
            )
            listeners = Listeners(
                nursery, points, runner, dispatch.deliver, stats, security=security, guard=guard
            )
            listeners.start()
            task_status.started(
                TransportLayer(
                    listeners=listeners,
                    dispatch=dispatch,
                    sender=sender,
                    connections=connections,
                    stats=stats,
                    memory=memory,
                    outbound=outbound,
                )
            )
            await trio.sleep_forever()
    finally:
        for _, sock in bound:
            sock.close()
