"""What the SIP transactions share, sans-IO (RFC 3261 §17): their states, the
triggers they move on, and the walk of their ``(state, event) -> new state``
tables; the four machines are in :mod:`edgeport.sip.transaction`."""

from __future__ import annotations

import abc
import enum
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from edgeport.sip.timers import Timer
from edgeport.sip.transaction_actions import Action, Resend, Send, StartTimer, Terminated

if TYPE_CHECKING:
    from edgeport.sip.message import Message, Request, Response
    from edgeport.sip.timers import TimerConfig

__all__ = [
    "Event",
    "Table",
    "Transaction",
    "TransactionError",
    "TransactionState",
    "Trigger",
    "response_trigger",
]


class TransactionError(Exception):
    """The caller asked for a move the transaction's state does not allow."""


class TransactionState(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"

    # Members are singletons: hashed by identity, in C, rather than by
    # Enum's own __hash__ (Python code run on every table lookup).
    __hash__ = object.__hash__


class Trigger(enum.Enum):
    """What happened, besides a timer firing."""

    REQUEST = "request"  # the request again: a retransmission
    ACK = "ACK"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    TRANSPORT_ERROR = "transport error"

    __hash__ = object.__hash__  # as TransactionState's


# What a machine moves on, and its table: (state, event) -> new state.
Event: TypeAlias = Trigger | Timer
Table: TypeAlias = dict[tuple[TransactionState, Event], TransactionState]

_S = TransactionState
_T = Trigger


def response_trigger(response: Response) -> Trigger:
    """The trigger a response is, by its class."""
    code = response.status_code
    if code < 200:
        return _T.PROVISIONAL
    if code < 300:
        return _T.SUCCESS
    return _T.FAILURE


class Transaction(abc.ABC):
    """What the four transactions share: the table walk, the request they may keep,
    and the timers of their wait and retransmit states."""

    _TABLE: ClassVar[Table]
    _INITIAL: ClassVar[TransactionState]
    # Where the transaction still builds something from its request (the ACK).
    _REQUEST_NEEDED_IN: ClassVar[frozenset[TransactionState]] = frozenset()

    __slots__ = (
        "_interval",
        "_started",
        "caller_keeps_bytes",
        "method",
        "reliable",
        "request",
        "state",
        "timers",
    )

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        # None once the transaction no longer needs it (``caller_keeps_bytes``).
        self.request: Request | None = request
        self.method = request.method
        self.reliable = reliable
        self.timers = timers
        self.caller_keeps_bytes = caller_keeps_bytes
        self.state = self._INITIAL
        self._started = False
        # The current interval of the retransmit timer (A, E or G).
        self._interval = timers.t1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.name} reliable={self.reliable}>"

    @property
    def terminated(self) -> bool:
        return self.state is _S.TERMINATED

    def on_timer(self, timer: Timer) -> list[Action]:
        """``timer`` fired; a timer the current state does not run is ignored."""
        return self._step(timer)

    def on_transport_error(self) -> list[Action]:
        """The transport failed to deliver a message of this transaction."""
        return self._step(_T.TRANSPORT_ERROR)

    def _mark_started(self) -> None:
        if self._started:
            raise TransactionError(f"{self!r} already started")
        self._started = True

    def _again(self, message: Message | None) -> Send | Resend:
        """The retransmission of ``message``, the last message this transaction sent."""
        if self.caller_keeps_bytes:
            return Resend()
        assert message is not None
        return Send(message, retransmission=True)

    def _sent_request(self) -> Request:
        """The request, for a transaction that sends it (it is kept while needed)."""
        assert self.request is not None
        return self.request

    def _step(self, event: Event, message: Message | None = None) -> list[Action]:
        new_state = self._TABLE.get((self.state, event))
        if new_state is None:
            return []
        old_state = self.state
        self.state = new_state
        actions = self._actions(old_state, event, message)
        if self.state is _S.TERMINATED:
            actions.append(Terminated())
        if self.caller_keeps_bytes and self.request is not None:
            self._drop_request()
        return actions

    @abc.abstractmethod
    def _actions(
        self, old_state: TransactionState, event: Event, message: Message | None
    ) -> list[Action]:
        """What moving from ``old_state`` on ``event`` does."""

    def _drop_request(self) -> None:
        """With the caller keeping the bytes, the request goes once nothing is built from it."""
        if self.caller_keeps_bytes and self.state not in self._REQUEST_NEEDED_IN:
            self.request = None

    def _wait(self, timer: Timer) -> list[Action]:
        """Start a wait-state timer, or leave at once when its duration is zero."""
        delay = self.timers.duration(timer, reliable=self.reliable)
        if delay <= 0:
            self.state = _S.TERMINATED
            return []
        return [StartTimer(timer, delay)]

    def _start_retransmit(self, timer: Timer) -> list[Action]:
        if self.reliable:
            return []
        self._interval = self.timers.duration(timer, reliable=False)
        return [StartTimer(timer, self._interval)]

    def _next_retransmit(self, timer: Timer) -> StartTimer:
        self._interval = self.timers.next_interval(timer, self._interval)
        return StartTimer(timer, self._interval)
