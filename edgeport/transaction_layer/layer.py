"""The transaction layer: server and client tables, and the actions of their machines.

It runs the sans-IO machines of :mod:`edgeport.sip.transaction` (RFC 3261
§17): it matches incoming messages to transactions (§17.1.3, §17.2.3),
carries out their actions, and fires their timers from one task (``serve``).
Its parts: the records and handles (:mod:`.entries`), the timers
(:mod:`.timer_heap`), what the tables may hold (:mod:`.budget`) and the
index of transactions by destination (:mod:`.destinations`).

Each message is serialised once; a retransmission sends the same bytes. The
send callback gets both, in an ``Outgoing``. Where a message goes is opaque
here: a destination value given when the transaction is created (the peer or
connection a request came from, the next hop a request goes to). A
terminated transaction leaves its table at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Concatenate, Final, Generic, ParamSpec, TypeVar

import trio

from edgeport.memory import lingering_transaction_cost, transaction_cost
from edgeport.sip.transaction import (
    CancelTimer,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Resend,
    Send,
    StartTimer,
    Terminated,
    TimedOut,
    TransactionState,
    TransportFailed,
    client_key,
    key_size,
    server_key,
)
from edgeport.transaction_layer.budget import MAX_TRANSACTIONS, TransactionBudget
from edgeport.transaction_layer.destinations import DestinationIndex
from edgeport.transaction_layer.entries import (
    ClientEntry,
    ClientTransactionHandle,
    ServerEntry,
    ServerTransactionHandle,
    StrayAck,
)
from edgeport.transaction_layer.outgoing import TRANSPORT_ERRORS, Outgoing
from edgeport.transaction_layer.timer_heap import TimerHeap

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edgeport.memory import Account
    from edgeport.sip.message import Message, Request, Response
    from edgeport.sip.timers import Timer, TimerConfig
    from edgeport.sip.transaction import (
        Action,
        ClientKey,
        ClientTransaction,
        ServerKey,
        ServerTransaction,
    )
    from edgeport.transaction_layer.entries import ClientTU, Entry

__all__ = ["TransactionLayer"]

logger = logging.getLogger(__name__)

D = TypeVar("D")
P = ParamSpec("P")

# States in which a transaction has sent (server) or delivered (client) its
# final response and only absorbs retransmissions (RFC 3261 §17.1.1.2,
# §17.1.2.2, §17.2.1, §17.2.2: Completed; §17.2.1: Confirmed).
_LINGERING: Final = frozenset({TransactionState.COMPLETED, TransactionState.CONFIRMED})


def _always(destination: object) -> bool:
    return True


def _size_of(request: Request) -> int:
    """About the size of a request on the wire, from its parts."""
    return (
        40 + len(request.body) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    )


def _cost_of(request: Request, size: int) -> int:
    """What a transaction holding ``request`` (``size`` bytes on the wire) is charged."""
    headers = request.headers
    # The Via and Contact lines are parsed into typed views, the first of each
    # even before the transaction starts.
    parsed = max(0, headers.count("Via") - 1) + max(0, headers.count("Contact") - 1)
    return transaction_cost(size, len(headers), parsed)


class TransactionLayer(Generic[D]):
    """Server and client transaction tables and their timers, for the proxy (the TU).

    ``send(outgoing, destination)`` puts one message on the wire; it raises
    ``SendFailed`` (or OSError, trio.BrokenResourceError,
    trio.ClosedResourceError) when it cannot. Retransmissions and timeouts
    happen only while ``serve`` runs. ``fails_whole(destination)`` says
    whether a destination fails whole (:mod:`.destinations`); ``budget`` is
    the transactions share of the memory budget, ``source_of(destination)``
    names the source whose part of it a server transaction counts against,
    and ``on_evicted()`` is called for each lingering transaction dropped to
    make room (:mod:`.budget`).
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
        self.timers = timers
        self._send = send
        self._source_of = source_of
        self._server: dict[ServerKey, ServerEntry[D]] = {}
        self._client: dict[ClientKey, ClientEntry[D]] = {}
        self._budget = TransactionBudget[D](
            max_transactions=max_transactions,
            account=budget,
            evict=self._forget,
            on_evicted=on_evicted,
        )
        self._destinations = DestinationIndex[D](fails_whole)
        self.timer_heap = TimerHeap["Entry[D]"]()
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

    @property
    def evicted(self) -> int:
        """Lingering transactions dropped to make room."""
        return self._budget.evicted

    # ---------------------------------------------------------------- server side

    async def receive_request(
        self, request: Request, source: D, *, reliable: bool, size: int | None = None
    ) -> ServerTransactionHandle[D] | StrayAck | None:
        """Match ``request`` to a server transaction (RFC 3261 §17.2.3).

        Returns the handle of a new transaction, None for a retransmission or
        an ACK absorbed by its INVITE transaction, or StrayAck for an ACK
        without one. ``size`` (bytes on the wire, when known) is what the
        transaction is charged for the request. Raises SipParseError when the
        request lacks what matching needs, and TransactionTableFull when the
        table is full.
        """
        key = server_key(request)
        entry = self._server.get(key)
        if entry is not None:
            await self._run(entry, entry.machine.on_request(request))
            return None
        if request.method == "ACK":
            return StrayAck(request)
        origin = self._source_of(source) if self._source_of is not None else None
        cost = _cost_of(request, size if size is not None else _size_of(request))
        self._budget.make_room(self._server, cost, origin)
        machine: ServerTransaction
        if request.method == "INVITE":
            machine = InviteServerTransaction(
                request, reliable=reliable, timers=self.timers, caller_keeps_bytes=True
            )
        else:
            machine = NonInviteServerTransaction(
                request, reliable=reliable, timers=self.timers, caller_keeps_bytes=True
            )
        entry = ServerEntry(key, source, machine)
        handle = entry.handle = ServerTransactionHandle(self, entry, request)
        self._server[key] = entry
        self._destinations.add(entry)
        self._budget.charge(entry, cost, origin)
        await self._run(entry, machine.start())
        return handle

    def server_transaction(self, key: ServerKey) -> ServerTransactionHandle[D] | None:
        """The server transaction with ``key`` (for a CANCEL: ``matching_invite_key``).

        Until its final response is sent, the handle its TU holds; then a
        handle without the request, which the transaction no longer keeps.
        """
        entry = self._server.get(key)
        if entry is None:
            return None
        return entry.handle or ServerTransactionHandle(self, entry, None)

    async def send_response(self, entry: ServerEntry[D], response: Response) -> bool:
        """What ``ServerTransactionHandle.respond`` does."""
        machine = entry.machine
        if not machine.can_send_response:
            return False
        data = response.to_bytes()  # SipSerializeError before any state changes
        await self._run(entry, machine.send_response(response), sent=(response, data))
        return True

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
        cost = _cost_of(request, len(data))
        self._budget.make_room(self._client, cost, None)
        machine: ClientTransaction
        if request.method == "INVITE":
            machine = InviteClientTransaction(
                request, reliable=reliable, timers=self.timers, caller_keeps_bytes=True
            )
        else:
            machine = NonInviteClientTransaction(
                request, reliable=reliable, timers=self.timers, caller_keeps_bytes=True
            )
        entry = ClientEntry(key, destination, machine)
        handle = entry.handle = ClientTransactionHandle(self, entry, request, tu)
        self._client[key] = entry
        self._destinations.add(entry)
        self._budget.charge(entry, cost, None)
        await self._run(entry, machine.start(), sent=(request, data))
        return handle

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

    def expire_timer(self, entry: ClientEntry[D], timer: Timer) -> bool:
        """What ``ClientTransactionHandle.expire_timer`` does."""
        return not entry.gone and self.timer_heap.expire(entry, timer)

    # ---------------------------------------------------------------- both

    def fail_destination(self, destination: D) -> int:
        """Fail every transaction whose destination is ``destination`` (a broken connection).

        Client transactions tell their TU (``on_transport_error``); server
        transactions end. Returns how many transactions were failed.

        Only destinations ``fails_whole`` accepts are indexed: any other
        destination fails nothing. The cost is one lookup and the transactions
        failed, never a scan of the tables.
        """
        entries = self._destinations.entries(destination)
        for entry in entries:
            # A transport error ends a transaction without sending anything.
            self._apply(entry, entry.machine.on_transport_error())
        return len(entries)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire transaction timers until cancelled."""
        task_status.started()
        heap = self.timer_heap
        while True:
            await heap.wait()
            now = trio.current_time()
            while (due := heap.pop_due(now)) is not None:
                entry, timer = due
                try:
                    await self._run(entry, entry.machine.on_timer(timer))
                except Exception:
                    # One transaction's failure must not stop the timers of all the others.
                    logger.exception("%s: Timer %s failed", entry, timer.value)

    # ---------------------------------------------------------------- internals

    async def _run(
        self,
        entry: Entry[D],
        actions: list[Action],
        source: D | None = None,
        sent: tuple[Message, bytes] | None = None,
    ) -> None:
        """Carry out ``actions`` (``source``: where the message behind them came
        from; ``sent``: a message among them already serialised)."""
        try:
            for send in self._apply(entry, actions, source):
                message: Message | None
                if isinstance(send, Resend):
                    message, data, again = _message_of_resend(entry), entry.wire, True
                else:
                    message, again = send.message, send.retransmission
                    if sent is not None and sent[0] is message:
                        data = self._keep(entry, sent[1])
                    else:
                        data = self._keep(entry, message.to_bytes())
                try:
                    await self._send(Outgoing(message, data, again), entry.destination)
                except TRANSPORT_ERRORS as exc:
                    logger.info("%s: cannot send to %s: %r", entry, entry.destination, exc)
                    # Nothing is left to send once the transport failed.
                    self._apply(entry, entry.machine.on_transport_error())
                    return
                if again:
                    self._retransmissions += 1
        finally:
            self._settle(entry)

    def _apply(
        self, entry: Entry[D], actions: list[Action], source: D | None = None
    ) -> list[Send | Resend]:
        """Carry out every action but sending; return the sends, in order."""
        sends: list[Send | Resend] = []
        for action in actions:
            match action:
                case Send() | Resend():
                    sends.append(action)
                case StartTimer(timer=timer, delay=delay):
                    self.timer_heap.start(entry, timer, delay)
                case CancelTimer(timer=timer):
                    self.timer_heap.cancel(entry, timer)
                case Deliver(response=response):
                    assert isinstance(entry, ClientEntry)
                    if entry.handle is not None:
                        _notify(entry.handle, entry.handle.tu.on_response, response, source)
                case TimedOut(timer=timer):
                    self._timeouts += 1
                    if not isinstance(entry, ClientEntry):
                        logger.info("%s: Timer %s fired, the ACK never came", entry, timer.value)
                    elif entry.handle is not None:
                        entry.handle.timed_out = timer
                        _notify(entry.handle, entry.handle.tu.on_timeout)
                case TransportFailed():
                    self._transport_failures += 1
                    if not isinstance(entry, ClientEntry):
                        logger.info("%s: transport failed", entry)
                    elif entry.handle is not None:
                        _notify(entry.handle, entry.handle.tu.on_transport_error)
                case Terminated():
                    self._forget(entry)
        return sends

    def _keep(self, entry: Entry[D], data: bytes) -> bytes:
        """``data`` is the last message ``entry`` sent: kept to send again, and charged
        (here, or by ``_settle`` when the transaction starts to linger with it).

        A transaction that already ended keeps nothing: its last message goes
        out all the same (a 2xx to an INVITE; a final response or an ACK over a
        reliable transport).
        """
        if entry.gone:
            return data
        if entry.handle is None or entry.machine.state not in _LINGERING:
            self._budget.resize(entry, entry.cost - len(entry.wire) + len(data))
        entry.wire = data
        return data

    def _settle(self, entry: Entry[D]) -> None:
        """Once a transaction only absorbs retransmissions, it lets go of its handle
        (the request goes with it when the TU is done) and may make room."""
        if entry.handle is None or entry.gone or entry.machine.state not in _LINGERING:
            return
        entry.handle = None
        self._budget.resize(entry, lingering_transaction_cost(len(entry.wire), key_size(entry.key)))
        self._budget.linger(entry)

    def _forget(self, entry: Entry[D]) -> None:
        entry.gone = True
        entry.handle = None
        self.timer_heap.cancel_all(entry)
        self._destinations.discard(entry)
        self._budget.release(entry)
        if isinstance(entry, ServerEntry):
            if self._server.get(entry.key) is entry:
                del self._server[entry.key]
        elif isinstance(entry, ClientEntry) and self._client.get(entry.key) is entry:
            del self._client[entry.key]


def _message_of_resend(entry: Entry[D]) -> Message | None:
    """The message behind a retransmission, when it is still at hand (a client
    transaction's request, while its TU holds it); else it is parsed if needed."""
    if isinstance(entry, ClientEntry) and entry.handle is not None:
        return entry.handle.request
    return None


def _notify(
    handle: ClientTransactionHandle[D],
    callback: Callable[Concatenate[ClientTransactionHandle[D], P], None],
    *args: P.args,
    **kwargs: P.kwargs,
) -> None:
    try:
        callback(handle, *args, **kwargs)
    except Exception:
        # A TU bug must not stop the timer task, which serves every transaction.
        logger.exception("%s: %s raised", handle, getattr(callback, "__name__", callback))
