"""Requests a worker counted toward the flood limit and has not yet told its siblings.

Sans-IO: every call takes the current time as a number.

With worker processes the kernel spreads one source's datagrams over every
worker (SO_REUSEPORT hashes the 4-tuple, so a source using many ports lands
on all of them). For the flood limit to hold for the whole edgeport, each
worker reports what it counted and adds what the others report to its own
counters (:meth:`edgeport.protection.flood.FloodLimiter.count`).

Only what matters travels, so a spoofed-source flood cannot blow up the
exchange: a source is reported at once when ``push_at`` of its requests
are unreported (``push_at`` is a quarter of the limit divided by the
number of workers, so every other worker together hides at most a quarter
of the limit), and otherwise in a periodic report when it has at least
``significant`` requests unreported. A report names at most ``limit``
sources, the busiest first; counts older than the flood window are
dropped. At most ``max_tracked`` sources wait (the oldest goes first).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from typing import Final

MIN_SIGNIFICANT: Final = 2  # requests: a source seen once is never reported on its own


class _Unreported:
    __slots__ = ("count", "since")

    def __init__(self, since: float) -> None:
        self.count = 0
        self.since = since


class UnreportedCounts:
    """Per source, the requests counted here since the last report to the other workers."""

    def __init__(self, *, requests: int, window: float, workers: int, max_tracked: int) -> None:
        if requests < 1 or window <= 0 or workers < 2 or max_tracked < 1:
            raise ValueError("requests, window and max_tracked positive, workers at least 2")
        self.window = window
        self.push_at = max(1, math.ceil(requests / (4 * workers)))
        self.significant = max(MIN_SIGNIFICANT, math.ceil(self.push_at / 2))
        self.max_tracked = max_tracked
        self._pending: OrderedDict[str, _Unreported] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def note(self, source: str, now: float) -> bool:
        """Count one request from ``source``; True when it is due to be reported now."""
        entry = self._pending.get(source)
        if entry is None:
            if len(self._pending) >= self.max_tracked:
                self._pending.popitem(last=False)
            entry = self._pending[source] = _Unreported(now)
        entry.count += 1
        return entry.count >= self.push_at

    def forget(self, source: str) -> None:
        """``source`` was banned: what it sent before no longer matters."""
        self._pending.pop(source, None)

    def take(self, now: float, limit: int) -> list[tuple[str, int]]:
        """The sources to report now, busiest first (at most ``limit``); they start afresh."""
        stale = now - self.window
        due: list[tuple[int, str]] = []
        for source, entry in list(self._pending.items()):
            if entry.since < stale:
                del self._pending[source]
            elif entry.count >= self.significant or entry.count >= self.push_at:
                due.append((entry.count, source))
        report = heapq.nlargest(limit, due)
        for _count, source in report:
            del self._pending[source]
        return [(source, count) for count, source in report]
