"""The transactions' timers on trio's clock: one heap, one task.

A timer is started for an owner (a transaction's record) and fires once,
unless it is cancelled or started again first. The heap holds (deadline,
number) pairs; the number names the timer (its low bits) and maps to its
owner while it runs. A heap entry whose number maps to nothing any more was
cancelled or replaced: it stays until it comes due or the heap is compacted,
whichever is first, and keeps no owner alive meanwhile.

An owner keeps the number of its running timer of each kind in a field of
its own (``FIELD_OF``): a retransmit timer A, E or G; a transaction timeout
B, F or H; the proxy's Timer C; a wait D, I, J or K. Each transaction uses
one timer of each kind at most (RFC 3261 §17: an INVITE client transaction
A, B, C and D; an INVITE server transaction G, H and I; a non-INVITE client
transaction E, F and K; a non-INVITE server transaction J), so a field
holds one timer's number, or 0.
"""

from __future__ import annotations

import heapq
import math
from typing import Final, Generic, Protocol, TypeVar

import trio

from edgeport.sip.timers import Timer

__all__ = ["FIELD_OF", "TimerHeap", "TimerOwner"]

WAIT_TICK: Final = 0.1  # seconds: waits end on this grid


class TimerOwner(Protocol):
    """The fields a timer owner gives the heap: 0, or its running timer's number."""

    retransmit_timer: int
    timeout_timer: int
    proxy_timer: int
    wait_timer: int


OwnerT = TypeVar("OwnerT", bound=TimerOwner)

# The heap is rebuilt once it holds this many cancelled timers and they are
# more than half of it.
COMPACT_MIN_STALE: Final = 1024  # heap entries

_TIMERS: Final = tuple(Timer)
_INDEX: Final = {timer: index for index, timer in enumerate(_TIMERS)}
_TIMER_BITS: Final = 4  # the low bits of a number: the timer's index in _TIMERS
_TIMER_MASK: Final = (1 << _TIMER_BITS) - 1
assert len(_TIMERS) <= _TIMER_MASK
# The owner's field for each timer, by kind.
FIELD_OF: Final = {
    Timer.A: "retransmit_timer",
    Timer.E: "retransmit_timer",
    Timer.G: "retransmit_timer",
    Timer.B: "timeout_timer",
    Timer.F: "timeout_timer",
    Timer.H: "timeout_timer",
    Timer.C: "proxy_timer",
    Timer.D: "wait_timer",
    Timer.I: "wait_timer",
    Timer.J: "wait_timer",
    Timer.K: "wait_timer",
}
_FIELDS: Final = tuple(sorted(set(FIELD_OF.values())))
_FIELD_BY_INDEX: Final = tuple(FIELD_OF[timer] for timer in _TIMERS)
# Timer -> (its owner's field, its index): one lookup where both are needed.
_SPEC: Final = {timer: (FIELD_OF[timer], _INDEX[timer]) for timer in _TIMERS}


class TimerHeap(Generic[OwnerT]):
    """Deadlines of running timers, and the task side: ``wait`` and ``pop_due``."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        # Number -> owner, for the timers that run: the heap itself holds numbers only.
        self._running: dict[int, OwnerT] = {}
        self._count = 0
        self._stale = 0  # heap entries whose timer was cancelled or replaced
        self._wakeup: trio.CancelScope | None = None

    def __len__(self) -> int:
        """Heap entries, cancelled ones not yet dropped included."""
        return len(self._heap)

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self, owner: OwnerT, timer: Timer, delay: float) -> None:
        """(Re)start ``timer`` of ``owner`` to fire after ``delay`` seconds (a running
        timer of its kind is replaced)."""
        field, index = _SPEC[timer]
        replaced: int = getattr(owner, field)
        if replaced:
            del self._running[replaced]
            self._stale += 1
        self._count += 1
        number = (self._count << _TIMER_BITS) | index
        setattr(owner, field, number)
        self._running[number] = owner
        deadline = trio.current_time() + delay
        if field == "wait_timer":
            # A wait (D, I, J, K) only ends a transaction: rounded up to the next
            # tick, the ones of a busy second end together, in one wake-up.
            deadline = math.ceil(deadline / WAIT_TICK) * WAIT_TICK
        heapq.heappush(self._heap, (deadline, number))
        wakeup = self._wakeup
        if wakeup is not None and deadline < wakeup.deadline:
            wakeup.deadline = deadline

    def cancel(self, owner: OwnerT, timer: Timer) -> None:
        field, index = _SPEC[timer]
        number: int = getattr(owner, field)
        if number and number & _TIMER_MASK == index:
            setattr(owner, field, 0)
            del self._running[number]
            self._stale += 1

    def cancel_all(self, owner: OwnerT) -> None:
        """Every timer of ``owner`` (a transaction that ends)."""
        for field in _FIELDS:
            number: int = getattr(owner, field)
            if number:
                setattr(owner, field, 0)
                del self._running[number]
                self._stale += 1
        self._compact()

    def expire(self, owner: OwnerT, timer: Timer) -> bool:
        """Have a running ``timer`` of ``owner`` come due now; False when it does not run."""
        field, index = _SPEC[timer]
        number: int = getattr(owner, field)
        if not number or number & _TIMER_MASK != index:
            return False
        self.start(owner, timer, 0.0)
        return True

    async def wait(self) -> None:
        """Sleep until the earliest deadline (one started meanwhile may come first)."""
        scope = trio.CancelScope(deadline=self._heap[0][0] if self._heap else math.inf)
        self._wakeup = scope
        try:
            with scope:
                await trio.sleep_forever()
        finally:
            self._wakeup = None

    def pop_due(self, now: float) -> tuple[OwnerT, Timer] | None:
        """A timer due at ``now``, no longer running; None when there is none."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            number = heapq.heappop(heap)[1]
            owner = self._running.pop(number, None)
            if owner is None:
                self._stale -= 1
                continue
            index = number & _TIMER_MASK
            setattr(owner, _FIELD_BY_INDEX[index], 0)
            return owner, _TIMERS[index]
        return None

    def _compact(self) -> None:
        if self._stale < COMPACT_MIN_STALE or 2 * self._stale < len(self._heap):
            return
        running = self._running
        self._heap = [item for item in self._heap if item[1] in running]
        heapq.heapify(self._heap)
        self._stale = 0
