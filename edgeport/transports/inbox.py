"""The bounded inbox between the transports and the message handler: what waits, what is shed.

Sans-IO. Every received message is put in one of two lanes by a look at its
first bytes, before any parsing (:func:`lane_of`):

- ``ADMITTED``: responses (``SIP/2.0 ``), ``ACK`` and ``CANCEL``. They finish
  work edgeport already took on (a forwarded request's answers, the end of
  an INVITE transaction), so they are kept whenever possible: their lane is
  large (``InboxLimits.max_admitted``) and only a full lane drops the
  newcomer.
- ``NEW``: every other request; new work, or a retransmission of it. This lane
  is where overload is shed, cheaply, without parsing:

  * at most ``max_new`` wait; a newcomer to a full lane pushes out the OLDEST
    one (over UDP its client has been retransmitting it: T1 = 0.5 s);
  * one that waited longer than ``max_new_wait`` seconds is shed when it
    reaches the head of the queue (the same reason);
  * once the oldest waiting new request has waited ``lifo_after`` seconds
    (edgeport is behind), the NEWEST new request is taken first and the
    admitted lane goes before the new one: a fresh request answered at once
    beats a stale one whose client is about to give up or has retransmitted.

Otherwise messages are taken in arrival order across both lanes, so an
INVITE and the CANCEL right behind it reach the handler in that order.
``pop`` can be told that a lane has no free handler; that lane is skipped.

Bytes are bounded too, by the inbox share of the memory budget
(:mod:`edgeport.memory`): each waiting message is charged its size and a
fixed overhead. A message that does not fit pushes out the oldest new
requests until it does (reason ``memory``); when no new request is left to
push out, the newcomer itself is shed.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from edgeport.memory import INBOX_MESSAGE_OVERHEAD_BYTES

if TYPE_CHECKING:
    from edgeport.memory import Account
    from edgeport.transports.base import InboundMessage

MAX_NEW: Final = 2048  # new requests waiting
MAX_ADMITTED: Final = 8192  # responses, ACKs and CANCELs waiting
MAX_NEW_WAIT: Final = 0.5  # seconds; RFC 3261 T1: a UDP client has retransmitted by then
LIFO_AFTER: Final = 0.1  # seconds the oldest new request waited before the newest go first


class Lane(enum.Enum):
    ADMITTED = "admitted"
    NEW = "new"


_ADMITTED_STARTS: Final = (b"SIP/2.0 ", b"ACK ", b"CANCEL ")


def lane_of(data: bytes) -> Lane:
    """The lane of a raw message, from its start line's first bytes (no parsing).

    Methods are case-sensitive (RFC 3261 §7.1), so the byte comparison is
    exact. Empty lines before the start line are skipped (§7.5). Anything that
    is not a response, ACK or CANCEL is new work, malformed input included.
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    return Lane.ADMITTED if data.startswith(_ADMITTED_STARTS) else Lane.NEW


@dataclass(frozen=True, slots=True)
class InboxLimits:
    """How much may wait in each lane, and when the new lane counts as behind."""

    max_new: int = MAX_NEW
    max_admitted: int = MAX_ADMITTED
    max_new_wait: float = MAX_NEW_WAIT
    lifo_after: float = LIFO_AFTER

    def __post_init__(self) -> None:
        if self.max_new < 1 or self.max_admitted < 1:
            raise ValueError("each lane must hold at least one message")
        if self.max_new_wait <= 0 or self.lifo_after < 0:
            raise ValueError("max_new_wait must be positive and lifo_after not negative")


@dataclass(frozen=True, slots=True)
class Shed:
    """A message the inbox gave up on, and why (``full`` or ``stale``)."""

    message: InboundMessage
    lane: Lane
    reason: str


class Inbox:
    """Two bounded FIFO lanes; ``offer`` to add, ``pop`` to take the next message."""

    def __init__(self, limits: InboxLimits | None = None, account: Account | None = None) -> None:
        self.limits = limits or InboxLimits()
        self._account = account  # the inbox share of the memory budget, if any
        # (arrival number, message); the number orders the two lanes.
        self._new: collections.deque[tuple[int, InboundMessage]] = collections.deque()
        self._admitted: collections.deque[tuple[int, InboundMessage]] = collections.deque()
        self._count = 0
        # The most messages that ever waited at once, per lane.
        self.peaks: dict[Lane, int] = {Lane.NEW: 0, Lane.ADMITTED: 0}

    def __len__(self) -> int:
        return len(self._new) + len(self._admitted)

    def waiting(self, lane: Lane) -> int:
        return len(self._new) if lane is Lane.NEW else len(self._admitted)

    def offer(self, message: InboundMessage, lane: Lane) -> list[Shed]:
        """Queue ``message``; returns what was shed to respect the bounds (usually nothing).

        A full new lane sheds its oldest message and keeps ``message``; a full
        admitted lane sheds ``message`` itself. A message whose bytes do not
        fit the budget sheds the oldest new requests first, then itself.
        """
        self._count += 1
        shed: list[Shed] = []
        if lane is Lane.NEW:
            if len(self._new) >= self.limits.max_new:
                shed.append(self._shed_oldest_new("full"))
        elif len(self._admitted) >= self.limits.max_admitted:
            return [Shed(message, Lane.ADMITTED, "full")]
        account = self._account
        if account is not None:
            cost = _cost(message)
            while not account.take(cost):
                if not self._new:
                    return [*shed, Shed(message, lane, "memory")]
                shed.append(self._shed_oldest_new("memory"))
        if lane is Lane.NEW:
            self._new.append((self._count, message))
            self.peaks[Lane.NEW] = max(self.peaks[Lane.NEW], len(self._new))
        else:
            self._admitted.append((self._count, message))
            self.peaks[Lane.ADMITTED] = max(self.peaks[Lane.ADMITTED], len(self._admitted))
        return shed

    def _shed_oldest_new(self, reason: str) -> Shed:
        message = self._new.popleft()[1]
        self._release(message)
        return Shed(message, Lane.NEW, reason)

    def _release(self, message: InboundMessage) -> None:
        if self._account is not None:
            self._account.give_back(_cost(message))

    def behind(self, now: float) -> bool:
        """True when the oldest waiting new request has waited ``lifo_after`` seconds."""
        return bool(self._new) and now - self._new[0][1].received_at >= self.limits.lifo_after

    def pop(
        self, now: float, *, new_ok: bool = True, admitted_ok: bool = True
    ) -> tuple[tuple[InboundMessage, Lane] | None, list[Shed]]:
        """The next message to handle (None when there is none to take) and what went stale.

        ``new_ok``/``admitted_ok`` False: that lane has no free handler, skip it.
        """
        stale: list[Shed] = []
        limit = self.limits.max_new_wait
        while self._new and now - self._new[0][1].received_at > limit:
            stale.append(self._shed_oldest_new("stale"))
        take_new = new_ok and bool(self._new)
        take_admitted = admitted_ok and bool(self._admitted)
        if not (take_new or take_admitted):
            return None, stale
        behind = self.behind(now)
        if take_admitted and (not take_new or behind or self._admitted[0][0] < self._new[0][0]):
            taken = (self._admitted.popleft()[1], Lane.ADMITTED)
        elif behind:
            taken = (self._new.pop()[1], Lane.NEW)
        else:
            taken = (self._new.popleft()[1], Lane.NEW)
        self._release(taken[0])
        return taken, stale


def _cost(message: InboundMessage) -> int:
    return len(message.data) + INBOX_MESSAGE_OVERHEAD_BYTES
