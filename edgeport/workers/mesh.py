"""What the workers tell each other, so every message reaches the state it belongs to.

Two kinds of state live in one worker only: client transactions (a response
must reach the worker that sent the request) and stream connections (a
request for a NATed TCP phone or a browser behind a ``.invalid`` WebSocket
alias must leave over the connection the peer opened, which one worker
accepted). :class:`WorkerMesh` handles both over the hand-off sockets:

* responses: the transports' handler; a response whose top Via branch names
  another worker is handed there unparsed (``response``), and one handed
  here is handled as if read here;
* connections: every worker announces the inbound connections and aliases
  it holds (``announce``); a send for a peer or alias another worker holds
  is handed to it (``send``), and that worker writes it on the connection.
  A worker that starts says ``hello``: the others forget what its
  predecessor held and announce to it everything they hold.
* aliases: a ``.invalid`` alias belongs to the first connection that
  presented it, across workers too. A worker does not bind an alias another
  one holds; it ``contest``-s it instead, and the holder's worker probes its
  connection (:mod:`edgeport.transports.alias_probe`). Each binding is
  announced with its ``time.monotonic`` stamp, so two workers that bound the
  same alias at once agree on the earlier one; the other drops its binding.
* edge protection: hand-offs of kind ``guard`` go to the
  :class:`~edgeport.workers.guard_sync.GuardExchange`, which is also told of
  every ``hello``.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, Final

import trio

from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports import InboundMessage, Peer
from edgeport.transports.base import normalize_host
from edgeport.transports.connections import alias_key, connection_key
from edgeport.transports.errors import NoRoute, SendError
from edgeport.workers.branch import response_worker
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

    from edgeport.protection import EdgeGuard
    from edgeport.transports import Connection, TransportLayer
    from edgeport.transports.connections import ConnectionTable, Key
    from edgeport.workers.guard_sync import GuardExchange

logger = logging.getLogger(__name__)

_NOWHERE: Final = Peer(Transport.UDP, "", 0)  # peer and local of an announcement
MAX_ANNOUNCED_ITEMS: Final = 500  # per announcement datagram


class ConnectionDirectory:
    """Which other worker holds which peer connection and which alias (sans-IO).

    Two workers may bind the same alias at once (each before hearing of the
    other): the earlier binding wins (``time.monotonic`` stamps, comparable
    between processes on one host; the lower worker index on a tie), here
    and in the worker that loses, which then drops its binding.
    """

    def __init__(self) -> None:
        self.peers: dict[Key, int] = {}
        self.aliases: dict[str, int] = {}
        self.alias_since: dict[str, float] = {}

    def apply(self, worker: int, document: dict[str, Any]) -> list[str]:
        """One announcement from ``worker``: ``hello``, or what it ``add``-ed and ``remove``-d.

        Returns the aliases that no other worker holds any more.
        """
        released = self.forget(worker) if document.get("hello") else []
        for op, table in (("add", True), ("remove", False)):
            items = document.get(op, ())
            if isinstance(items, list):
                for item in items[:MAX_ANNOUNCED_ITEMS]:
                    alias = self._change(worker, item, add=table)
                    if alias is not None:
                        released.append(alias)
        return released

    def forget(self, worker: int) -> list[str]:
        """Drop what ``worker`` held (it restarted); the aliases it held."""
        self.peers = {key: w for key, w in self.peers.items() if w != worker}
        gone = [alias for alias, w in self.aliases.items() if w == worker]
        for alias in gone:
            del self.aliases[alias]
            del self.alias_since[alias]
        return gone

    def _change(self, worker: int, item: Any, *, add: bool) -> str | None:
        """Apply one item; the alias when this released it."""
        if isinstance(item, str) or (isinstance(item, list) and len(item) == 2):
            return self._change_alias(worker, item, add=add)
        if isinstance(item, list) and len(item) == 3:
            try:
                key = connection_key(Transport(item[0]), str(item[1]), int(item[2]))
            except (ValueError, TypeError):
                return None
            if add:
                self.peers[key] = worker
            elif self.peers.get(key) == worker:
                del self.peers[key]
        return None

    def _change_alias(self, worker: int, item: str | list[Any], *, add: bool) -> str | None:
        try:
            name, since = (item, math.inf) if isinstance(item, str) else (item[0], float(item[1]))
        except (ValueError, TypeError):
            return None
        if not isinstance(name, str) or math.isnan(since):
            return None
        alias = alias_key(name)
        current = self.aliases.get(alias)
        if add:
            if current is None or current == worker or self.wins(since, worker, alias):
                self.aliases[alias] = worker
                self.alias_since[alias] = since
            return None
        if current == worker:
            del self.aliases[alias]
            del self.alias_since[alias]
            return alias
        return None

    def wins(self, since: float, worker: int, alias: str) -> bool:
        """True when a binding of ``alias`` by ``worker`` at ``since`` is earlier than the
        one this directory knows."""
        current = self.aliases.get(alias)
        if current is None:
            return True
        return (since, worker) < (self.alias_since[alias], current)

    def holder(self, peer: Peer) -> int | None:
        """The worker that holds the connection for ``peer``, if another one announced it."""
        host = normalize_host(peer.host)
        if is_websocket_alias(host):
            return self.aliases.get(alias_key(host))
        if peer.transport is Transport.UDP:
            return None
        return self.peers.get(connection_key(peer.transport, host, peer.port))


def held_items(conn: Connection) -> list[Any]:
    """What ``conn`` lets a worker reach: its peer (inbound only) and its aliases."""
    items: list[Any] = [] if conn.outbound else [_peer_item(conn.peer)]
    items.extend(sorted(conn.aliases))
    return items


def _added_items(conn: Connection, table: ConnectionTable) -> list[Any]:
    """``held_items`` as an ``add`` says them: each alias with when it was bound."""
    items: list[Any] = [] if conn.outbound else [_peer_item(conn.peer)]
    for alias in sorted(conn.aliases):
        binding = table.binding(alias)
        if binding is not None and binding[0] is conn:
            items.append([alias, binding[1]])
    return items


def _peer_item(peer: Peer) -> list[Any]:
    return [peer.transport.value, normalize_host(peer.host), peer.port]


class WorkerMesh:
    """This worker's side of the hand-offs: routing, announcing, sending for others."""

    def __init__(
        self, link: HandoffLink, handler: Callable[[InboundMessage], Awaitable[None]]
    ) -> None:
        self.link = link
        self.directory = ConnectionDirectory()
        self._handler = handler
        self._transports: TransportLayer | None = None
        self.guard_exchange: GuardExchange | None = None  # edge protection for every worker

    # responses -----------------------------------------------------------

    async def handle_inbound(self, inbound: InboundMessage) -> None:
        """The transports' handler: a response of another worker goes there unparsed."""
        owner = response_worker(inbound.data)
        if owner is not None and owner != self.link.index and owner < self.link.count:
            self.link.send(owner, Handoff(KIND_RESPONSE, inbound.data, inbound.peer, inbound.local))
            return
        await self._handler(inbound)

    # connections ---------------------------------------------------------

    def attach(self, transports: TransportLayer, guard: EdgeGuard | None = None) -> None:
        """Share what ``transports`` holds (and what ``guard`` decides) with the other
        workers, and send for them."""
        self._transports = transports
        transports.connections.observer = self
        transports.send_elsewhere = self.send_elsewhere
        if guard is not None and self.guard_exchange is not None:
            self.guard_exchange.attach(guard)
        self._broadcast({"hello": True})

    def connection_added(self, conn: Connection) -> None:
        if not conn.outbound:
            self._broadcast({"add": [_peer_item(conn.peer)]})

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

    def send_elsewhere(self, peer: Peer, data: bytes) -> bool:
        """Hand ``data`` to the worker holding ``peer``'s connection; False when this one should.

        Raises NoRoute when the holder cannot take it (its socket is full or
        it is gone), so the transaction fails as for a closed connection.
        """
        transports = self._transports
        if transports is None or peer.transport is Transport.UDP:
            return False
        host = normalize_host(peer.host)
        local = (
            transports.connections.lookup_alias(host)
            if is_websocket_alias(host)
            else transports.connections.get(peer.transport, host, peer.port)
        )
        if local is not None and not local.closed:
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

    # receiving -----------------------------------------------------------

    async def deliver(self, handoff: Handoff) -> None:
        """A hand-off from another worker."""
        if handoff.kind == KIND_RESPONSE:
            await self._handler(
                InboundMessage(handoff.data, handoff.peer, None, handoff.local, trio.current_time())
            )
        elif handoff.kind == KIND_SEND:
            await self._send_here(handoff)
        elif handoff.kind == KIND_ANNOUNCE:
            self._announced(handoff.data)
        elif handoff.kind == KIND_GUARD:
            if self.guard_exchange is not None:
                self.guard_exchange.receive(handoff.data)
        else:
            logger.warning("worker %d: unknown hand-off kind %r", self.link.index, handoff.kind)

    async def _send_here(self, handoff: Handoff) -> None:
        """Write a message another worker routed to a connection of this one (never re-routed)."""
        transports = self._transports
        peer = handoff.peer
        host = normalize_host(peer.host)
        conn = None
        if transports is not None:
            conn = (
                transports.connections.lookup_alias(host)
                if is_websocket_alias(host)
                else transports.connections.get(peer.transport, host, peer.port)
            )
        if transports is None or conn is None or conn.closed:
            HANDOFF_DROPS.labels(kind=KIND_SEND, reason="gone").inc()
            logger.info("worker %d: no connection for %s any more", self.link.index, peer)
            return
        try:
            await transports.send_on(conn, handoff.data)
        except SendError as error:  # the connection went; its removal is announced
            HANDOFF_DROPS.labels(kind=KIND_SEND, reason="gone").inc()
            logger.info("worker %d: sending for another worker failed: %s", self.link.index, error)

    def _announced(self, data: bytes) -> None:
        try:
            document = json.loads(data)
            sender = int(document["from"])
        except (ValueError, KeyError, TypeError):
            logger.warning("worker %d: malformed announcement", self.link.index)
            return
        if sender == self.link.index or not isinstance(document, dict):
            return
        table = None if self._transports is None else self._transports.connections
        if table is not None:
            self._resolve_concurrent_claims(sender, document.get("add"), table)
        released = self.directory.apply(sender, document)
        if table is not None:
            for alias in released:
                table.alias_released(alias)
            contested = document.get("contest")
            if isinstance(contested, list):
                for alias in contested[:MAX_ANNOUNCED_ITEMS]:
                    if isinstance(alias, str):
                        table.contest(alias)
        if document.get("hello"):
            self.link.mark_reachable(sender)
            if table is not None:
                self._announce_all_to(sender, table)
            if self.guard_exchange is not None:
                self.guard_exchange.hello_from(sender)

    def _resolve_concurrent_claims(self, sender: int, added: Any, table: ConnectionTable) -> None:
        """An alias ``sender`` bound that this worker holds too: the earlier binding wins."""
        if not isinstance(added, list):
            return
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
            if (since, sender) < (binding[1], self.link.index):
                logger.info(
                    "worker %d: alias %s was bound earlier by worker %d: %s loses it",
                    self.link.index,
                    item[0],
                    sender,
                    binding[0].id,
                )
                table.unbind_alias(item[0])

    def _announce_all_to(self, worker: int, table: ConnectionTable) -> None:
        items = [item for conn in table if not conn.closed for item in _added_items(conn, table)]
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
