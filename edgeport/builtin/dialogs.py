"""Bounded memory of the dialogs the built-in processor routed.

Two tables, both bounded in entries (least recently used dropped first) and
in idle time, and driven by an injected clock:

- :class:`DialogTargets`: Call-ID -> the hops (host, port) that a trusted
  party gave for that dialog (its Contact, RFC 3261 §12.1, and the
  Record-Route values in front of it). In-dialog requests go to a remote
  target learnt from the other side; the relay rule (``relay.py``) allows
  these hops for that Call-ID only.
- :class:`TrustedForwards`: (Call-ID, CSeq number, method) -> the host a
  request was forwarded to, for requests sent to a destination the relay
  rule trusts; a response is believed to come from that destination only
  when it answers one of these.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

MAX_DIALOGS: Final = 50_000  # Call-IDs with remembered hops
MAX_HOPS_PER_DIALOG: Final = 8  # a Contact and Record-Routes per side, forked answers
# A call may last hours with no request in between; a BYE must still find its hop.
DIALOG_IDLE_SECONDS: Final = 24 * 3600.0
MAX_TRUSTED_FORWARDS: Final = 100_000  # requests awaiting their responses
# Timer C (RFC 3261 §16.6 step 11) is "greater than 3 minutes"; 2xx retransmissions follow.
FORWARD_IDLE_SECONDS: Final = 300.0

K = TypeVar("K")
V = TypeVar("V")

Hop = tuple[str, int]  # normalised host, port
ForwardKey = tuple[str, int, str]  # Call-ID, CSeq number, method


class RecentTable(Generic[K, V]):
    """A mapping that keeps at most ``max_entries``, each for ``idle_seconds`` since last use."""

    def __init__(
        self, clock: Callable[[], float], *, max_entries: int, idle_seconds: float
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._idle = idle_seconds
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # oldest use first

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value, marked as just used; None when absent or idle too long."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries[key] = (now, entry[1])
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        self._expire(now)
        self._entries[key] = (now, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Ordered by last use: the expired entries are at the front.
        while self._entries:
            used, _ = next(iter(self._entries.values()))
            if now - used < self._idle:
                return
            self._entries.popitem(last=False)


class DialogTargets:
    """Call-ID -> the hops a trusted party gave for that dialog."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_dialogs: int = MAX_DIALOGS,
        idle_seconds: float = DIALOG_IDLE_SECONDS,
    ) -> None:
        self._table: RecentTable[str, list[Hop]] = RecentTable(
            clock, max_entries=max_dialogs, idle_seconds=idle_seconds
        )

    def __len__(self) -> int:
        return len(self._table)

    def remember(self, call_id: str, hops: Iterable[Hop]) -> None:
        """Add hops to the dialog; past :data:`MAX_HOPS_PER_DIALOG` the oldest go."""
        new = list(dict.fromkeys(hops))
        if not call_id or not new:
            return
        known = self._table.get(call_id) or []
        merged = [hop for hop in known if hop not in new] + new
        self._table.put(call_id, merged[-MAX_HOPS_PER_DIALOG:])

    def allows(self, call_id: str, hop: Hop) -> bool:
        known = self._table.get(call_id) if call_id else None
        return known is not None and hop in known


class TrustedForwards:
    """(Call-ID, CSeq, method) of requests sent to a trusted destination -> its host."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_entries: int = MAX_TRUSTED_FORWARDS,
        idle_seconds: float = FORWARD_IDLE_SECONDS,
    ) -> None:
        self._table: RecentTable[ForwardKey, str] = RecentTable(
            clock, max_entries=max_entries, idle_seconds=idle_seconds
        )

    def __len__(self) -> int:
        return len(self._table)

    def record(self, key: ForwardKey, host: str) -> None:
        self._table.put(key, host)

    def host_for(self, key: ForwardKey) -> str | None:
        return self._table.get(key)
