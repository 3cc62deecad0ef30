"""A transaction twice: its record in a table, and the handle its TU holds.

The record (:class:`ServerEntry`, :class:`ClientEntry`) is what the layer
keeps: the key, the destination, the sans-IO machine, the bytes of the last
message sent (a retransmission sends them again), and the bookkeeping of the
layer's parts, each in its own fields. The handle
(:class:`ServerTransactionHandle`, :class:`ClientTransactionHandle`) is what
the proxy (the TU) holds: it carries the request.

The record holds its handle while the transaction may still need its TU: a
server transaction until its final response is sent, a client transaction
until its final response is delivered. From then on the transaction only
absorbs retransmissions (RFC 3261 §17.1.1.2 Completed, §17.2.1 Completed
and Confirmed, §17.2.2 Completed) and the record lets go of the handle: the
request and the handle live only as long as the TU keeps the handle, and an
answered transaction lingering for Timer J holds its key and the bytes of its
final response (plus what the machine needs: its state and timers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from edgeport.sip.message import Request, Response
    from edgeport.sip.timers import Timer
    from edgeport.sip.transaction import (
        ClientKey,
        ClientTransaction,
        ServerKey,
        ServerTransaction,
        TransactionState,
    )

__all__ = [
    "ClientEntry",
    "ClientTU",
    "ClientTransactionHandle",
    "Entry",
    "ServerEntry",
    "ServerTransactionHandle",
    "StrayAck",
]

D = TypeVar("D")


class Entry(Generic[D]):
    """One transaction in a table: what it keeps, and each part's bookkeeping.

    The layer's: ``key``, ``destination``, ``machine``, ``handle``, ``wire``
    (the last message sent, as sent) and ``gone``. The budget's
    (:mod:`.budget`): ``cost`` and ``source`` (what it was charged, whose
    share), and its place in the lists of lingering transactions (``older``,
    ``newer``, ``source_older``, ``source_newer``). The timer heap's
    (:mod:`.timer_heap`): the running timer of each kind (``retransmit_timer``,
    ``timeout_timer``, ``proxy_timer``, ``wait_timer``).
    """

    __slots__ = (
        "cost",
        "destination",
        "gone",
        "handle",
        "key",
        "machine",
        "newer",
        "older",
        "proxy_timer",
        "retransmit_timer",
        "source",
        "source_newer",
        "source_older",
        "timeout_timer",
        "wait_timer",
        "wire",
    )

    key: ServerKey | ClientKey
    machine: ServerTransaction | ClientTransaction
    handle: ServerTransactionHandle[D] | ClientTransactionHandle[D] | None

    def __init__(
        self,
        key: ServerKey | ClientKey,
        destination: D,
        machine: ServerTransaction | ClientTransaction,
    ) -> None:
        self.key = key
        self.destination = destination
        self.machine = machine
        self.handle = None
        self.gone = False  # out of its table (terminated, or dropped to make room)
        self.wire = b""  # the last message sent, as sent
        self.cost = 0  # bytes charged to the memory budget
        self.source: str | None = None  # whose share it counts against (server side)
        self.older: Entry[D] | None = None
        self.newer: Entry[D] | None = None
        self.source_older: Entry[D] | None = None
        self.source_newer: Entry[D] | None = None
        self.retransmit_timer = 0
        self.timeout_timer = 0
        self.proxy_timer = 0
        self.wait_timer = 0


class ServerEntry(Entry[D]):
    """A server transaction's record (RFC 3261 §17.2)."""

    __slots__ = ()

    key: ServerKey
    machine: ServerTransaction
    handle: ServerTransactionHandle[D] | None

    if TYPE_CHECKING:

        def __init__(self, key: ServerKey, source: D, machine: ServerTransaction) -> None: ...

    def __repr__(self) -> str:
        return f"<ServerEntry {self.machine!r} key={self.key!r}>"


class ClientEntry(Entry[D]):
    """A client transaction's record (RFC 3261 §17.1)."""

    __slots__ = ()

    key: ClientKey
    machine: ClientTransaction
    handle: ClientTransactionHandle[D] | None

    if TYPE_CHECKING:

        def __init__(self, key: ClientKey, destination: D, machine: ClientTransaction) -> None: ...

    def __repr__(self) -> str:
        return f"<ClientEntry {self.machine!r} key={self.key!r}>"


class ServerSide(Protocol[D]):
    """What a server handle asks of the layer."""

    async def send_response(self, entry: ServerEntry[D], response: Response) -> bool: ...


class TimerSide(Protocol[D]):
    """What a client handle asks of the layer."""

    def expire_timer(self, entry: ClientEntry[D], timer: Timer) -> bool: ...


class ServerTransactionHandle(Generic[D]):
    """A server transaction as the proxy sees it (RFC 3261 §17.2)."""

    __slots__ = ("_entry", "_layer", "_request")

    def __init__(
        self, layer: ServerSide[D], entry: ServerEntry[D], request: Request | None
    ) -> None:
        self._layer = layer
        self._entry = entry
        self._request = request

    def __repr__(self) -> str:
        return f"<ServerTransactionHandle {self._entry.machine!r} key={self.key!r}>"

    @property
    def request(self) -> Request:
        """The request that opened the transaction.

        Raises LookupError on a handle ``server_transaction`` made for a
        transaction whose final response is sent: it keeps no request then.
        """
        request = self._request
        if request is None:
            raise LookupError(f"{self!r}: an answered transaction keeps no request")
        return request

    @property
    def key(self) -> ServerKey:
        return self._entry.key

    @property
    def destination(self) -> D:
        """Where its responses go: the source of the request."""
        return self._entry.destination

    @property
    def machine(self) -> ServerTransaction:
        return self._entry.machine

    @property
    def state(self) -> TransactionState:
        return self._entry.machine.state

    @property
    def can_respond(self) -> bool:
        return self._entry.machine.can_send_response

    def release_views(self) -> None:
        """The TU is done reading the request: its parsed views go (parsed again if
        ever used). The transaction keeps no message itself once answered."""
        if self._request is not None:
            self._request.drop_views()

    async def respond(self, response: Response) -> bool:
        """Send ``response`` through the transaction, with its retransmissions and timers.

        Returns False, sending nothing, when a final response was already sent
        or the transaction is over; the proxy then forwards a 2xx to an INVITE
        statelessly and drops anything else (RFC 3261 §16.7 step 5). Raises
        SipSerializeError before any state changes when the response cannot be
        serialised.
        """
        return await self._layer.send_response(self._entry, response)


class ClientTransactionHandle(Generic[D]):
    """A client transaction as the proxy sees it (RFC 3261 §17.1)."""

    __slots__ = ("_entry", "_layer", "request", "timed_out", "tu")

    def __init__(
        self, layer: TimerSide[D], entry: ClientEntry[D], request: Request, tu: ClientTU[D]
    ) -> None:
        self._layer = layer
        self._entry = entry
        self.request = request
        self.tu = tu
        # The timer behind ``on_timeout``: B or F (answer 408), or C (RFC 3261
        # §16.8: CANCEL when the state is still PROCEEDING, else answer 408).
        self.timed_out: Timer | None = None

    def __repr__(self) -> str:
        return f"<ClientTransactionHandle {self._entry.machine!r} key={self.key!r}>"

    @property
    def key(self) -> ClientKey:
        return self._entry.key

    @property
    def destination(self) -> D:
        """Where the request goes (the next hop)."""
        return self._entry.destination

    @property
    def machine(self) -> ClientTransaction:
        return self._entry.machine

    @property
    def state(self) -> TransactionState:
        return self._entry.machine.state

    def expire_timer(self, timer: Timer) -> bool:
        """Have ``timer`` come due now, if it runs (Timer C's 3 minutes, at once);
        the layer's timer task fires it. False when it does not run."""
        return self._layer.expire_timer(self._entry, timer)


@dataclass(frozen=True, slots=True)
class StrayAck:
    """An ACK that matches no INVITE server transaction: the ACK for a 2xx.

    The ACK for a 2xx is a transaction of its own with nothing to answer
    (RFC 3261 §17.1.1.3, §17.2.3 leave it to the TU); the proxy forwards it
    statelessly, like any request it routes.
    """

    request: Request


class ClientTU(Protocol[D]):
    """What the proxy implements to hear from a client transaction.

    Callbacks are synchronous and may come from the timer task or from inside
    ``send_request``/``receive_response``; a callback that needs I/O starts a
    task of its own.
    """

    def on_response(
        self, handle: ClientTransactionHandle[D], response: Response, source: D | None
    ) -> None:
        """``response`` reached ``handle``, from ``source`` (where it was received)."""
        ...

    def on_timeout(self, handle: ClientTransactionHandle[D]) -> None: ...

    def on_transport_error(self, handle: ClientTransactionHandle[D]) -> None: ...
