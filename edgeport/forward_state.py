"""The life of one request edgeport may forward, as an explicit state machine (sans-IO).

A request the processor may route downstream is in one of these states:

=============== ==========================================================
ROUTING         the processor is deciding; nothing went downstream
SENDING         the first send downstream is under way
CALLING         sent; no response yet
PROCEEDING      a provisional response came back (a CANCEL may now be sent)
CANCEL_WAITING  the caller cancelled after the send but before any
                provisional response: RFC 3261 §9.1 forbids a CANCEL until
                one arrives, so it waits
CANCELLED       a CANCEL went downstream; the final response that follows
                is absorbed (a 2xx is acknowledged and ended with a BYE)
ABANDONED       cancelled while the processor was still routing: it is
                never sent
DONE            the caller has its final answer and nothing more is sent
=============== ==========================================================

A target that fails before anything of it reached the caller (RFC 3263
§4.3) takes the forward back to SENDING, towards the next target DNS gave;
once the caller cancelled, no new target is tried.

:meth:`ForwardMachine.handle` takes an :class:`Event` and returns the
:class:`Action` values the caller must carry out, in order. A pair the table
does not list changes nothing and returns no action: a response after the
end, a second CANCEL, a routing reply for an abandoned request. Only the
states in :data:`UPSTREAM_WAITING` still owe the caller its final response.
"""

from __future__ import annotations

import enum
from typing import Final


class ForwardState(enum.Enum):
    ROUTING = "routing"
    SENDING = "sending"
    CALLING = "calling"
    PROCEEDING = "proceeding"
    CANCEL_WAITING = "cancel-waiting"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"
    DONE = "done"


class Event(enum.Enum):
    ROUTED = "routed"  # the processor said: forward it
    ANSWERED = "answered"  # the request was answered without a forward (or routing failed)
    SENT = "sent"  # the first send downstream returned
    SEND_FAILED = "send-failed"  # the first send downstream could not be made
    PROVISIONAL = "provisional"  # a 1xx above 100
    FINAL_2XX = "final-2xx"
    FINAL = "final"  # a final response other than 2xx
    CANCEL = "cancel"  # the caller sent a CANCEL
    TIMEOUT = "timeout"  # Timer B/F, or Timer C for an INVITE
    TRANSPORT_ERROR = "transport-error"  # the next hop cannot be reached any more
    RETRY = "retry"  # auth on behalf sends the request again, with credentials
    # The current target failed (transport error, no response in time, 503) and
    # DNS gave another one (RFC 3263 §4.3). Only raised while no provisional
    # response was relayed upstream: the caller has seen nothing of the target.
    TARGET_FAILED = "target-failed"


class Action(enum.Enum):
    RELAY = "relay"  # send the response upstream
    ANSWER_487 = "answer-487"  # answer the caller's request 487 Request Terminated
    ANSWER_408 = "answer-408"  # answer 408 Request Timeout (RFC 3261 §16.7 step 10)
    ANSWER_503 = "answer-503"  # answer 503, the next hop is unreachable
    SEND_CANCEL = "send-cancel"  # CANCEL the request downstream
    END_DIALOG = "end-dialog"  # ACK and BYE a 2xx that nobody upstream will see
    NEXT_TARGET = "next-target"  # send the request to the next target, a new branch


_S = ForwardState
_E = Event
_A = Action

_TRANSITIONS: Final[dict[tuple[ForwardState, Event], tuple[ForwardState, tuple[Action, ...]]]] = {
    (_S.ROUTING, _E.ROUTED): (_S.SENDING, ()),
    (_S.ROUTING, _E.ANSWERED): (_S.DONE, ()),
    (_S.ROUTING, _E.CANCEL): (_S.ABANDONED, (_A.ANSWER_487,)),
    (_S.SENDING, _E.SENT): (_S.CALLING, ()),
    (_S.SENDING, _E.SEND_FAILED): (_S.DONE, (_A.ANSWER_503,)),
    (_S.SENDING, _E.PROVISIONAL): (_S.PROCEEDING, (_A.RELAY,)),
    (_S.SENDING, _E.FINAL_2XX): (_S.DONE, (_A.RELAY,)),
    (_S.SENDING, _E.FINAL): (_S.DONE, (_A.RELAY,)),
    (_S.SENDING, _E.CANCEL): (_S.CANCEL_WAITING, (_A.ANSWER_487,)),
    (_S.SENDING, _E.TRANSPORT_ERROR): (_S.DONE, (_A.ANSWER_503,)),
    (_S.CALLING, _E.PROVISIONAL): (_S.PROCEEDING, (_A.RELAY,)),
    (_S.CALLING, _E.FINAL_2XX): (_S.DONE, (_A.RELAY,)),
    (_S.CALLING, _E.FINAL): (_S.DONE, (_A.RELAY,)),
    (_S.CALLING, _E.CANCEL): (_S.CANCEL_WAITING, (_A.ANSWER_487,)),
    (_S.CALLING, _E.TIMEOUT): (_S.DONE, (_A.ANSWER_408,)),
    (_S.CALLING, _E.TRANSPORT_ERROR): (_S.DONE, (_A.ANSWER_503,)),
    (_S.PROCEEDING, _E.PROVISIONAL): (_S.PROCEEDING, (_A.RELAY,)),
    (_S.PROCEEDING, _E.FINAL_2XX): (_S.DONE, (_A.RELAY,)),
    (_S.PROCEEDING, _E.FINAL): (_S.DONE, (_A.RELAY,)),
    (_S.PROCEEDING, _E.CANCEL): (_S.CANCELLED, (_A.SEND_CANCEL, _A.ANSWER_487)),
    # Timer C (RFC 3261 §16.8): cancel downstream, 408 upstream.
    (_S.PROCEEDING, _E.TIMEOUT): (_S.CANCELLED, (_A.SEND_CANCEL, _A.ANSWER_408)),
    (_S.PROCEEDING, _E.TRANSPORT_ERROR): (_S.DONE, (_A.ANSWER_503,)),
    (_S.SENDING, _E.RETRY): (_S.SENDING, ()),
    (_S.CALLING, _E.RETRY): (_S.SENDING, ()),
    (_S.PROCEEDING, _E.RETRY): (_S.SENDING, ()),
    # RFC 3263 §4.3 failover: a new client transaction towards the next target.
    (_S.SENDING, _E.TARGET_FAILED): (_S.SENDING, (_A.NEXT_TARGET,)),
    (_S.CALLING, _E.TARGET_FAILED): (_S.SENDING, (_A.NEXT_TARGET,)),
    (_S.PROCEEDING, _E.TARGET_FAILED): (_S.SENDING, (_A.NEXT_TARGET,)),
    # Cancelled (the caller has its 487): no new branch is started.
    (_S.CANCEL_WAITING, _E.TARGET_FAILED): (_S.DONE, ()),
    (_S.CANCELLED, _E.TARGET_FAILED): (_S.DONE, ()),
    (_S.CANCEL_WAITING, _E.SEND_FAILED): (_S.DONE, ()),
    (_S.CANCEL_WAITING, _E.PROVISIONAL): (_S.CANCELLED, (_A.SEND_CANCEL,)),
    (_S.CANCEL_WAITING, _E.FINAL_2XX): (_S.DONE, (_A.END_DIALOG,)),
    (_S.CANCEL_WAITING, _E.FINAL): (_S.DONE, ()),
    (_S.CANCEL_WAITING, _E.TIMEOUT): (_S.DONE, ()),
    (_S.CANCEL_WAITING, _E.TRANSPORT_ERROR): (_S.DONE, ()),
    (_S.CANCELLED, _E.FINAL_2XX): (_S.DONE, (_A.END_DIALOG,)),
    (_S.CANCELLED, _E.FINAL): (_S.DONE, ()),
    (_S.CANCELLED, _E.TIMEOUT): (_S.DONE, ()),
    (_S.CANCELLED, _E.TRANSPORT_ERROR): (_S.DONE, ()),
}

# The caller still waits for a final response: a draining server waits for these.
UPSTREAM_WAITING: Final = frozenset({_S.ROUTING, _S.SENDING, _S.CALLING, _S.PROCEEDING})
# The request went (or is going) downstream.
SENT_DOWNSTREAM: Final = frozenset(
    {_S.SENDING, _S.CALLING, _S.PROCEEDING, _S.CANCEL_WAITING, _S.CANCELLED}
)


class ForwardMachine:
    """The state of one forward and the rules that move it."""

    __slots__ = ("state",)

    def __init__(self, state: ForwardState = ForwardState.ROUTING) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<ForwardMachine {self.state.value}>"

    @property
    def upstream_waiting(self) -> bool:
        return self.state in UPSTREAM_WAITING

    @property
    def cancelled(self) -> bool:
        """The caller cancelled (or Timer C did): nothing more goes upstream but a 487/408."""
        return self.state in (_S.CANCEL_WAITING, _S.CANCELLED, _S.ABANDONED)

    def handle(self, event: Event) -> tuple[Action, ...]:
        step = _TRANSITIONS.get((self.state, event))
        if step is None:
            return ()
        self.state, actions = step
        return actions

    def response(self, status: int) -> tuple[Action, ...]:
        """A response of the forwarded request.

        A 100 counts as a provisional response for CANCEL (RFC 3261 §9.1) but
        is hop-by-hop: it is never relayed.
        """
        if status < 200:
            actions = self.handle(Event.PROVISIONAL)
            return tuple(a for a in actions if a is not Action.RELAY) if status == 100 else actions
        return self.handle(Event.FINAL_2XX if status < 300 else Event.FINAL)
