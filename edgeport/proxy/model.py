"""The values the parts of the message path hand each other, and small helpers on them.

A :class:`Destination` is where the transaction layer sends (a peer, and the
connection to use while it is open); an :class:`Exchange` is one processor
call (what edgeport sent, what the processor replied).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from edgeport.events import sip_aor

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgeport._proto import processor_pb2, sipmessage_pb2
    from edgeport.sip.message import Message
    from edgeport.transports import Connection, Peer

RETRY_AFTER: Final = "5"  # seconds suggested to a client after a 503
# A new request that waited longer than this between the socket and its
# handler means edgeport is saturated: its client has already retransmitted
# (T1 = 0.5 s), so it gets a 503 at once instead of a processor call that
# would only deepen the queue.
MAX_QUEUE_DELAY: Final = 1.0  # seconds


@dataclass(frozen=True, slots=True)
class Exchange:
    """A processor call: the SIPMessage edgeport sent, and the processor's reply."""

    sent: sipmessage_pb2.SIPMessage
    reply: processor_pb2.MessageResponse

    def extensions(self) -> Iterator[tuple[str, str]]:
        """The reply's extension headers, as (name, value)."""
        return ((ext.name, ext.value) for ext in self.reply.message.extensions)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the transaction layer sends: a peer, and the connection to use when it is open."""

    peer: Peer
    connection: Connection | None = None


def on_stream(destination: Destination) -> bool:
    """Whether a destination is a stream peer: its connection can fail all its
    transactions at once (the transaction layer indexes those)."""
    return destination.peer.transport.stream


def new_branch() -> str:
    """RFC 3261 §8.1.1.7: a branch starts with the magic cookie ``z9hG4bK``."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def aor_of(message: Message, which: str) -> str:
    """``sip:user@host`` of the From (``which="from"``) or To address, as events carry it."""
    address = message.from_ if which == "from" else message.to
    uri = address.uri
    host = getattr(uri, "host", None)
    if host is None:
        return str(uri)
    return sip_aor(getattr(uri, "user", None), host)
