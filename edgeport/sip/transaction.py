"""SIP transactions for a stateful proxy, sans-IO: events in, actions out.

RFC 3261 §17 (figures 5-8): the INVITE and non-INVITE client and server
transactions; §17.1.1.3 (the ACK a client transaction builds for a non-2xx
final response); §17.1.3 and §17.2.3 (matching messages to transactions);
§9.1 and §9.2 (building a CANCEL, finding the INVITE it cancels); §16.6
step 11 (Timer C, the proxy's INVITE timeout).

Each transaction is a table, in the h11 manner: ``(state, trigger) -> new
state``. A trigger missing from the table is absorbed (a stale timer, a
retransmitted final response, an ACK in CONFIRMED). The caller feeds
messages, timer expiries and transport errors, and carries out the actions
returned: ``Send``, ``StartTimer``/``CancelTimer``, ``Deliver`` (to the TU),
``TimedOut``, ``TransportFailed``, ``Terminated``. ``Terminated`` means every
timer of the transaction is void. A timer whose duration is zero (Timers D,
I, J and K on reliable transports) is not started: the transaction passes
straight through that wait state to TERMINATED.

2xx responses to INVITE follow RFC 3261 as written (not RFC 6026): they
terminate both the client and the server transaction, and the proxy forwards
2xx retransmissions and the ACK for a 2xx statelessly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, TypeAlias

from edgeport.sip.message import Headers, Request, Response, make_response
from edgeport.sip.timers import Timer, TimerConfig

if TYPE_CHECKING:
    from edgeport.sip.message import Message

__all__ = [
    "MAGIC_COOKIE",
    "Action",
    "CancelTimer",
    "ClientKey",
    "ClientTransaction",
    "Deliver",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Send",
    "ServerKey",
    "ServerTransaction",
    "StartTimer",
    "Terminated",
    "TimedOut",
    "TransactionError",
    "TransactionState",
    "TransportFailed",
    "build_ack",
    "build_cancel",
    "client_key",
    "matching_invite_key",
    "server_key",
]

# RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this
# specification MUST always begin with the characters "z9hG4bK"."
MAGIC_COOKIE: Final = "z9hG4bK"

# RFC 3261 §8.1.1.6: a request a UAC builds sets Max-Forwards; 70 is the SHOULD value.
DEFAULT_MAX_FORWARDS: Final = 70  # RFC 3261 §8.1.1.6: SHOULD be 70


class TransactionError(Exception):
    """The caller asked for a move the transaction's state does not allow."""


class TransactionState(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    """Pass ``message`` to the transport; ``retransmission`` when it was sent before."""

    message: Message
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start ``timer`` to fire after ``delay`` seconds, replacing a running one."""

    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Deliver:
    """Client transaction: hand ``response`` to the TU."""

    response: Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The transaction gave up waiting.

    Client: Timer B/F fired before a final response (RFC 3261 §17.1.1.2,
    §17.1.2.2), so the proxy answers 408 upstream (RFC 3261 §16.7 step 10).
    Timer C fired (RFC 3261 §16.8): in Calling the transaction ends as for
    Timer B; in Proceeding the proxy "MUST generate a CANCEL request matching
    that transaction" and the transaction waits 64*T1 more for the 487 (which
    it acknowledges and delivers) before it ends.
    Server: Timer H fired, the ACK never came (RFC 3261 §17.2.1).
    """

    timer: Timer


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not deliver a message of this transaction (RFC 3261 §17.1.4, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over; forget it and every timer it started."""


Action: TypeAlias = (
    Send | StartTimer | CancelTimer | Deliver | TimedOut | TransportFailed | Terminated
)


class _Trigger(enum.Enum):
    """What happened, besides a timer firing."""

    REQUEST = "request"  # the request again: a retransmission
    ACK = "ACK"
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    TRANSPORT_ERROR = "transport error"


_Event: TypeAlias = _Trigger | Timer
_Table: TypeAlias = dict[tuple[TransactionState, _Event], TransactionState]

_S = TransactionState
_T = _Trigger


def _response_trigger(response: Response) -> _Trigger:
    code = response.status_code
    if code < 200:
        return _T.PROVISIONAL
    if code < 300:
        return _T.SUCCESS
    return _T.FAILURE


# ---------------------------------------------------------------- base


class _Transaction:
    _TABLE: ClassVar[_Table]
    _INITIAL: ClassVar[TransactionState]

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self._INITIAL
        self._started = False
        # The current interval of the retransmit timer (A, E or G).
        self._interval = timers.t1

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.request.method} {self.state.name}"
            f" reliable={self.reliable}>"
        )

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

    def _step(self, event: _Event, message: Message | None = None) -> list[Action]:
        new_state = self._TABLE.get((self.state, event))
        if new_state is None:
            return []
        old_state = self.state
        self.state = new_state
        actions = self._actions(old_state, event, message)
        if self.state is _S.TERMINATED:
            actions.append(Terminated())
        return actions

    def _actions(
        self, old_state: TransactionState, event: _Event, message: Message | None
    ) -> list[Action]:
        raise NotImplementedError

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


# ---------------------------------------------------------------- client side


class ClientTransaction(_Transaction):
    """Common part of the two client transactions (RFC 3261 §17.1)."""

    def start(self) -> list[Action]:
        """Send the request and start the timers (Calling or Trying)."""
        raise NotImplementedError

    def on_response(self, response: Response) -> list[Action]:
        """A response matched this transaction (RFC 3261 §17.1.3)."""
        return self._step(_response_trigger(response), response)


_INVITE_CLIENT: Final[_Table] = {
    (_S.CALLING, Timer.A): _S.CALLING,
    (_S.CALLING, Timer.B): _S.TERMINATED,
    (_S.CALLING, Timer.C): _S.TERMINATED,
    # Proceeding: the TU cancels and Timer C guards the wait for the 487; the
    # second expiry terminates (see ``InviteClientTransaction._actions``).
    (_S.PROCEEDING, Timer.C): _S.PROCEEDING,
    (_S.CALLING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.CALLING, _T.SUCCESS): _S.TERMINATED,
    (_S.PROCEEDING, _T.SUCCESS): _S.TERMINATED,
    (_S.CALLING, _T.FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _T.FAILURE): _S.COMPLETED,
    (_S.COMPLETED, _T.FAILURE): _S.COMPLETED,
    (_S.COMPLETED, Timer.D): _S.TERMINATED,
    (_S.CALLING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _T.TRANSPORT_ERROR): _S.TERMINATED,
}


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1, figure 5, with the proxy's Timer C (§16.6 step 11)."""

    _TABLE = _INVITE_CLIENT
    _INITIAL = _S.CALLING

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(request, reliable=reliable, timers=timers)
        self.ack: Request | None = None
        # Timer C fired in Proceeding: the TU cancels, Timer C now guards the wait.
        self.timer_c_expired = False

    def start(self) -> list[Action]:
        self._mark_started()
        # RFC 3261 §17.1.1.2: "If an unreliable transport is being used, the client
        # transaction MUST start timer A with a value of T1. ... For any transport,
        # the client transaction MUST start timer B with a value of 64*T1 seconds"
        return [
            Send(self.request),
            *self._start_retransmit(Timer.A),
            StartTimer(Timer.B, self.timers.duration(Timer.B, reliable=self.reliable)),
            StartTimer(Timer.C, self.timers.timer_c),
        ]

    def _actions(
        self, old_state: TransactionState, event: _Event, message: Message | None
    ) -> list[Action]:
        match event:
            case Timer.A:
                # "the client transaction MUST retransmit the request by passing it
                # to the transport layer, and MUST reset the timer with a value of 2*T1"
                return [Send(self.request, retransmission=True), self._next_retransmit(Timer.A)]
            case Timer.C if old_state is _S.PROCEEDING and self.timer_c_expired:
                # The CANCEL got no final response either: give up.
                self.state = _S.TERMINATED
                return []
            case Timer.C if old_state is _S.PROCEEDING:
                # RFC 3261 §16.8: "If timer C should fire, the proxy MUST either reset
                # the timer with any value it chooses, or terminate the client
                # transaction. If the client transaction has received a provisional
                # response, the proxy MUST generate a CANCEL request matching that
                # transaction." The TU sends the CANCEL; the 487 still comes here.
                self.timer_c_expired = True
                return [TimedOut(Timer.C), StartTimer(Timer.C, self.timers.transaction_timeout)]
            case Timer.B | Timer.C:
                return [TimedOut(event)]
            case Timer.D:
                return []
            case _T.TRANSPORT_ERROR:
                # The TU has its final response already when the ACK fails to go.
                return [] if old_state is _S.COMPLETED else [TransportFailed()]
        assert isinstance(message, Response)
        actions: list[Action] = []
        if old_state is _S.CALLING:
            # "the client transaction SHOULD NOT retransmit the request any longer"
            actions += [CancelTimer(Timer.A), CancelTimer(Timer.B)]
        match event:
            case _T.PROVISIONAL:
                # RFC 3261 §16.7 step 2: "For 101-199 the proxy MUST reset timer C"
                if message.status_code > 100 and not self.timer_c_expired:
                    actions.append(StartTimer(Timer.C, self.timers.timer_c))
                actions.append(Deliver(message))
            case _T.SUCCESS:
                actions.append(Deliver(message))
            case _T.FAILURE if old_state is _S.COMPLETED:
                # "Any retransmissions of the final response that are received while
                # in the "Completed" state MUST cause the ACK to be re-passed to the
                # transport layer for retransmission, but the newly received response
                # MUST NOT be passed up to the TU."
                assert self.ack is not None
                actions.append(Send(self.ack, retransmission=True))
            case _T.FAILURE:
                self.ack = build_ack(self.request, message)
                actions += [
                    CancelTimer(Timer.C),
                    Send(self.ack),
                    Deliver(message),
                    *self._wait(Timer.D),
                ]
        return actions


_NON_INVITE_CLIENT: Final[_Table] = {
    (_S.TRYING, Timer.E): _S.TRYING,
    (_S.PROCEEDING, Timer.E): _S.PROCEEDING,
    (_S.TRYING, Timer.F): _S.TERMINATED,
    (_S.PROCEEDING, Timer.F): _S.TERMINATED,
    (_S.TRYING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.TRYING, _T.SUCCESS): _S.COMPLETED,
    (_S.PROCEEDING, _T.SUCCESS): _S.COMPLETED,
    (_S.TRYING, _T.FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _T.FAILURE): _S.COMPLETED,
    (_S.COMPLETED, Timer.K): _S.TERMINATED,
    (_S.TRYING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _T.TRANSPORT_ERROR): _S.TERMINATED,
}


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2, figure 6."""

    _TABLE = _NON_INVITE_CLIENT
    _INITIAL = _S.TRYING

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE client transaction cannot send {request.method}")
        super().__init__(request, reliable=reliable, timers=timers)

    def start(self) -> list[Action]:
        self._mark_started()
        # RFC 3261 §17.1.2.2: "The "Trying" state is entered when the TU initiates a
        # new client transaction with a request. When entering this state, the client
        # transaction SHOULD set timer F to fire in 64*T1 seconds. ... If an
        # unreliable transport is in use, the client transaction MUST set timer E to
        # fire in T1 seconds."
        return [
            Send(self.request),
            *self._start_retransmit(Timer.E),
            StartTimer(Timer.F, self.timers.duration(Timer.F, reliable=self.reliable)),
        ]

    def _actions(
        self, old_state: TransactionState, event: _Event, message: Message | None
    ) -> list[Action]:
        match event:
            case Timer.E if old_state is _S.PROCEEDING:
                # "If Timer E fires while in the "Proceeding" state, the request MUST be
                # passed to the transport layer for retransmission, and Timer E MUST be
                # reset with a value of T2 seconds."
                self._interval = self.timers.t2
                return [
                    Send(self.request, retransmission=True),
                    StartTimer(Timer.E, self._interval),
                ]
            case Timer.E:
                # "If timer E fires while still in this state, the timer is reset, but
                # this time with a value of MIN(2*T1, T2)." -- doubling up to T2.
                return [Send(self.request, retransmission=True), self._next_retransmit(Timer.E)]
            case Timer.F:
                return [TimedOut(Timer.F)]
            case Timer.K:
                return []
            case _T.TRANSPORT_ERROR:
                return [TransportFailed()]
            case _T.PROVISIONAL:
                assert isinstance(message, Response)
                return [Deliver(message)]
        assert isinstance(message, Response)
        # A final response: "the client transaction MUST transition to the
        # "Completed" state" and "MUST set Timer K to fire in T4 seconds for
        # unreliable transports, and zero seconds for reliable transports."
        return [CancelTimer(Timer.E), CancelTimer(Timer.F), Deliver(message), *self._wait(Timer.K)]


# ---------------------------------------------------------------- server side


class ServerTransaction(_Transaction):
    """Common part of the two server transactions (RFC 3261 §17.2)."""

    _RESPONDING: ClassVar[frozenset[TransactionState]]

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.last_response: Response | None = None

    @property
    def can_send_response(self) -> bool:
        """True while the TU may still send a response through this transaction."""
        return self.state in self._RESPONDING

    def start(self) -> list[Action]:
        self._mark_started()
        return []

    def on_request(self, request: Request) -> list[Action]:
        """A request matched this transaction (RFC 3261 §17.2.3): a retransmission or an ACK."""
        trigger = _T.ACK if request.method == "ACK" else _T.REQUEST
        return self._step(trigger, request)

    def send_response(self, response: Response) -> list[Action]:
        """The TU sends ``response``; raises TransactionError once a final response went."""
        trigger = _response_trigger(response)
        if (self.state, trigger) not in self._TABLE:
            raise TransactionError(f"{self!r} cannot send {response.status_code}")
        return self._step(trigger, response)

    def _resend_last(self) -> list[Action]:
        if self.last_response is None:
            return []
        return [Send(self.last_response, retransmission=True)]


_INVITE_SERVER: Final[_Table] = {
    (_S.PROCEEDING, _T.REQUEST): _S.PROCEEDING,
    (_S.PROCEEDING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _T.SUCCESS): _S.TERMINATED,
    (_S.PROCEEDING, _T.FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _T.REQUEST): _S.COMPLETED,
    (_S.COMPLETED, Timer.G): _S.COMPLETED,
    (_S.COMPLETED, Timer.H): _S.TERMINATED,
    (_S.COMPLETED, _T.ACK): _S.CONFIRMED,
    (_S.COMPLETED, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.CONFIRMED, Timer.I): _S.TERMINATED,
}


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1, figure 7; the proxy answers 100 Trying itself (§16.2)."""

    _TABLE = _INVITE_SERVER
    _INITIAL = _S.PROCEEDING
    _RESPONDING = frozenset({_S.PROCEEDING})

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE server transaction cannot serve {request.method}")
        super().__init__(request, reliable=reliable, timers=timers)

    def start(self) -> list[Action]:
        self._mark_started()
        # RFC 3261 §17.2.1: "the server transaction MUST generate a 100 (Trying)
        # response unless it knows that the TU will generate a provisional or
        # final response within 200 ms". A proxy cannot know that (§16.2).
        trying = make_response(self.request, 100)
        self.last_response = trying
        return [Send(trying)]

    def _actions(
        self, old_state: TransactionState, event: _Event, message: Message | None
    ) -> list[Action]:
        match event:
            case _T.REQUEST:
                # "If a request retransmission is received while in the "Proceeding"
                # state, the most recent provisional response that was received from
                # the TU MUST be passed to the transport layer for retransmission."
                # In "Completed": "the server MUST pass the final response to the
                # transport layer for retransmission".
                return self._resend_last()
            case Timer.G:
                # "If timer G fires, the response is passed to the transport layer once
                # more for retransmission, and timer G is set to fire in MIN(2*T1, T2)"
                return [*self._resend_last(), self._next_retransmit(Timer.G)]
            case Timer.H:
                # "the server transaction MUST transition to the "Terminated" state, and
                # MUST indicate to the TU that a transaction failure has occurred."
                return [TimedOut(Timer.H)]
            case _T.ACK:
                # "The purpose of the "Confirmed" state is to absorb any additional ACK
                # messages". Timer I: "T4 seconds for unreliable transports, and zero
                # seconds for reliable transports".
                return [CancelTimer(Timer.G), CancelTimer(Timer.H), *self._wait(Timer.I)]
            case Timer.I:
                return []
            case _T.TRANSPORT_ERROR:
                return [TransportFailed()]
        assert isinstance(message, Response)
        self.last_response = message
        if event is _T.FAILURE:
            # "For unreliable transports, timer G is set to fire in T1 seconds ...
            # For any transport, timer H MUST be set to fire in 64*T1 seconds."
            timer_h = self.timers.duration(Timer.H, reliable=self.reliable)
            return [Send(message), *self._start_retransmit(Timer.G), StartTimer(Timer.H, timer_h)]
        # A 1xx keeps the transaction in "Proceeding"; a 2xx terminates it:
        # "If, while in the "Proceeding" state, the TU passes a 2xx response to the
        # server transaction, the server transaction MUST pass this response to the
        # transport layer for transmission. ... The server transaction MUST then
        # transition to the "Terminated" state."
        return [Send(message)]


_NON_INVITE_SERVER: Final[_Table] = {
    (_S.TRYING, _T.REQUEST): _S.TRYING,
    (_S.TRYING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.TRYING, _T.SUCCESS): _S.COMPLETED,
    (_S.TRYING, _T.FAILURE): _S.COMPLETED,
    (_S.TRYING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _T.REQUEST): _S.PROCEEDING,
    (_S.PROCEEDING, _T.PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _T.SUCCESS): _S.COMPLETED,
    (_S.PROCEEDING, _T.FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _T.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _T.REQUEST): _S.COMPLETED,
    (_S.COMPLETED, Timer.J): _S.TERMINATED,
    (_S.COMPLETED, _T.TRANSPORT_ERROR): _S.TERMINATED,
}


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2, figure 8."""

    _TABLE = _NON_INVITE_SERVER
    _INITIAL = _S.TRYING
    _RESPONDING = frozenset({_S.TRYING, _S.PROCEEDING})

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE server transaction cannot serve {request.method}")
        super().__init__(request, reliable=reliable, timers=timers)

    def _actions(
        self, old_state: TransactionState, event: _Event, message: Message | None
    ) -> list[Action]:
        match event:
            case _T.REQUEST:
                # "Once in the "Trying" state, any further request retransmissions are
                # discarded." In "Proceeding" and "Completed" the last response is
                # passed to the transport layer again.
                return [] if old_state is _S.TRYING else self._resend_last()
            case Timer.J:
                return []
            case _T.TRANSPORT_ERROR:
                return [TransportFailed()]
        assert isinstance(message, Response)
        self.last_response = message
        if event is _T.PROVISIONAL:
            return [Send(message)]
        # "When the server transaction enters the "Completed" state, it MUST set
        # Timer J to fire in 64*T1 seconds for unreliable transports, and zero
        # seconds for reliable transports."
        return [Send(message), *self._wait(Timer.J)]


# ---------------------------------------------------------------- building requests


def _hop_request(original: Request, method: str, to_value: str) -> Request:
    headers = Headers()
    headers.add("Via", str(original.top_via))
    for route in original.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
    from_value = original.headers.get("From")
    if from_value is None:
        raise ValueError("the original request has no From header")
    headers.add("From", from_value)
    headers.add("To", to_value)
    headers.add("Call-ID", original.call_id)
    headers.add("CSeq", f"{original.cseq.seq} {method}")
    return Request(method, original.uri, headers)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a non-2xx final response.

    RFC 3261 §17.1.1.3: "The ACK request constructed by the client transaction
    MUST contain values for the Call-ID, From, and Request-URI that are equal
    to the values of those header fields in the request passed to the
    transport by the client transaction ... The To header field in the ACK
    MUST equal the To header field in the response being acknowledged ...
    The ACK MUST contain a single Via header field, and this MUST be equal to
    the top Via header field of the original request. The CSeq header field
    in the ACK MUST contain the same value for the sequence number as was
    present in the original request, but the method parameter MUST be equal
    to "ACK". ... If the INVITE request whose response is being acknowledged
    had Route header fields, those header fields MUST appear in the ACK."
    """
    to_value = response.headers.get("To")
    if to_value is None:
        raise ValueError("the response has no To header")
    return _hop_request(invite, "ACK", to_value)


def build_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite``.

    RFC 3261 §9.1: "The Request-URI, Call-ID, To, the numeric part of CSeq,
    and From header fields in the CANCEL request MUST be identical to those
    in the request being cancelled, including tags. A CANCEL constructed by a
    client MUST have only a single Via header field value matching the top
    Via value in the request being cancelled." and "If the request being
    cancelled contains a Route header field, the CANCEL request MUST include
    that Route header field's values."
    """
    to_value = invite.headers.get("To")
    if to_value is None:
        raise ValueError("the INVITE has no To header")
    return _hop_request(invite, "CANCEL", to_value)


# ---------------------------------------------------------------- matching

ServerKey: TypeAlias = tuple[str | int | None, ...]
ClientKey: TypeAlias = tuple[str, str]


def _server_key(request: Request, method: str) -> ServerKey:
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        # RFC 3261 §17.2.3: "1. the branch parameter in the request is equal to the
        # one in the top Via header field of the request that created the
        # transaction, and 2. the sent-by value in the top Via of the request is
        # equal to the one in the request that created the transaction, and 3. the
        # method of the request matches the one that created the transaction,
        # except for ACK, where the method of the request that created the
        # transaction is INVITE."
        return ("3261", branch, via.host.lower(), via.port, method)
    # RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq and top Via.
    # The To tag of an ACK is the one of the response, not of the INVITE, so
    # it is left out of INVITE keys (the rest still pins the transaction).
    to_tag = None if method == "INVITE" else request.to.tag
    return (
        "2543",
        str(request.uri),
        to_tag,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        via.transport.upper(),
        via.host.lower(),
        via.port,
        branch,
        method,
    )


def server_key(request: Request) -> ServerKey:
    """The server transaction ``request`` belongs to; an ACK maps to its INVITE.

    Raises SipParseError when the request lacks the headers matching needs.
    """
    method = "INVITE" if request.method == "ACK" else request.method
    return _server_key(request, method)


def matching_invite_key(cancel: Request) -> ServerKey:
    """The key of the INVITE server transaction ``cancel`` cancels.

    RFC 3261 §9.2: "the CANCEL request ... matches a transaction ... using the
    procedures of Section 17.2.3 ... except that the method of the request
    that created the transaction is INVITE".
    """
    return _server_key(cancel, "INVITE")


def client_key(message: Request | Response) -> ClientKey:
    """The client transaction of a request sent, or of a response received.

    RFC 3261 §17.1.3: the response's top Via branch matches the request's, and
    "the method of the CSeq matches the method of the request that created the
    transaction. The method is needed since a CANCEL request constitutes a
    different transaction, but shares the same value of the branch parameter."
    """
    branch = message.top_via.branch or ""
    method = message.method if isinstance(message, Request) else message.cseq.method
    return (branch, method)
