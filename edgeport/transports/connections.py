"""The connection table: where a message for a stream peer goes.

Maps (transport, host, port) to the live connection, whichever side opened
it, so a request for a client behind NAT goes back over the connection that
client opened (RFC 3261 §18.2.2, RFC 5626). WebSocket clients also claim
``.invalid`` Contact hosts (RFC 7118 §5.2), kept as aliases and never
resolved.

An alias belongs to the first connection that presented it, for as long as
that connection lives. A browser's ``.invalid`` host is no secret (it is in
the Contact of everything the browser sends), so a later claim from another
connection is refused, counted in ``edgeport_alias_claims_refused_total``
and logged (rate-limited). The honest later claim is a browser that
reconnected while its old connection is half-open: the refusal asks the
``prober`` to check the holder (a WebSocket ping, :mod:`.alias_probe`); a
holder that does not answer is closed, and when it leaves the table its
alias passes to the connection whose claim is pending (``CLAIM_TTL``).
With worker processes the ``observer`` says whether another worker holds
the alias, and asks that worker to probe its holder. Both are given to the
table when it is built.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import TYPE_CHECKING, Final, Protocol

from edgeport.metrics import METRICS
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.transport import Transport
from edgeport.transports.base import MAX_ALIASES_PER_CONNECTION, Connection, normalize_host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

Key = tuple[Transport, str, int]

CLAIM_TTL: Final = 15.0  # seconds a refused claim waits for the holder to go (probe included)

ALIAS_CLAIMS_REFUSED: Final = METRICS.registry.counter(
    "edgeport_alias_claims_refused_total",
    "Claims of a WebSocket .invalid alias that another live connection holds, refused.",
)


def alias_key(host: str) -> str:
    """A ``.invalid`` host as the alias table keys it: lower case, no final dot."""
    return normalize_host(host).rstrip(".")


def connection_key(transport: Transport, host: str, port: int) -> Key:
    return (transport, normalize_host(host), port)


class AliasClaim(enum.Enum):
    """What :meth:`ConnectionTable.bind_alias` did with a claim."""

    BOUND = "bound"  # the alias now routes to the claimant
    HELD = "held"  # the claimant already held it
    REFUSED = "refused"  # another live connection holds it (here or on another worker)
    IGNORED = "ignored"  # the claimant is not in the table, or holds too many aliases


class TableObserver(Protocol):
    """Told of every change to a table (worker processes share what they hold)."""

    def connection_added(self, conn: Connection) -> None: ...

    def alias_bound(self, alias: str, conn: Connection, bound_at: float) -> None: ...

    def alias_unbound(self, alias: str, conn: Connection) -> None: ...

    def connection_removed(self, conn: Connection) -> None: ...

    def held_elsewhere(self, alias: str) -> bool:
        """True when another live worker holds ``alias``."""
        ...

    def contest(self, alias: str) -> None:
        """Ask the worker holding ``alias`` to check that its holder still answers."""
        ...


class HolderProber(Protocol):
    """Checks, in the background, that a connection holding a claimed alias still answers;
    closes it when it does not."""

    def probe(self, holder: Connection) -> None: ...


class _Claim:
    __slots__ = ("claimant", "since")

    def __init__(self, claimant: Connection, since: float) -> None:
        self.claimant = claimant
        self.since = since


class ConnectionTable:
    """Live connections by address and by alias; ``on_removed`` runs when one leaves,
    ``observer`` hears of every change, ``prober`` checks a claimed alias's holder.

    ``clock`` stamps alias bindings and claims; it is system-wide
    (``time.monotonic``), so worker processes can compare their stamps.
    """

    def __init__(
        self,
        on_removed: Callable[[Connection], None] | None = None,
        *,
        observer: TableObserver | None = None,
        prober: HolderProber | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_removed = on_removed
        self._clock = clock
        self._observer = observer  # worker processes: told of every change
        self._prober = prober  # checks the holder of a claimed alias
        self._by_key: dict[Key, Connection] = {}
        self._keys: dict[Connection, set[Key]] = {}
        self._aliases: dict[str, Connection] = {}
        self._bound_at: dict[str, float] = {}
        # Refused claims waiting for the holder to go: at most one per alias, and at
        # most MAX_ALIASES_PER_CONNECTION per claimant (dropped with the claimant).
        self._claims: dict[str, _Claim] = {}
        self._claims_of: dict[Connection, set[str]] = {}
        self._refusals_log = RateLimitedLog(logger)

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
        if self._observer is not None:
            self._observer.connection_added(conn)

    def get(self, transport: Transport, host: str, port: int) -> Connection | None:
        return self._by_key.get(connection_key(transport, host, port))

    # -- aliases -------------------------------------------------------------

    def bind_alias(self, host: str, conn: Connection) -> AliasClaim:
        """Route ``host`` (a ``.invalid`` Contact host) to ``conn`` unless another live
        connection holds it; the first binding wins while its connection lives."""
        if conn not in self._keys or conn.closed:
            return AliasClaim.IGNORED
        alias = alias_key(host)
        holder = self._aliases.get(alias)
        if holder is conn:
            return AliasClaim.HELD
        if len(conn.aliases) >= MAX_ALIASES_PER_CONNECTION:
            logger.debug("%s alias %s ignored: too many aliases", conn.id, alias)
            return AliasClaim.IGNORED
        if holder is not None and not holder.closed:
            self._refuse(alias, conn, holder)
            return AliasClaim.REFUSED
        if self._observer is not None and self._observer.held_elsewhere(alias):
            self._refuse(alias, conn, None)
            return AliasClaim.REFUSED
        if holder is not None:  # closed, not yet removed: it is going away
            holder.aliases.discard(alias)
        self._bind(alias, conn)
        return AliasClaim.BOUND

    def _bind(self, alias: str, conn: Connection) -> None:
        self._drop_claim(alias)
        conn.aliases.add(alias)
        self._aliases[alias] = conn
        bound_at = self._bound_at[alias] = self._clock()
        if self._observer is not None:
            self._observer.alias_bound(alias, conn, bound_at)

    def _refuse(self, alias: str, claimant: Connection, holder: Connection | None) -> None:
        ALIAS_CLAIMS_REFUSED.inc()
        self._refusals_log.warning(
            "%s %s claimed alias %s, held by %s: refused",
            claimant.id,
            claimant.peer,
            alias,
            holder.id if holder is not None else "another worker",
        )
        if not self._note_claim(alias, claimant):
            return  # a claim is already waiting for this holder's answer
        if holder is None:
            assert self._observer is not None
            self._observer.contest(alias)
        elif self._prober is not None:
            self._prober.probe(holder)

    def _note_claim(self, alias: str, claimant: Connection) -> bool:
        """Remember ``claimant`` as waiting for ``alias``; False when a live claim waits."""
        now = self._clock()
        claim = self._claims.get(alias)
        if claim is not None and now - claim.since < CLAIM_TTL and not claim.claimant.closed:
            return False
        if len(self._claims_of.get(claimant, ())) >= MAX_ALIASES_PER_CONNECTION:
            return False
        self._drop_claim(alias)
        self._claims[alias] = _Claim(claimant, now)
        self._claims_of.setdefault(claimant, set()).add(alias)
        return True

    def _drop_claim(self, alias: str) -> None:
        claim = self._claims.pop(alias, None)
        if claim is None:
            return
        pending = self._claims_of.get(claim.claimant)
        if pending is not None:
            pending.discard(alias)
            if not pending:
                del self._claims_of[claim.claimant]

    def alias_released(self, alias: str) -> None:
        """``alias`` has no holder any more (here or elsewhere): a waiting claim takes it."""
        alias = alias_key(alias)
        claim = self._claims.get(alias)
        if claim is None:
            return
        holder = self._aliases.get(alias)
        if (holder is not None and not holder.closed) or (
            self._observer is not None and self._observer.held_elsewhere(alias)
        ):
            return  # taken meanwhile; the claim waits for that holder's answer
        self._drop_claim(alias)
        if self._clock() - claim.since >= CLAIM_TTL:
            return
        if self.bind_alias(alias, claim.claimant) is AliasClaim.BOUND:
            logger.info("%s %s took over alias %s", claim.claimant.id, claim.claimant.peer, alias)

    def lookup_alias(self, host: str) -> Connection | None:
        return self._aliases.get(alias_key(host))

    def binding(self, alias: str) -> tuple[Connection, float] | None:
        """The connection holding ``alias`` here and when it was bound, if any."""
        alias = alias_key(alias)
        conn = self._aliases.get(alias)
        return None if conn is None else (conn, self._bound_at[alias])

    def unbind_alias(self, alias: str) -> None:
        """Take ``alias`` from its holder here (another worker's earlier binding wins)."""
        alias = alias_key(alias)
        conn = self._aliases.pop(alias, None)
        if conn is None:
            return
        del self._bound_at[alias]
        conn.aliases.discard(alias)
        if self._observer is not None:
            self._observer.alias_unbound(alias, conn)

    def contest(self, alias: str) -> None:
        """Another worker has a claim for ``alias``: probe its holder here, if any."""
        holder = self._aliases.get(alias_key(alias))
        if holder is not None and not holder.closed and self._prober is not None:
            self._prober.probe(holder)

    # -- removal -------------------------------------------------------------

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` (idempotent); calls ``on_removed`` once."""
        keys = self._keys.pop(conn, None)
        if keys is None:
            return
        for key in keys:
            if self._by_key.get(key) is conn:
                del self._by_key[key]
        for alias in list(self._claims_of.get(conn, ())):
            self._drop_claim(alias)
        released = [alias for alias in conn.aliases if self._aliases.get(alias) is conn]
        for alias in released:
            del self._aliases[alias]
            del self._bound_at[alias]
        if self._observer is not None:
            self._observer.connection_removed(conn)
        for alias in released:
            self.alias_released(alias)
        if self._on_removed is not None:
            try:
                self._on_removed(conn)
            except Exception:
                logger.exception("%s on_connection_closed failed", conn.id)
