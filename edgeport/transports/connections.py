"""The connection table: where a message for a stream peer goes.

Maps (transport, host, port) to the live connection, whichever side opened
it, so a request for a client behind NAT goes back over the connection that
client opened (RFC 3261 §18.2.2, RFC 5626). WebSocket clients also claim
``.invalid`` Contact hosts (RFC 7118 §5.2), kept as aliases and never
resolved.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from edgeport.sip.transport import Transport
from edgeport.transports.base import MAX_ALIASES_PER_CONNECTION, Connection, normalize_host


def alias_key(host: str) -> str:
    """A ``.invalid`` host as the alias table keys it: lower case, no final dot."""
    return normalize_host(host).rstrip(".")


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

Key = tuple[Transport, str, int]


def connection_key(transport: Transport, host: str, port: int) -> Key:
    return (transport, normalize_host(host), port)


class TableObserver(Protocol):
    """Told of every change to a table (worker processes share what they hold)."""

    def connection_added(self, conn: Connection) -> None: ...

    def alias_bound(self, alias: str, conn: Connection) -> None: ...

    def connection_removed(self, conn: Connection) -> None: ...


class ConnectionTable:
    """Live connections by address and by alias; ``on_removed`` runs when one leaves."""

    def __init__(self, on_removed: Callable[[Connection], None] | None = None) -> None:
        self._on_removed = on_removed
        self.observer: TableObserver | None = None
        self._by_key: dict[Key, Connection] = {}
        self._keys: dict[Connection, set[Key]] = {}
        self._aliases: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._keys))

    def __contains__(self, conn: object) -> bool:
        return conn in self._keys

    def add(self, conn: Connection, *extra_keys: Key) -> None:
        """Register ``conn`` under its peer address and any ``extra_keys`` (a dialled name)."""
        keys = {connection_key(conn.transport, conn.peer.host, conn.peer.port), *extra_keys}
        self._keys.setdefault(conn, set()).update(keys)
        for key in keys:
            self._by_key[key] = conn
        if self.observer is not None:
            self.observer.connection_added(conn)

    def get(self, transport: Transport, host: str, port: int) -> Connection | None:
        return self._by_key.get(connection_key(transport, host, port))

    def bind_alias(self, host: str, conn: Connection) -> None:
        """Route ``host`` (a ``.invalid`` Contact host) to ``conn``; the latest binding wins."""
        if conn not in self._keys:
            return
        host = alias_key(host)
        if host in conn.aliases:
            return
        if len(conn.aliases) >= MAX_ALIASES_PER_CONNECTION:
            logger.debug("%s alias %s ignored: too many aliases", conn.id, host)
            return
        previous = self._aliases.get(host)
        if previous is not None and previous is not conn:
            previous.aliases.discard(host)
        conn.aliases.add(host)
        self._aliases[host] = conn
        if self.observer is not None:
            self.observer.alias_bound(host, conn)

    def lookup_alias(self, host: str) -> Connection | None:
        return self._aliases.get(alias_key(host))

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` (idempotent); calls ``on_removed`` once."""
        keys = self._keys.pop(conn, None)
        if keys is None:
            return
        for key in keys:
            if self._by_key.get(key) is conn:
                del self._by_key[key]
        for alias in conn.aliases:
            if self._aliases.get(alias) is conn:
                del self._aliases[alias]
        if self.observer is not None:
            self.observer.connection_removed(conn)
        if self._on_removed is not None:
            try:
                self._on_removed(conn)
            except Exception:
                logger.exception("%s on_connection_closed failed", conn.id)
