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

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from types import TracebackType


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

    def turn(self, call_id: str) -> _Turn:
        """``async with turns.turn(call_id)``: wait for the requests of ``call_id`` that
        came before; the first needs no wait."""
        return _Turn(self._calls, call_id)


class _Turn:
    """One request's turn (an async context manager, without a generator's cost)."""

    __slots__ = ("_call_id", "_calls", "_turns")

    def __init__(self, calls: dict[str, _Turns], call_id: str) -> None:
        self._calls = calls
        self._call_id = call_id

    async def __aenter__(self) -> None:
        turns = self._calls.get(self._call_id)
        if turns is None:
            turns = self._calls[self._call_id] = _Turns()
        self._turns = turns
        turns.users += 1
        try:
            # The usual case, the only request of its call: no pass through
            # the scheduler on the message path.
            turns.lock.acquire_nowait()
        except trio.WouldBlock:
            try:
                await turns.lock.acquire()
            except BaseException:
                self._leave()
                raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._turns.lock.release()
        self._leave()

    def _leave(self) -> None:
        turns = self._turns
        turns.users -= 1
        if turns.users == 0 and self._calls.get(self._call_id) is turns:
            del self._calls[self._call_id]
