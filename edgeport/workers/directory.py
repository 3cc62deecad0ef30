"""Which other worker holds which peer connection and which alias, as they announced it.

Sans-IO. Each worker announces the inbound connections and ``.invalid``
aliases it holds (:mod:`.mesh`); :class:`ConnectionDirectory` keeps what the
others announced, so a send for a peer or alias this worker does not hold
can be handed to the one that does. The items of an announcement:
``[transport, host, port]`` for a peer, ``[alias, bound_at]`` (or a bare
alias) for an alias; at most ``MAX_ANNOUNCED_ITEMS`` are read from one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports.base import normalize_host
from edgeport.transports.connections import alias_key, connection_key

if TYPE_CHECKING:
    from edgeport.transports import Connection, Peer
    from edgeport.transports.connections import ConnectionTable, Key

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
    items: list[Any] = [] if conn.outbound else [peer_item(conn.peer)]
    items.extend(sorted(conn.aliases))
    return items


def added_items(conn: Connection, table: ConnectionTable) -> list[Any]:
    """``held_items`` as an ``add`` says them: each alias with when it was bound."""
    items: list[Any] = [] if conn.outbound else [peer_item(conn.peer)]
    for alias in sorted(conn.aliases):
        binding = table.binding(alias)
        if binding is not None and binding[0] is conn:
            items.append([alias, binding[1]])
    return items


def peer_item(peer: Peer) -> list[Any]:
    return [peer.transport.value, normalize_host(peer.host), peer.port]
