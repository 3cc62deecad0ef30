"""The transaction layer on trio: transaction tables, timers, retransmissions.

It runs the sans-IO machines of ``edgeport.sip.transaction`` (RFC 3261 §17):
it matches incoming messages to transactions (§17.1.3, §17.2.3), carries out
their actions, and fires their timers on trio's clock from one task
(``serve``) that sleeps until the earliest deadline of a heap.

Each message is serialised once; a retransmission sends the same bytes. The
send callback gets both, in an ``Outgoing``. Where a message goes is opaque
here: a destination value given when the transaction is created (the peer or
connection a request came from, the next hop a request goes to).

Transactions are also indexed by destination (those for which ``fails_whole``
says a destination can fail at once, a stream connection), so a closed
connection fails its transactions without a scan of the tables: connection
churn costs nothing per live transaction.

A terminated transaction leaves its table at once. Memory is bounded twice:
each table holds at most ``max_transactions`` entries (``MAX_TRANSACTIONS``
by default), and every entry is charged what it holds to the transactions
share of the memory budget (:mod:`edgeport.memory`). When either bound is
reached, transactions that only linger to absorb retransmissions (their final
response sent: Completed, Confirmed) are dropped, oldest first; only when none
is left is a new transaction refused with ``TransactionTableFull`` (the proxy
answers 503). A server transaction's source (``source_of``) may hold at most
a quarter of the share: a source past it has its own lingering transactions
dropped first, and then its new ones refused, so one flooding source cannot
take the table from the others. Timers that were cancelled stay in the heap,
as a deadline and a number that no longer names a transaction, until they
come due or the heap is compacted, whichever is first.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Concatenate, Final, Generic, ParamSpec, Protocol, TypeVar

import trio

from edgeport.memory import HEADER_LINE_BYTES, SOURCE_SHARE, transaction_cost
from edgeport.sip.transaction import (
    Action,
    CancelTimer,
    ClientKey,
    ClientTransaction,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    ServerKey,
    ServerTransaction,
    StartTimer,
    Terminated,
    TimedOut,
    TransactionState,
    TransportFailed,
    client_key,
    server_key,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sized

    from edgeport.memory import Account
    from edgeport.sip.message import Message, Request, Response
    from edgeport.sip.timers import Timer, TimerConfig

__all__ = [
    "MAX_TRANSACTIONS",
    "ClientTU",
    "ClientTransactionHandle",
    "Outgoing",
    "SendFailed",
    "ServerTransactionHandle",
    "StrayAck",
    "TransactionLayer",
    "TransactionTableFull",
]

logger = logging.getLogger(__name__)

# Per table (server, client). A transaction lives at most about 64*T1 + T4
# seconds (Timer C for a forwarded INVITE: a few minutes), so at 100 new
# transactions a second a table holds a few thousand entries.
MAX_TRANSACTIONS: Final = 50_000  # transactions

# The heap is rebuilt once it holds this many cancelled timers and they are
# more than half of it.
_COMPACT_MIN_STALE: Final = 1024  # heap entries

D = TypeVar("D")
P = ParamSpec("P")


class SendFailed(Exception):
    """Raised by a send callback when the transport cannot deliver the message.

    The layer also treats OSError, trio.BrokenResourceError and
    trio.ClosedResourceError from the callback as a transport error
    (RFC 3261 §17.1.4, §17.2.4).
    """


_TRANSPORT_ERRORS: Final = (SendFailed, OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class TransactionTableFull(Exception):
    """No room for another transaction; answer 503 statelessly."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to put on the wire: the object, its bytes, and whether it is a resend."""

    message: Message
    data: bytes
    retransmission: bool = False


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


class _Entry(Generic[D]):
    """One live transaction in a table: its machine, destination, timers and bytes."""

    __slots__ = ("_timer_seqs", "_wire", "base_cost", "cost", "destination", "gone", "source")

    machine: ServerTransaction | ClientTransaction

    def __init__(self, destination: D) -> None:
        self.destination = destination
        self.cost = 0  # bytes charged to the memory budget
        self.base_cost = 0  # of them, for the request (the rest: the bytes kept to resend)
        self.gone = False  # out of its table (terminated, or dropped to make room)
        self.source: str | None = None  # whose share it counts against (server side)
        # The heap sequence number of each running timer; a heap entry whose
        # number is not here any more was cancelled or replaced.
        self._timer_seqs: dict[Timer, int] = {}
        # The last two messages serialised, so retransmissions reuse the bytes.
        self._wire: list[tuple[Message, bytes]] = []

    def _encode(self, message: Message) -> bytes:
        for known, data in self._wire:
            if known is message:
                return data
        data = message.to_bytes()
        self._wire = [(message, data), *self._wire[:1]]
        return data


class ServerTransactionHandle(_Entry[D]):
    """A server transaction as the proxy sees it (RFC 3261 §17.2)."""

    __slots__ = ("_layer", "key", "machine")

    machine: ServerTransaction

    def __init__(
        self, layer: TransactionLayer[D], machine: ServerTransaction, key: ServerKey, source: D
    ) -> None:
        super().__init__(source)
        self._layer = layer
        self.machine = machine
        self.key = key

    def __repr__(self) -> str:
        return f"<ServerTransactionHandle {self.machine!r} key={self.key!r}>"

    @property
    def request(self) -> Request:
        return self.machine.request

    @property
    def state(self) -> TransactionState:
        return self.machine.state

    @property
    def can_respond(self) -> bool:
        return self.machine.can_send_response

    def release_views(self) -> None:
        """A transaction with its final response only lingers to absorb retransmissions
        (Timer J, H): the parsed views of its messages go, parsed again if ever used."""
        self.request.drop_views()
        last = self.machine.last_response
        if last is not None:
            last.drop_views()

    async def respond(self, response: Response) -> bool:
        """Send ``response`` through the transaction, with its retransmissions and timers.

        Returns False, sending nothing, when a final response was already sent
        or the transaction is over; the proxy then forwards a 2xx to an INVITE
        statelessly and drops anything else (RFC 3261 §16.7 step 5). Raises
        SipSerializeError before any state changes when the response cannot be
        serialised.
        """
        if not self.machine.can_send_response:
            return False
        self._layer._encode(self, response)
        await self._layer._run(self, self.machine.send_response(response))
        return True


class ClientTransactionHandle(_Entry[D]):
    """A client transaction as the proxy sees it (RFC 3261 §17.1)."""

    __slots__ = ("key", "machine", "timed_out", "tu")

    machine: ClientTransaction

    def __init__(
        self, machine: ClientTransaction, key: ClientKey, destination: D, tu: ClientTU[D]
    ) -> None:
        super().__init__(destination)
        self.machine = machine
        self.key = key
        self.tu = tu
        # The timer behind ``on_timeout``: B or F (answer 408), or C (RFC 3261
        # §16.8: CANCEL when the state is still PROCEEDING, else answer 408).
        self.timed_out: Timer | None = None

    def __repr__(self) -> str:
        return f"<ClientTransactionHandle {self.machine!r} key={self.key!r}>"

    @property
    def request(self) -> Request:
        return self.machine.request

    @property
    def state(self) -> TransactionState:
        return self.machine.state


def _always(destination: object) -> bool:
    return True


# States in which a transaction has sent its final response and only absorbs
# retransmissions (RFC 3261 §17.1.1.2 Completed, §17.2.1 Confirmed...).
_LINGERING: Final = frozenset({TransactionState.COMPLETED, TransactionState.CONFIRMED})


def _size_of(request: Request) -> int:
    """About the size of a request on the wire, from its parts."""
    return (
        40 + len(request.body) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    )


# (deadline, sequence number): the number breaks ties and names the timer in `_running`.
_HeapItem = tuple[float, int]


class TransactionLayer(Generic[D]):
    """Server and client transaction tables and their timers, for the proxy (the TU).

    ``send(outgoing, destination)`` puts one message on the wire; it raises
    ``SendFailed`` (or OSError, trio.BrokenResourceError,
    trio.ClosedResourceError) when it cannot. Retransmissions and timeouts
    happen only while ``serve`` runs.
    """

    def __init__(
        self,
        timers: TimerConfig,
        send: Callable[[Outgoing, D], Awaitable[None]],
        *,
        max_transactions: int = MAX_TRANSACTIONS,
        fails_whole: Callable[[D], bool] = _always,
        budget: Account | None = None,
        source_of: Callable[[D], str] | None = None,
        on_evicted: Callable[[], object] | None = None,
    ) -> None:
        if max_transactions < 1:
            raise ValueError("max_transactions must be at least 1")
        self.timers = timers
        self._send = send
        self._max_transactions = max_transactions
        self._server: dict[ServerKey, ServerTransactionHandle[D]] = {}
        self._client: dict[ClientKey, ClientTransactionHandle[D]] = {}
        # Destination -> its live transactions, for the destinations that
        # ``fails_whole`` says can fail at once (a connection): see fail_destination.
        self._fails_whole = fails_whole
        self._by_destination: dict[D, set[_Entry[D]]] = {}
        # The transactions share of the memory budget, and who uses it.
        self._budget = budget
        self._source_of = source_of
        self._source_used: dict[str, int] = {}
        # Transactions whose final response is sent (they only absorb
        # retransmissions), oldest first: overall and per source.
        self._lingering: OrderedDict[_Entry[D], None] = OrderedDict()
        self._lingering_by_source: dict[str, OrderedDict[_Entry[D], None]] = {}
        self.evicted = 0  # lingering transactions dropped to make room
        self._on_evicted = on_evicted
        self._heap: list[_HeapItem] = []
        # Sequence number -> the transaction and timer of a running heap entry.
        # The heap holds numbers only, so a transaction that ends (or is dropped
        # to make room) is not kept alive by timers it no longer runs.
        self._running: dict[int, tuple[_Entry[D], Timer]] = {}
        self._seq = 0
        self._stale = 0
        self._wakeup: trio.CancelScope | None = None
        self._retransmissions = 0
        self._timeouts = 0
        self._transport_failures = 0

    # ---------------------------------------------------------------- metrics

    @property
    def active_server_transactions(self) -> int:
        return len(self._server)

    @property
    def active_client_transactions(self) -> int:
        return len(self._client)

    @property
    def retransmissions(self) -> int:
        """Messages sent again by a transaction (timers A, E, G and absorbed retransmissions)."""
        return self._retransmissions

    @property
    def timeouts(self) -> int:
        """Transactions ended by Timer B, C, F (client) or H (server)."""
        return self._timeouts

    @property
    def transport_failures(self) -> int:
        """Transactions ended by a transport error."""
        return self._transport_failures

    # ---------------------------------------------------------------- server side

    async def receive_request(
        self, request: Request, source: D, *, reliable: bool, size: int | None = None
    ) -> ServerTransactionHandle[D] | StrayAck | None:
        """Match ``request`` to a server transaction, or start one.

        Returns the new transaction's handle; None when a transaction absorbed
        the request (a retransmission, whose last response went out again, or
        the ACK for a non-2xx final response); ``StrayAck`` for an ACK that
        matches nothing, which the proxy forwards statelessly. ``reliable``
        says whether ``source`` is a reliable transport (no retransmit timers).
        Raises SipParseError when the request cannot be matched, and
        TransactionTableFull when the table is full.
        """
        key = server_key(request)
        entry = self._server.get(key)
        if entry is not None:
            logger.debug("%s absorbed %s in %s", key, request.method, entry.state.name)
            await self._run(entry, entry.machine.on_request(request))
            return None
        if request.method == "ACK":
            return StrayAck(request)
        origin = self._source_of(source) if self._source_of is not None else None
        cost = transaction_cost(
            size if size is not None else _size_of(request), len(request.headers)
        )
        self._make_room(self._server, cost, origin)
        machine: ServerTransaction
        if request.method == "INVITE":
            machine = InviteServerTransaction(request, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteServerTransaction(request, reliable=reliable, timers=self.timers)
        entry = ServerTransactionHandle(self, machine, key, source)
        self._server[key] = entry
        self._index(entry)
        self._charge(entry, cost, origin)
        await self._run(entry, machine.start())
        return entry

    def server_transaction(self, key: ServerKey) -> ServerTransactionHandle[D] | None:
        """The live server transaction with ``key`` (for a CANCEL: ``matching_invite_key``)."""
        return self._server.get(key)

    # ---------------------------------------------------------------- client side

    async def send_request(
        self, request: Request, destination: D, *, reliable: bool, tu: ClientTU[D]
    ) -> ClientTransactionHandle[D]:
        """Start a client transaction for ``request`` towards ``destination``.

        The request's top Via must carry the branch that identifies the
        transaction (RFC 3261 §8.1.1.7). The TU hears of responses, timeouts
        and transport errors through ``tu``; a transport error on the first
        send reaches ``tu`` before this returns. Raises ValueError for a
        branch already in use or an ACK (which has no client transaction),
        SipSerializeError for a request that cannot be serialised, and
        TransactionTableFull when the table is full.
        """
        key = client_key(request)
        if not key[0]:
            raise ValueError("the top Via of a request sent statefully needs a branch")
        if key in self._client:
            raise ValueError(f"a client transaction {key!r} is already running")
        data = request.to_bytes()
        cost = transaction_cost(len(data), len(request.headers))
        self._make_room(self._client, cost, None)
        machine: ClientTransaction
        if request.method == "INVITE":
            machine = InviteClientTransaction(request, reliable=reliable, timers=self.timers)
        else:
            machine = NonInviteClientTransaction(request, reliable=reliable, timers=self.timers)
        entry = ClientTransactionHandle(machine, key, destination, tu)
        entry._wire = [(request, data)]
        self._client[key] = entry
        self._index(entry)
        self._charge(entry, cost, None)
        await self._run(entry, machine.start())
        return entry

    async def receive_response(self, response: Response, source: D) -> bool:
        """Give ``response`` to its client transaction (RFC 3261 §17.1.3).

        True when a transaction took it (delivered to the TU or absorbed);
        False for a stray response, which the proxy forwards statelessly.
        Raises SipParseError when the response has no usable Via or CSeq.
        """
        entry = self._client.get(client_key(response))
        if entry is None:
            logger.debug("stray %s from %s", response.status_code, source)
            return False
        await self._run(entry, entry.machine.on_response(response), source)
        return True

    # ---------------------------------------------------------------- both

    def fail_destination(self, destination: D) -> int:
        """Fail every transaction whose destination is ``destination`` (a broken connection).

        Client transactions tell their TU (``on_transport_error``); server
        transactions end. Returns how many transactions were failed.

        Only destinations ``fails_whole`` accepts are indexed: any other
        destination fails nothing. The cost is one lookup and the transactions
        failed, never a scan of the tables.
        """
        entries = list(self._by_destination.get(destination, ()))
        for entry in entries:
            # A transport error ends a transaction without sending anything.
            self._apply(entry, entry.machine.on_transport_error())
        return len(entries)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire transaction timers until cancelled."""
        task_status.started()
        while True:
            scope = trio.CancelScope()
            if self._heap:
                scope.deadline = self._heap[0][0]
            self._wakeup = scope
            try:
                with scope:
                    await trio.sleep_forever()
            finally:
                self._wakeup = None
            await self._fire_due()

    # ---------------------------------------------------------------- internals

    async def _fire_due(self) -> None:
        now = trio.current_time()
        while self._heap and self._heap[0][0] <= now:
            _, seq = heapq.heappop(self._heap)
            running = self._running.pop(seq, None)
            if running is None:
                self._stale -= 1
                continue
            entry, timer = running
            del entry._timer_seqs[timer]
            try:
                await self._run(entry, entry.machine.on_timer(timer))
            except Exception:
                # One transaction's failure must not stop the timers of all the others.
                logger.exception("%s: Timer %s failed", entry, timer.value)

    async def _run(self, entry: _Entry[D], actions: list[Action], source: D | None = None) -> None:
        """Carry out ``actions`` (``source``: where the message behind them came from)."""
        try:
            await self._carry_out(entry, actions, source)
        finally:
            self._update_lingering(entry)

    async def _carry_out(self, entry: _Entry[D], actions: list[Action], source: D | None) -> None:
        for send in self._apply(entry, actions, source):
            data = self._encode(entry, send.message)
            try:
                await self._send(
                    Outgoing(send.message, data, send.retransmission), entry.destination
                )
            except _TRANSPORT_ERRORS as exc:
                logger.info("%s: cannot send to %s: %r", entry, entry.destination, exc)
                # Nothing is left to send once the transport failed.
                self._apply(entry, entry.machine.on_transport_error())
                return
            if send.retransmission:
                self._retransmissions += 1

    def _apply(
        self, entry: _Entry[D], actions: list[Action], source: D | None = None
    ) -> list[Send]:
        """Carry out every action but Send; return the sends, in order."""
        sends: list[Send] = []
        for action in actions:
            match action:
                case Send():
                    sends.append(action)
                case StartTimer(timer=timer, delay=delay):
                    self._start_timer(entry, timer, delay)
                case CancelTimer(timer=timer):
                    seq = entry._timer_seqs.pop(timer, None)
                    if seq is not None:
                        del self._running[seq]
                        self._stale += 1
                case Deliver(response=response):
                    assert isinstance(entry, ClientTransactionHandle)
                    _notify(entry, entry.tu.on_response, response, source)
                case TimedOut(timer=timer):
                    self._timeouts += 1
                    if isinstance(entry, ClientTransactionHandle):
                        entry.timed_out = timer
                        _notify(entry, entry.tu.on_timeout)
                    else:
                        logger.info("%s: Timer %s fired, the ACK never came", entry, timer.value)
                case TransportFailed():
                    self._transport_failures += 1
                    if isinstance(entry, ClientTransactionHandle):
                        _notify(entry, entry.tu.on_transport_error)
                    else:
                        logger.info("%s: transport failed", entry)
                case Terminated():
                    self._forget(entry)
        return sends

    # ---------------------------------------------------------------- memory

    def _make_room(self, table: Sized, cost: int, source: str | None) -> None:
        """Drop lingering transactions until a new one of ``cost`` fits in ``table``
        and the budget; raises TransactionTableFull when it cannot."""
        while len(table) >= self._max_transactions:
            if not self._evict_oldest(None):
                raise TransactionTableFull(f"{len(table)} transactions")
        budget = self._budget
        if budget is None:
            return
        if source is not None:
            share = int(budget.limit * SOURCE_SHARE)
            while self._source_used.get(source, 0) + cost > share:
                if not self._evict_oldest(source):
                    raise TransactionTableFull(f"{source} holds its share of the memory budget")
        while not budget.fits(cost):
            if not self._evict_oldest(None):
                budget.refused += 1
                raise TransactionTableFull("the transactions memory budget is spent")

    def _evict_oldest(self, source: str | None) -> bool:
        lingering = self._lingering if source is None else self._lingering_by_source.get(source)
        if not lingering:
            return False
        entry = next(iter(lingering))
        logger.debug("%s dropped to make room", entry)
        self.evicted += 1
        if self._on_evicted is not None:
            self._on_evicted()
        self._forget(entry)
        return True

    def _charge(self, entry: _Entry[D], cost: int, source: str | None) -> None:
        entry.base_cost = entry.cost = cost
        entry.source = source
        if self._budget is not None:
            self._budget.take(cost)  # room was made
        if source is not None:
            self._source_used[source] = self._source_used.get(source, 0) + cost

    def _encode(self, entry: _Entry[D], message: Message) -> bytes:
        """The bytes of ``message`` for ``entry``; a message not sent before is charged."""
        for known, data in entry._wire:
            if known is message:
                return data
        data = entry._encode(message)
        wire = sum(len(kept) for _, kept in entry._wire)
        self._recharge(entry, entry.base_cost + wire + HEADER_LINE_BYTES * len(message.headers))
        return data

    def _recharge(self, entry: _Entry[D], cost: int) -> None:
        delta = cost - entry.cost
        entry.cost = cost
        if self._budget is not None:
            # A response must go out whatever it costs; the next new
            # transaction makes room.
            if delta > 0:
                self._budget.used += delta
            else:
                self._budget.give_back(-delta)
        if entry.source is not None:
            self._source_used[entry.source] = self._source_used.get(entry.source, 0) + delta

    def _update_lingering(self, entry: _Entry[D]) -> None:
        """Track a transaction once its final response is sent (it only absorbs
        retransmissions from then on)."""
        if entry.gone or entry in self._lingering or entry.machine.state not in _LINGERING:
            return
        self._lingering[entry] = None
        if entry.source is not None:
            self._lingering_by_source.setdefault(entry.source, OrderedDict())[entry] = None

    def _release(self, entry: _Entry[D]) -> None:
        """Give back what ``entry`` was charged and forget it as lingering."""
        if self._budget is not None:
            self._budget.give_back(entry.cost)
        source = entry.source
        if source is not None:
            left = self._source_used.get(source, 0) - entry.cost
            if left > 0:
                self._source_used[source] = left
            else:
                self._source_used.pop(source, None)
            by_source = self._lingering_by_source.get(source)
            if by_source is not None:
                by_source.pop(entry, None)
                if not by_source:
                    del self._lingering_by_source[source]
        entry.cost = entry.base_cost = 0
        self._lingering.pop(entry, None)

    def _index(self, entry: _Entry[D]) -> None:
        if self._fails_whole(entry.destination):
            self._by_destination.setdefault(entry.destination, set()).add(entry)

    def _unindex(self, entry: _Entry[D]) -> None:
        entries = self._by_destination.get(entry.destination)
        if entries is not None:
            entries.discard(entry)
            if not entries:
                del self._by_destination[entry.destination]

    def _forget(self, entry: _Entry[D]) -> None:
        entry.gone = True
        self._stale += len(entry._timer_seqs)
        for seq in entry._timer_seqs.values():
            del self._running[seq]
        entry._timer_seqs.clear()
        self._unindex(entry)
        self._release(entry)
        if isinstance(entry, ServerTransactionHandle):
            if self._server.get(entry.key) is entry:
                del self._server[entry.key]
        elif isinstance(entry, ClientTransactionHandle) and self._client.get(entry.key) is entry:
            del self._client[entry.key]
        self._compact()

    def _start_timer(self, entry: _Entry[D], timer: Timer, delay: float) -> None:
        replaced = entry._timer_seqs.get(timer)
        if replaced is not None:
            del self._running[replaced]
            self._stale += 1
        self._seq += 1
        deadline = trio.current_time() + delay
        entry._timer_seqs[timer] = self._seq
        self._running[self._seq] = (entry, timer)
        heapq.heappush(self._heap, (deadline, self._seq))
        if self._wakeup is not None and deadline < self._wakeup.deadline:
            self._wakeup.deadline = deadline

    def _compact(self) -> None:
        if self._stale < _COMPACT_MIN_STALE or 2 * self._stale < len(self._heap):
            return
        self._heap = [item for item in self._heap if item[1] in self._running]
        heapq.heapify(self._heap)
        self._stale = 0


def _notify(
    entry: ClientTransactionHandle[D],
    callback: Callable[Concatenate[ClientTransactionHandle[D], P], None],
    *args: P.args,
    **kwargs: P.kwargs,
) -> None:
    try:
        callback(entry, *args, **kwargs)
    except Exception:
        # A TU bug must not stop the timer task, which serves every transaction.
        logger.exception("%s: %s raised", entry, getattr(callback, "__name__", callback))
