"""Transactions by destination, so a closed connection fails its own at once.

Only the destinations ``fails_whole`` accepts are indexed (a stream
connection: its transactions fail together when it closes, RFC 3261 §17.1.4,
§17.2.4). A closed connection then costs one lookup and the transactions it
fails, never a scan of the tables: connection churn costs nothing per live
transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.transaction_layer.entries import Entry

__all__ = ["DestinationIndex"]

D = TypeVar("D")


class DestinationIndex(Generic[D]):
    """Destination -> its live transactions, for the destinations that fail whole."""

    def __init__(self, fails_whole: Callable[[D], bool]) -> None:
        self._fails_whole = fails_whole
        self._by_destination: dict[D, set[Entry[D]]] = {}

    def add(self, entry: Entry[D]) -> None:
        if self._fails_whole(entry.destination):
            self._by_destination.setdefault(entry.destination, set()).add(entry)

    def discard(self, entry: Entry[D]) -> None:
        destination = entry.destination
        if not self._fails_whole(destination):
            return  # never indexed
        entries = self._by_destination.get(destination)
        if entries is not None:
            entries.discard(entry)
            if not entries:
                del self._by_destination[destination]

    def entries(self, destination: D) -> list[Entry[D]]:
        """The live transactions towards ``destination`` (a copy)."""
        return list(self._by_destination.get(destination, ()))
