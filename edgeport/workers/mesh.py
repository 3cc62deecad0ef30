"""What the workers tell each other, so every message reaches the state it belongs to.

Two kinds of state live in one worker only: client transactions (a response
must reach the worker that sent the request) and stream connections (a
request for a NATed TCP phone or a browser behind a ``.invalid`` WebSocket
alias must leave over the connection the peer opened, which one worker
accepted). Three parts handle both over the hand-off sockets:

* :class:`ResponseRouter`, the transports' handler: a response whose top Via
  branch names another worker is handed there unparsed (``response``);
* :class:`WorkerMesh`, given to the transports at construction as their
  connection table's observer and their remote holder: every worker
  announces the inbound connections and aliases it holds (``announce``), and
  a send for a peer or alias another worker holds is handed to it
  (``send``). A worker that starts says ``hello`` first: the others forget
  what its predecessor held and announce to it everything they hold.
* :class:`HandoffReceiver`, built once the transports run: a response handed
  here is handled as if read here, a ``send`` is written on the connection
  this worker holds, announcements update the directory
  (:mod:`.directory`) and the table.

Aliases: a ``.invalid`` alias belongs to the first connection that
presented it, across workers too. A worker does not bind an alias another
one holds; it ``contest``-s it instead, and the holder's worker probes its
connection (:mod:`edgeport.transports.alias_probe`). Each binding is
announced with its ``time.monotonic`` stamp, so two workers that bound the
same alias at once agree on the earlier one; the other drops its binding.

Edge protection: hand-offs of kind ``guard`` go to the
:class:`~edgeport.workers.guard_sync.GuardExchange`, which is also told of
every ``hello``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final

import trio

from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports import InboundMessage, Peer
from edgeport.transports.base import normalize_host
from edgeport.transports.errors import NoRoute, SendError
from edgeport.workers.branch import response_worker
from edgeport.workers.directory import (
    MAX_ANNOUNCED_ITEMS,
    ConnectionDirectory,
    added_items,
    held_items,
    peer_item,
)
from edgeport.workers.handoff import (
    HANDOFF_DROPS,
    KIND_ANNOUNCE,
    KIND_GUARD,
    KIND_RESPONSE,
    KIND_SEND,
    Handoff,
    HandoffLink,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edgeport.transports import Connection, Handler
    from edgeport.transports.connections import ConnectionTable
    from edgeport.workers.guard_sync import GuardExchange

__all__ = ["ConnectionDirectory", "HandoffReceiver", "ResponseRouter", "WorkerMesh"]

logger = logging.getLogger(__name__)

_NOWHERE: Final = Peer(Transport.UDP, "", 0)  # peer and local of an announcement


class ResponseRouter:
    """The transports' handler: a response of another worker goes there unparsed."""

    def __init__(self, link: HandoffLink, local: Handler) -> None:
        self._link = link
        self._local = local  # the proxy's handler

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        owner = response_worker(inbound.data)
        link = self._link
        if owner is not None and owner != link.index and owner < link.count:
            link.send(owner, Handoff(KIND_RESPONSE, inbound.data, inbound.peer, inbound.local))
            return
        await self._local(inbound)


class WorkerMesh:
    """This worker's side of the connection announcements, and sends for the others.

    The connection table's observer (:class:`edgeport.transports.connections.TableObserver`)
    and the send side's remote holder (:class:`edgeport.transports.plugins.RemoteHolder`).
    """

    def __init__(self, link: HandoffLink) -> None:
        self.link = link
        self.directory = ConnectionDirectory()

    def hello(self) -> None:
        """Tell the others this worker (re)started: they forget what its predecessor held.

        Said before anything else is announced (each outbox is written in order),
        so no announcement of this worker's is forgotten with its predecessor's.
        """
        self._broadcast({"hello": True})

    # the table's observer --------------------------------------------------

    def connection_added(self, conn: Connection) -> None:
        if not conn.outbound:
            self._broadcast({"add": [peer_item(conn.peer)]})

    def alias_bound(self, alias: str, conn: Connection, bound_at: float) -> None:
        self._broadcast({"add": [[alias, bound_at]]})

    def alias_unbound(self, alias: str, conn: Connection) -> None:
        self._broadcast({"remove": [alias]})

    def held_elsewhere(self, alias: str) -> bool:
        holder = self.directory.aliases.get(alias)
        return holder is not None and holder != self.link.index and self.link.reachable(holder)

    def contest(self, alias: str) -> None:
        holder = self.directory.aliases.get(alias)
        if holder is not None and holder != self.link.index:
            self._send_announcement(holder, {"contest": [alias]})

    def connection_removed(self, conn: Connection) -> None:
        items = held_items(conn)
        if items:
            self._broadcast({"remove": items})

    # the remote holder ------------------------------------------------------

    def send_elsewhere(self, peer: Peer, data: bytes) -> bool:
        """Hand ``data`` to the worker holding ``peer``'s connection (this one holds no
        live connection for it); False when no other worker announced one.

        Raises NoRoute when the holder cannot take it (its socket is full or
        it is gone), so the transaction fails as for a closed connection.
        """
        if peer.transport is Transport.UDP:
            return False
        holder = self.directory.holder(peer)
        if holder is None or holder == self.link.index:
            return False
        # A holder that died took the connection with it: fail now, not after Timer B.
        if not self.link.reachable(holder) or not self.link.send(
            holder, Handoff(KIND_SEND, data, peer, _NOWHERE)
        ):
            raise NoRoute(f"worker {holder} holding {peer} did not take the message")
        return True

    # announcing -------------------------------------------------------------

    def announce_all_to(self, worker: int, table: ConnectionTable) -> None:
        """Tell ``worker`` (which just said hello) everything ``table`` holds."""
        items = [item for conn in table if not conn.closed for item in added_items(conn, table)]
        for start in range(0, len(items), MAX_ANNOUNCED_ITEMS):
            chunk = items[start : start + MAX_ANNOUNCED_ITEMS]
            self._send_announcement(worker, {"add": chunk})

    def _broadcast(self, document: dict[str, Any]) -> None:
        for worker in range(self.link.count):
            if worker != self.link.index:
                self._send_announcement(worker, document)

    def _send_announcement(self, worker: int, document: dict[str, Any]) -> None:
        body = json.dumps({"from": self.link.index, **document}, separators=(",", ":"))
        self.link.send(worker, Handoff(KIND_ANNOUNCE, body.encode(), _NOWHERE, _NOWHERE))


class HandoffReceiver:
    """What the other workers hand to this one, against this worker's transports.

    ``connections`` and ``send_on`` are the running transports' table and
    send side; ``queue`` puts a message in this worker's inbox, where its
    handlers take it as one read here (a response handed over is handled, in
    turn, like any other); ``guard_exchange`` takes the edge protection
    reports (None: ignored).
    """

    def __init__(
        self,
        mesh: WorkerMesh,
        connections: ConnectionTable,
        send_on: Callable[[Connection, bytes], Awaitable[None]],
        queue: Callable[[InboundMessage], None],
        guard_exchange: GuardExchange | None = None,
    ) -> None:
        self._mesh = mesh
        self._link = mesh.link
        self._connections = connections
        self._send_on = send_on
        self._queue = queue
        self._guard_exchange = guard_exchange

    async def deliver(self, handoff: Handoff) -> None:
        """A hand-off from another worker."""
        if handoff.kind == KIND_RESPONSE:
            self._queue(
                InboundMessage(handoff.data, handoff.peer, None, handoff.local, trio.current_time())
            )
        elif handoff.kind == KIND_SEND:
            await self._send_here(handoff)
        elif handoff.kind == KIND_ANNOUNCE:
            self._announced(handoff.data)
        elif handoff.kind == KIND_GUARD:
            if self._guard_exchange is not None:
                self._guard_exchange.receive(handoff.data)
        else:
            logger.warning("worker %d: unknown hand-off kind %r", self._link.index, handoff.kind)

    async def _send_here(self, handoff: Handoff) -> None:
        """Write a message another worker routed to a connection of this one (never re-routed)."""
        peer = handoff.peer
        host = normalize_host(peer.host)
        table = self._connections
        conn = (
            table.lookup_alias(host)
            if is_websocket_alias(host)
            else table.get(peer.transport, host, peer.port)
        )
        if conn is None or conn.closed:
            HANDOFF_DROPS.labels(kind=KIND_SEND, reason="gone").inc()
            logger.info("worker %d: no connection for %s any more", self._link.index, peer)
            return
        try:
            await self._send_on(conn, handoff.data)
        except SendError as error:  # the connection went; its removal is announced
            HANDOFF_DROPS.labels(kind=KIND_SEND, reason="gone").inc()
            logger.info("worker %d: sending for another worker failed: %s", self._link.index, error)

    def _announced(self, data: bytes) -> None:
        try:
            document = json.loads(data)
            sender = int(document["from"])
        except (ValueError, KeyError, TypeError):
            logger.warning("worker %d: malformed announcement", self._link.index)
            return
        if sender == self._link.index or not isinstance(document, dict):
            return
        table = self._connections
        self._resolve_concurrent_claims(sender, document.get("add"))
        released = self._mesh.directory.apply(sender, document)
        for alias in released:
            table.alias_released(alias)
        contested = document.get("contest")
        if isinstance(contested, list):
            for alias in contested[:MAX_ANNOUNCED_ITEMS]:
                if isinstance(alias, str):
                    table.contest(alias)
        if document.get("hello"):
            self._link.mark_reachable(sender)
            self._mesh.announce_all_to(sender, table)
            if self._guard_exchange is not None:
                self._guard_exchange.hello_from(sender)

    def _resolve_concurrent_claims(self, sender: int, added: Any) -> None:
        """An alias ``sender`` bound that this worker holds too: the earlier binding wins."""
        if not isinstance(added, list):
            return
        table = self._connections
        for item in added[:MAX_ANNOUNCED_ITEMS]:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                continue
            binding = table.binding(item[0])
            if binding is None:
                continue
            try:
                since = float(item[1])
            except (ValueError, TypeError):
                continue
            if (since, sender) < (binding[1], self._link.index):
                logger.info(
                    "worker %d: alias %s was bound earlier by worker %d: %s loses it",
                    self._link.index,
                    item[0],
                    sender,
                    binding[0].id,
                )
                table.unbind_alias(item[0])
