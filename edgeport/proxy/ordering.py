"""Requests of one call go downstream in the order they came (sans the clock).

Each request is handled in a task of its own, and the tasks of an ACK and
the BYE right behind it (a caller that hangs up at once) race through their
processor calls: the BYE could reach the callee first, and a UAS still
waiting for its ACK may take the BYE for a protocol error. So every request
of a Call-ID but CANCEL takes a turn, in arrival order, and holds it until it
is sent downstream or answered. CANCEL takes none: it must overtake the
INVITE it cancels.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class _Turns:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = trio.StrictFIFOLock()
        self.users = 0


class CallTurns:
    """One FIFO lock per Call-ID with a request in progress; none kept for idle calls."""

    def __init__(self) -> None:
        self._calls: dict[str, _Turns] = {}

    def __len__(self) -> int:
        return len(self._calls)

    @asynccontextmanager
    async def turn(self, call_id: str) -> AsyncIterator[None]:
        """Wait for the requests of ``call_id`` that came before; the first needs no wait."""
        turns = self._calls.get(call_id)
        if turns is None:
            turns = self._calls[call_id] = _Turns()
        turns.users += 1
        try:
            try:
                # The usual case, the only request of its call: no pass through
                # the scheduler on the message path.
                turns.lock.acquire_nowait()
            except trio.WouldBlock:
                await turns.lock.acquire()
            try:
                yield
            finally:
                turns.lock.release()
        finally:
            turns.users -= 1
            if turns.users == 0:
                del self._calls[call_id]
