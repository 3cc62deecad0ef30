"""What the layer hands its send callback, and what the callback may raise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio

from edgeport.sip.errors import SipParseError
from edgeport.sip.parser import parse_message

if TYPE_CHECKING:
    from edgeport.sip.message import Message

__all__ = ["TRANSPORT_ERRORS", "Outgoing", "SendFailed"]


class SendFailed(Exception):
    """Raised by a send callback when the transport cannot deliver the message.

    The layer also treats OSError, trio.BrokenResourceError and
    trio.ClosedResourceError from the callback as a transport error
    (RFC 3261 §17.1.4, §17.2.4).
    """


TRANSPORT_ERRORS: Final = (SendFailed, OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class Outgoing:
    """A message to put on the wire: its bytes, whether it is a resend, and the message.

    A transaction keeps the bytes of what it sent, not the message: a
    retransmission comes without its message, which ``message`` parses from
    the bytes the first time it is read.
    """

    __slots__ = ("_message", "data", "retransmission")

    def __init__(self, message: Message | None, data: bytes, retransmission: bool = False) -> None:
        self._message = message
        self.data = data
        self.retransmission = retransmission

    def __repr__(self) -> str:
        return f"Outgoing({self._message!r}, {len(self.data)} bytes, {self.retransmission})"

    @property
    def message(self) -> Message:
        message = self._message
        if message is None:
            message = self._message = _parse_sent(self.data)
        return message


def _parse_sent(data: bytes) -> Message:
    """A message from bytes edgeport serialised. They read back as a message, if
    not always as one fit to route (a relayed response keeps the headers its
    processor wrote): such one comes back as far as it was read."""
    try:
        return parse_message(data)
    except SipParseError as error:
        if error.message is None:
            raise
        return error.message
