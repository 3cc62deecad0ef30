"""What the transaction tables may hold, and what makes room.

Memory is bounded twice: each table holds at most ``max_transactions``
entries (``MAX_TRANSACTIONS`` by default), and every entry is charged what it
holds to the transactions share of the memory budget (:mod:`edgeport.memory`:
``transaction_cost`` while it may still need its request,
``lingering_transaction_cost`` once it only absorbs retransmissions). When
either bound is reached, transactions that only linger to absorb
retransmissions (their final response sent: Completed, Confirmed) are
dropped, oldest first; only when none is left is a new transaction refused
with ``TransactionTableFull`` (the proxy answers 503). A server
transaction's source may hold at most a quarter of the share
(``SOURCE_SHARE``): a source past it has its own lingering transactions
dropped first, and then its new ones refused, so one flooding source cannot
take the table from the others.

The lingering transactions are kept in two lists, oldest first: all of them,
and those of each source. The lists run through the entries' own fields
(``older``/``newer``, ``source_older``/``source_newer``), circular, so adding
and dropping one costs a few assignments and no allocation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from edgeport.memory import SOURCE_SHARE

if TYPE_CHECKING:
    from collections.abc import Callable, Sized

    from edgeport.memory import Account
    from edgeport.transaction_layer.entries import Entry

__all__ = ["MAX_TRANSACTIONS", "TransactionBudget", "TransactionTableFull"]

logger = logging.getLogger(__name__)

# Per table (server, client). A transaction lives at most about 64*T1 + T4
# seconds (Timer C for a forwarded INVITE: a few minutes), so at 100 new
# transactions a second a table holds a few thousand entries.
MAX_TRANSACTIONS: Final = 50_000  # transactions

D = TypeVar("D")


class TransactionTableFull(Exception):
    """No room for another transaction; answer 503 statelessly."""


class TransactionBudget(Generic[D]):
    """Charges entries to the budget and makes room by dropping lingering ones.

    ``evict(entry)`` takes a lingering entry out of everything (its table,
    its timers); it gives the entry back here through :meth:`release`.
    """

    def __init__(
        self,
        *,
        max_transactions: int,
        account: Account | None,
        evict: Callable[[Entry[D]], None],
        on_evicted: Callable[[], object] | None = None,
    ) -> None:
        if max_transactions < 1:
            raise ValueError("max_transactions must be at least 1")
        self._max_transactions = max_transactions
        self._account = account
        self._evict = evict
        self._on_evicted = on_evicted
        self._source_used: dict[str, int] = {}
        # The oldest lingering entry, overall and of each source.
        self._oldest: Entry[D] | None = None
        self._oldest_of: dict[str, Entry[D]] = {}
        self.evicted = 0  # lingering transactions dropped to make room

    def make_room(self, table: Sized, cost: int, source: str | None) -> None:
        """Drop lingering transactions until a new one of ``cost`` fits in ``table``
        and in the budget; raises TransactionTableFull when it cannot."""
        while len(table) >= self._max_transactions:
            if not self._evict_oldest(None):
                raise TransactionTableFull(f"{len(table)} transactions")
        account = self._account
        if account is None:
            return
        if source is not None:
            share = int(account.limit * SOURCE_SHARE)
            while self._source_used.get(source, 0) + cost > share:
                if not self._evict_oldest(source):
                    raise TransactionTableFull(f"{source} holds its share of the memory budget")
        while not account.fits(cost):
            if not self._evict_oldest(None):
                account.refused += 1
                raise TransactionTableFull("the transactions memory budget is spent")

    def charge(self, entry: Entry[D], cost: int, source: str | None) -> None:
        """A new entry, for which :meth:`make_room` made room."""
        entry.cost = cost
        entry.source = source
        if self._account is not None:
            self._account.take(cost)
        if source is not None:
            self._source_used[source] = self._source_used.get(source, 0) + cost

    def resize(self, entry: Entry[D], cost: int) -> None:
        """``entry`` holds ``cost`` bytes now. A response must go out whatever it
        costs: the next new transaction makes room."""
        delta = cost - entry.cost
        entry.cost = cost
        if self._account is not None:
            if delta > 0:
                self._account.used += delta
            else:
                self._account.give_back(-delta)
        source = entry.source
        if source is not None:
            self._source_used[source] = self._source_used.get(source, 0) + delta

    def linger(self, entry: Entry[D]) -> None:
        """``entry`` only absorbs retransmissions from now on: it may make room."""
        oldest = self._oldest
        if oldest is None:
            entry.older = entry.newer = entry
            self._oldest = entry
        else:
            newest = oldest.older
            assert newest is not None
            newest.newer = entry
            entry.older = newest
            entry.newer = oldest
            oldest.older = entry
        source = entry.source
        if source is None:
            return
        oldest = self._oldest_of.get(source)
        if oldest is None:
            entry.source_older = entry.source_newer = entry
            self._oldest_of[source] = entry
        else:
            newest = oldest.source_older
            assert newest is not None
            newest.source_newer = entry
            entry.source_older = newest
            entry.source_newer = oldest
            oldest.source_older = entry

    def release(self, entry: Entry[D]) -> None:
        """Give back what ``entry`` was charged; it lingers no more."""
        if self._account is not None:
            self._account.give_back(entry.cost)
        source = entry.source
        if source is not None:
            left = self._source_used.get(source, 0) - entry.cost
            if left > 0:
                self._source_used[source] = left
            else:
                self._source_used.pop(source, None)
        entry.cost = 0
        if entry.newer is not None:
            self._unlink(entry)

    def _unlink(self, entry: Entry[D]) -> None:
        older, newer = entry.older, entry.newer
        assert older is not None
        assert newer is not None
        if newer is entry:
            self._oldest = None
        else:
            older.newer = newer
            newer.older = older
            if self._oldest is entry:
                self._oldest = newer
        entry.older = entry.newer = None
        source = entry.source
        if source is None:
            return
        older, newer = entry.source_older, entry.source_newer
        assert older is not None
        assert newer is not None
        if newer is entry:
            del self._oldest_of[source]
        else:
            older.source_newer = newer
            newer.source_older = older
            if self._oldest_of.get(source) is entry:
                self._oldest_of[source] = newer
        entry.source_older = entry.source_newer = None

    def _evict_oldest(self, source: str | None) -> bool:
        entry = self._oldest if source is None else self._oldest_of.get(source)
        if entry is None:
            return False
        logger.debug("%s dropped to make room", entry)
        self.evicted += 1
        if self._on_evicted is not None:
            self._on_evicted()
        self._evict(entry)
        return True
