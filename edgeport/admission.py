"""What the proxy lets in: bounds on processor calls, and retransmissions absorbed unparsed.

Two separate budgets of processor calls:

- new requests, ``max_in_flight`` (``spec.maxInFlight``): the proxy's
  ``CapacityLimiter``; past it, or when a request waited more than
  ``edgeport.proxy.MAX_QUEUE_DELAY`` between the socket and its handler, the request gets
  503 at once;
- responses, ACKs and CANCELs, which finish work already admitted:
  :class:`CallBudget`, generous (``ADMITTED_CALLS_PER_IN_FLIGHT`` times
  ``max_in_flight``) so new requests can never starve them. Past it the
  message is handled as if the processor call had failed (a response is still
  relayed, unseen by the processor).

:class:`Routing` remembers the non-INVITE requests being routed (from
admission until the processor's reply is acted on), keyed by what the raw
bytes say: method, top Via branch (RFC 3261 magic cookie only) and source.
A retransmission of one of them is recognised before parsing and dropped:
its server transaction would absorb it anyway (RFC 3261 §17.2.2: nothing is
sent in Trying), and it never leads to a second processor call. INVITE
retransmissions still reach the transaction layer, which sends the 100
Trying again (§17.2.1).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from edgeport.transports import InboundMessage

ADMITTED_CALLS_PER_IN_FLIGHT: Final = 2  # processor calls for responses/ACK/CANCEL

# The branch of the first Via header line's first value. Header names are
# case-insensitive (``Via``, ``v``); only RFC 3261 branches (magic cookie)
# are unique enough to key on.
_TOP_BRANCH: Final = re.compile(
    rb"^(?:via|v)[ \t]*:[^\r\n]*?;[ \t]*branch[ \t]*=[ \t]*(z9hG4bK[^;,\s]*)",
    re.IGNORECASE | re.MULTILINE,
)

RoutingKey = tuple[bytes, bytes, str, int, str]


def routing_key(inbound: InboundMessage) -> RoutingKey | None:
    """(method, top Via branch, source host, port, transport) from the raw bytes, or None.

    None for a response, an INVITE, or a request without an RFC 3261 branch.
    The same bytes always give the same key, so a retransmission (the same
    datagram again) finds its original.
    """
    data = inbound.data
    space = data.find(b" ", 0, 32)
    if space <= 0:
        return None
    method = data[:space]
    if method in (b"SIP/2.0", b"INVITE"):
        return None
    match = _TOP_BRANCH.search(data)
    if match is None:
        return None
    peer = inbound.peer
    return (method, match.group(1), peer.host, peer.port, peer.transport.value)


class Routing:
    """The non-INVITE requests between admission and the end of their routing."""

    def __init__(self) -> None:
        self._keys: set[RoutingKey] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def begin(self, inbound: InboundMessage) -> RoutingKey | None:
        """Remember ``inbound`` as being routed; the key to ``end`` with (None: not tracked)."""
        key = routing_key(inbound)
        if key is None or key in self._keys:
            return None
        self._keys.add(key)
        return key

    def end(self, key: RoutingKey | None) -> None:
        if key is not None:
            self._keys.discard(key)

    def is_retransmission(self, inbound: InboundMessage) -> bool:
        """True when ``inbound`` repeats a request still being routed."""
        if not self._keys:
            return False
        key = routing_key(inbound)
        return key is not None and key in self._keys


class CallBudget:
    """A count of processor calls in progress with a ceiling; ``try_take`` never waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a call budget needs at least one call")
        self.limit = limit
        self.in_use = 0

    def try_take(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        self.in_use -= 1
