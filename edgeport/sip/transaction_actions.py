"""What a transaction asks its caller to do, sans-IO (RFC 3261 §17): the actions
the machines of :mod:`edgeport.sip.transaction` return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from edgeport.sip.message import Message, Response
    from edgeport.sip.timers import Timer

__all__ = [
    "Action",
    "CancelTimer",
    "Deliver",
    "Resend",
    "Send",
    "StartTimer",
    "Terminated",
    "TimedOut",
    "TransportFailed",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Pass ``message`` to the transport; ``retransmission`` when it was sent before."""

    message: Message
    retransmission: bool = False


@dataclass(frozen=True, slots=True)
class Resend:
    """Pass the last message sent to the transport again (a transaction whose caller
    keeps the bytes it sent: ``caller_keeps_bytes``)."""


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
    Send | Resend | StartTimer | CancelTimer | Deliver | TimedOut | TransportFailed | Terminated
)
