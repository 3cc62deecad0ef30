"""What DNS said, kept for as long as it may be believed; and the targets that failed lately.

:class:`DnsCache` keeps each answer (records, or none: a negative answer or
a failure) for its TTL, bounded in entries with the least recently used
dropped first. :class:`AvoidList` remembers targets that failed (RFC 3263
§4.3) for a while, bounded the same way. Both read time from the clock
they are given (trio's in the server, a fake one in tests).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.dns.resolver import Question, Records, Target

# RFC 2308 §5: a negative answer lives for the SOA's MINIMUM (or TTL, the
# smaller); without a SOA, this long. A failure (timeout, SERVFAIL, REFUSED)
# is kept briefly so a dead server does not stall every call (RFC 2308 §7.1
# allows up to five minutes).
DEFAULT_NEGATIVE_TTL: Final = 30.0  # seconds
MAX_NEGATIVE_TTL: Final = 300.0  # seconds, whatever the SOA says
FAILURE_TTL: Final = 5.0  # seconds
MAX_TTL: Final = 86_400.0  # seconds, a day: longer TTLs are cut to it
MAX_AVOIDED: Final = 1_024  # failed targets remembered at once


@dataclass(frozen=True, slots=True)
class Cached:
    records: Records
    expires_at: float
    negative: bool  # no records: NXDOMAIN, no data, or a failure


class DnsCache:
    """Answers by question, for their TTL; at most ``max_entries``, LRU first out."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: collections.OrderedDict[Question, Cached] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, question: Question) -> Cached | None:
        """The live answer to ``question``, if one is kept (it becomes the most recent)."""
        entry = self._entries.get(question)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[question]
            return None
        self._entries.move_to_end(question)
        return entry

    def put(self, question: Question, records: Records, ttl: float) -> Cached:
        """Keep ``records`` (empty: a negative answer) for ``ttl`` seconds."""
        ttl = min(max(ttl, 0.0), MAX_TTL)
        entry = Cached(records, self._clock() + ttl, negative=not records)
        if ttl > 0:
            self._entries[question] = entry
            self._entries.move_to_end(question)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return entry


class AvoidList:
    """Targets that failed, avoided for ``avoid_for`` seconds (at most MAX_AVOIDED)."""

    def __init__(self, avoid_for: float, clock: Callable[[], float]) -> None:
        self._avoid_for = avoid_for
        self._clock = clock
        self._until: collections.OrderedDict[Target, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def failed(self, target: Target) -> None:
        if self._avoid_for <= 0:
            return
        self._until[target] = self._clock() + self._avoid_for
        self._until.move_to_end(target)
        while len(self._until) > MAX_AVOIDED:
            self._until.popitem(last=False)

    def avoided(self, target: Target) -> bool:
        until = self._until.get(target)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[target]
            return False
        return True

    def reorder(self, targets: list[Target]) -> list[Target]:
        """The targets with the avoided ones moved to the end, each group in its order.

        An avoided target is still tried last: a trunk whose every address
        failed a moment ago is better tried again than not at all.
        """
        fine = [target for target in targets if not self.avoided(target)]
        return fine + [target for target in targets if target not in fine]
