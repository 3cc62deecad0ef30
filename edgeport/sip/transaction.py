"""SIP transactions for a stateful proxy, sans-IO: events in, actions out.

RFC 3261 §17 (figures 5-8): the INVITE and non-INVITE client and server
transactions, with the proxy's Timer C (§16.6 step 11). Their shared part
is :mod:`.transaction_base`, their actions :mod:`.transaction_actions`,
matching messages to them (§17.1.3, §17.2.3, §9.2) :mod:`.transaction_keys`,
and the ACK and CANCEL built from a request sent (§17.1.1.3, §9.1)
:mod:`.hop_requests`; every name of those is importable from here too.

Each transaction is a table, in the h11 manner: ``(state, trigger) -> new
state``. A trigger missing from the table is absorbed (a stale timer, a
retransmitted final response, an ACK in CONFIRMED). The caller feeds
messages, timer expiries and transport errors, and carries out the actions
returned: ``Send`` (or ``Resend``), ``StartTimer``/``CancelTimer``,
``Deliver`` (to the TU), ``TimedOut``, ``TransportFailed``,
``Terminated``. ``Terminated`` means every
timer of the transaction is void. A timer whose duration is zero (Timers D,
I, J and K on reliable transports) is not started: the transaction passes
straight through that wait state to TERMINATED.

A transaction keeps the messages it may send again (its request, its last
response, its ACK) unless the caller keeps their bytes
(``caller_keeps_bytes=True``): it then keeps a message only while it needs it
itself (an INVITE server transaction its request until the 100 Trying is
built, an INVITE client transaction its request until the ACK is), and asks
for a retransmission with ``Resend``: the caller passes the bytes of the last
message it sent to the transport again. A retransmission is always of the
last message sent: the last response (server), the request or the ACK
(client).

2xx responses to INVITE follow RFC 3261 as written (not RFC 6026): they
terminate both the client and the server transaction, and the proxy forwards
2xx retransmissions and the ACK for a 2xx statelessly.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, Final

from edgeport.sip.hop_requests import DEFAULT_MAX_FORWARDS, build_ack, build_cancel
from edgeport.sip.message import Request, Response, make_response
from edgeport.sip.timers import Timer, TimerConfig
from edgeport.sip.transaction_actions import (
    Action,
    CancelTimer,
    Deliver,
    Resend,
    Send,
    StartTimer,
    Terminated,
    TimedOut,
    TransportFailed,
)
from edgeport.sip.transaction_base import (
    Event,
    Table,
    Transaction,
    TransactionError,
    TransactionState,
    Trigger,
    response_trigger,
)
from edgeport.sip.transaction_keys import (
    MAGIC_COOKIE,
    ClientKey,
    ServerKey,
    client_key,
    key_size,
    matching_invite_key,
    server_key,
)

if TYPE_CHECKING:
    from edgeport.sip.message import Message

# The shared part (:mod:`.transaction_base`), the actions
# (:mod:`.transaction_actions`), the keys (:mod:`.transaction_keys`) and the
# requests built for a hop (:mod:`.hop_requests`) are named here too.
__all__ = [
    "DEFAULT_MAX_FORWARDS",
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
    "Resend",
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
    "key_size",
    "matching_invite_key",
    "server_key",
]


_S = TransactionState
_T = Trigger


# ---------------------------------------------------------------- client side


class ClientTransaction(Transaction):
    """Common part of the two client transactions (RFC 3261 §17.1)."""

    __slots__ = ()

    @abc.abstractmethod
    def start(self) -> list[Action]:
        """Send the request and start the timers (Calling or Trying)."""

    def on_response(self, response: Response) -> list[Action]:
        """A response matched this transaction (RFC 3261 §17.1.3)."""
        return self._step(response_trigger(response), response)


_INVITE_CLIENT: Final[Table] = {
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
    _REQUEST_NEEDED_IN = frozenset({_S.CALLING, _S.PROCEEDING})

    __slots__ = ("ack", "timer_c_expired")

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(
            request, reliable=reliable, timers=timers, caller_keeps_bytes=caller_keeps_bytes
        )
        # The ACK for a non-2xx final response (not kept when the caller keeps its bytes).
        self.ack: Request | None = None
        # Timer C fired in Proceeding: the TU cancels, Timer C now guards the wait.
        self.timer_c_expired = False

    def start(self) -> list[Action]:
        self._mark_started()
        # RFC 3261 §17.1.1.2: "If an unreliable transport is being used, the client
        # transaction MUST start timer A with a value of T1. ... For any transport,
        # the client transaction MUST start timer B with a value of 64*T1 seconds"
        return [
            Send(self._sent_request()),
            *self._start_retransmit(Timer.A),
            StartTimer(Timer.B, self.timers.duration(Timer.B, reliable=self.reliable)),
            StartTimer(Timer.C, self.timers.timer_c),
        ]

    def _actions(
        self, old_state: TransactionState, event: Event, message: Message | None
    ) -> list[Action]:
        match event:
            case Timer.A:
                # "the client transaction MUST retransmit the request by passing it
                # to the transport layer, and MUST reset the timer with a value of 2*T1"
                return [self._again(self.request), self._next_retransmit(Timer.A)]
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
                actions.append(self._again(self.ack))
            case _T.FAILURE:
                ack = build_ack(self._sent_request(), message)
                if not self.caller_keeps_bytes:
                    self.ack = ack
                actions += [
                    CancelTimer(Timer.C),
                    Send(ack),
                    Deliver(message),
                    *self._wait(Timer.D),
                ]
        return actions


_NON_INVITE_CLIENT: Final[Table] = {
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

    __slots__ = ()

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE client transaction cannot send {request.method}")
        super().__init__(
            request, reliable=reliable, timers=timers, caller_keeps_bytes=caller_keeps_bytes
        )

    def start(self) -> list[Action]:
        self._mark_started()
        request = self._sent_request()
        self._drop_request()  # only ever sent again
        # RFC 3261 §17.1.2.2: "The "Trying" state is entered when the TU initiates a
        # new client transaction with a request. When entering this state, the client
        # transaction SHOULD set timer F to fire in 64*T1 seconds. ... If an
        # unreliable transport is in use, the client transaction MUST set timer E to
        # fire in T1 seconds."
        return [
            Send(request),
            *self._start_retransmit(Timer.E),
            StartTimer(Timer.F, self.timers.duration(Timer.F, reliable=self.reliable)),
        ]

    def _actions(
        self, old_state: TransactionState, event: Event, message: Message | None
    ) -> list[Action]:
        match event:
            case Timer.E if old_state is _S.PROCEEDING:
                # "If Timer E fires while in the "Proceeding" state, the request MUST be
                # passed to the transport layer for retransmission, and Timer E MUST be
                # reset with a value of T2 seconds."
                self._interval = self.timers.t2
                return [self._again(self.request), StartTimer(Timer.E, self._interval)]
            case Timer.E:
                # "If timer E fires while still in this state, the timer is reset, but
                # this time with a value of MIN(2*T1, T2)." -- doubling up to T2.
                return [self._again(self.request), self._next_retransmit(Timer.E)]
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


class ServerTransaction(Transaction):
    """Common part of the two server transactions (RFC 3261 §17.2)."""

    _RESPONDING: ClassVar[frozenset[TransactionState]]

    __slots__ = ("_responded", "last_response")

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        super().__init__(
            request, reliable=reliable, timers=timers, caller_keeps_bytes=caller_keeps_bytes
        )
        # The last response sent (not kept when the caller keeps its bytes).
        self.last_response: Response | None = None
        self._responded = False

    @property
    def can_send_response(self) -> bool:
        """True while the TU may still send a response through this transaction."""
        return self.state in self._RESPONDING

    def start(self) -> list[Action]:
        self._mark_started()
        self._drop_request()
        return []

    def on_request(self, request: Request) -> list[Action]:
        """A request matched this transaction (RFC 3261 §17.2.3): a retransmission or an ACK."""
        trigger = _T.ACK if request.method == "ACK" else _T.REQUEST
        return self._step(trigger, request)

    def send_response(self, response: Response) -> list[Action]:
        """The TU sends ``response``; raises TransactionError once a final response went."""
        trigger = response_trigger(response)
        if (self.state, trigger) not in self._TABLE:
            raise TransactionError(f"{self!r} cannot send {response.status_code}")
        return self._step(trigger, response)

    def _sent(self, response: Response) -> Send:
        """Send ``response``, the last response from now on."""
        self._responded = True
        if not self.caller_keeps_bytes:
            self.last_response = response
        return Send(response)

    def _resend_last(self) -> list[Action]:
        if not self._responded:
            return []
        return [self._again(self.last_response)]


_INVITE_SERVER: Final[Table] = {
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

    __slots__ = ()

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        if request.method != "INVITE":
            raise ValueError(f"an INVITE server transaction cannot serve {request.method}")
        super().__init__(
            request, reliable=reliable, timers=timers, caller_keeps_bytes=caller_keeps_bytes
        )

    def start(self) -> list[Action]:
        self._mark_started()
        # RFC 3261 §17.2.1: "the server transaction MUST generate a 100 (Trying)
        # response unless it knows that the TU will generate a provisional or
        # final response within 200 ms". A proxy cannot know that (§16.2).
        trying = make_response(self._sent_request(), 100)
        self._drop_request()
        return [self._sent(trying)]

    def _actions(
        self, old_state: TransactionState, event: Event, message: Message | None
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
        send = self._sent(message)
        if event is _T.FAILURE:
            # "For unreliable transports, timer G is set to fire in T1 seconds ...
            # For any transport, timer H MUST be set to fire in 64*T1 seconds."
            timer_h = self.timers.duration(Timer.H, reliable=self.reliable)
            return [send, *self._start_retransmit(Timer.G), StartTimer(Timer.H, timer_h)]
        # A 1xx keeps the transaction in "Proceeding"; a 2xx terminates it:
        # "If, while in the "Proceeding" state, the TU passes a 2xx response to the
        # server transaction, the server transaction MUST pass this response to the
        # transport layer for transmission. ... The server transaction MUST then
        # transition to the "Terminated" state."
        return [send]


_NON_INVITE_SERVER: Final[Table] = {
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

    __slots__ = ()

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerConfig,
        caller_keeps_bytes: bool = False,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"a non-INVITE server transaction cannot serve {request.method}")
        super().__init__(
            request, reliable=reliable, timers=timers, caller_keeps_bytes=caller_keeps_bytes
        )

    def _actions(
        self, old_state: TransactionState, event: Event, message: Message | None
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
        send = self._sent(message)
        if event is _T.PROVISIONAL:
            return [send]
        # "When the server transaction enters the "Completed" state, it MUST set
        # Timer J to fire in 64*T1 seconds for unreliable transports, and zero
        # seconds for reliable transports."
        return [send, *self._wait(Timer.J)]
