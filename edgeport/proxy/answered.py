"""Where the 2xx of a forwarded INVITE goes once its transactions are over.

RFC 3261 §17.1.1.2 ends an INVITE client transaction with its first 2xx,
and the server transaction upstream ends as it sends it; the callee then
retransmits the 2xx until it has its ACK, and a forking proxy downstream may
send more 2xx on the same branch. Those arrive as stray responses (RFC 3261
§16.7: "If none found, the element MUST process the response as a stateless
proxy"). edgeport relays them only where it already sent that INVITE's first
2xx: when the first 2xx arrives it records, under the branch edgeport wrote
in its own Via, the caller's address and connection, for as long as RFC 6026
keeps an INVITE client transaction accepting 2xx (Timer M, 64*T1). A stray
response is never routed by a Via a peer wrote (``received``/``rport`` in a
response are the peer's words), and one that matches no record is dropped.

Sans-IO: time comes from the caller; bounded in entries.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Generic, TypeVar

MAX_ANSWERED_INVITES: Final = 20_000  # 64*T1 (32 s) of answered calls at 600 calls/s

D = TypeVar("D")


class AnsweredInvites(Generic[D]):
    """Branch of edgeport's Via -> the upstream destination of that INVITE's 2xx."""

    def __init__(self, keep_for: float, *, max_entries: int = MAX_ANSWERED_INVITES) -> None:
        if keep_for <= 0 or max_entries < 1:
            raise ValueError("keep_for must be positive and max_entries at least 1")
        self._keep_for = keep_for
        self._max_entries = max_entries
        # In the order they were recorded: every entry lives as long, so the
        # expired ones are at the front.
        self._entries: OrderedDict[str, tuple[D, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, branch: str, destination: D, now: float) -> None:
        """The first 2xx of the INVITE sent with ``branch`` went to ``destination``."""
        self._expire(now)
        self._entries[branch] = (destination, now + self._keep_for)
        self._entries.move_to_end(branch)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def destination(self, branch: str, now: float) -> D | None:
        """Where a later 2xx on ``branch`` goes; None when edgeport sent no such INVITE."""
        self._expire(now)
        entry = self._entries.get(branch)
        return entry[0] if entry is not None else None

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            branch, (_, until) = next(iter(entries.items()))
            if until > now:
                return
            del entries[branch]
