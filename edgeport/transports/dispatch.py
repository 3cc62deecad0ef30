"""Dispatch: every received message, from the listeners to the handler, through the inbox.

Overload: received messages wait in a bounded :class:`Inbox` (two lanes:
responses, ACKs and CANCELs, which finish admitted work, and new requests,
shed first and before any parsing). Handler tasks are bounded per lane
(``max_new_tasks``, ``max_admitted_tasks``); a task is started for a
message while its lane has a free handler, takes the next message from the
inbox when it runs (arrival order, unless edgeport is behind), and goes on
with whatever waits until nothing it may take is left. A new request the
inbox sheds is dropped silently over UDP (its client retransmits) and handed
to ``refuse`` (503) over a stream, where nobody retransmits;
``on_shed(reason)`` counts each shed.

Concurrency: handler tasks and refusals run in the transports' nursery.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from edgeport.ratelimit import RateLimitedLog
from edgeport.transports.base import Connection, InboundMessage, Peer
from edgeport.transports.inbox import Inbox, InboxLimits, Lane, Shed, lane_of

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable

    from edgeport.memory import Account
    from edgeport.transports.base import Handler
    from edgeport.transports.plugins import CaptureSink

logger = logging.getLogger(__name__)

MAX_NEW_TASKS: Final = 1_000  # handlers of new requests at once
MAX_ADMITTED_TASKS: Final = 1_000  # handlers of responses, ACKs and CANCELs at once
MAX_REFUSALS: Final = 64  # 503s to shed stream requests being written at once
MESSAGES_PER_TASK: Final = 1_000  # a handler task goes on this long, then hands over

# Reasons given to ``on_shed`` (edgeport_dropped_messages_total).
SHED_NEW: Final = "overload_shed"  # a new request dropped before parsing
SHED_ADMITTED: Final = "overload_admitted"  # a response, ACK or CANCEL: its lane was full
SHED_MEMORY: Final = "memory_budget"  # the inbox share of the memory budget was spent


class Dispatch:
    """The inbox and the handler tasks that empty it.

    Counts in ``stats``: ``received_<transport>``, ``handler_errors``,
    ``shed_<lane>_<why>``, ``refusals_dropped``.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        handler: Handler,
        stats: Counter[str],
        *,
        inbox: InboxLimits | None = None,
        account: Account | None = None,
        max_new_tasks: int = MAX_NEW_TASKS,
        max_admitted_tasks: int = MAX_ADMITTED_TASKS,
        refuse: Handler | None = None,
        on_shed: Callable[[str], None] | None = None,
        capture: CaptureSink | None = None,
    ) -> None:
        if max_new_tasks < 1 or max_admitted_tasks < 1:
            raise ValueError("each lane needs at least one handler task")
        self._nursery = nursery
        self._handler = handler
        self._stats = stats
        self._refuse = refuse
        self._on_shed = on_shed
        self._capture = capture  # HEP capture of every message received; None when off
        self._max_tasks = {Lane.NEW: max_new_tasks, Lane.ADMITTED: max_admitted_tasks}
        # ``account``: the inbox share of the memory budget.
        self.inbox = Inbox(inbox, account)
        # Handler tasks started for a message of each lane, not running yet.
        self._starting = {Lane.NEW: 0, Lane.ADMITTED: 0}
        self._busy = {Lane.NEW: 0, Lane.ADMITTED: 0}  # handlers running, per lane
        self._refusing = 0
        self._shed_log = RateLimitedLog(logger)

    @property
    def handler_tasks(self) -> int:
        """Handler tasks alive: started, or handling a message."""
        return sum(self._starting.values()) + sum(self._busy.values())

    def deliver(self, data: bytes, peer: Peer, conn: Connection | None, local: Peer) -> None:
        """One message read from ``peer`` (on ``conn``, or over UDP): count it, capture
        it, queue it."""
        message = InboundMessage(data, peer, conn, local, trio.current_time())
        self._stats[f"received_{peer.transport.value}"] += 1
        if self._capture is not None:
            self._capture.received(message)
        self.queue(message)

    def queue(self, message: InboundMessage) -> None:
        """Queue a message (one read here, or one another worker read and handed over)
        and start a handler if its lane has room."""
        lane = lane_of(message.data)
        shed = self.inbox.offer(message, lane)
        for each in shed:
            self._shed(each)
        if shed and shed[-1].message is message:
            return  # not queued: the tasks already started cover what waits
        if self._starting[lane] + self._busy[lane] < self._max_tasks[lane]:
            self._start_worker(lane)
        # Else every handler of its lane is busy; each takes what waits when it is done.

    def _start_worker(self, lane: Lane) -> None:
        self._starting[lane] += 1
        self._nursery.start_soon(self._work, lane)

    async def _work(self, lane: Lane) -> None:
        # trio may start the tasks of one batch in any order (it reverses
        # batches at random). Each task takes the next message when it RUNS
        # (the oldest, unless edgeport is behind), so handlers begin in
        # arrival order: an INVITE and the CANCEL right behind it, or a 180
        # and its 200, reach the handler as they came, and the handler's
        # synchronous start (parse, transaction matching) keeps that order.
        # A task goes on with whatever its lanes' room allows until nothing
        # is left, so a message that found every handler busy is not stranded.
        self._starting[lane] -= 1
        for _ in range(MESSAGES_PER_TASK):
            taken, stale = self.inbox.pop(
                trio.current_time(),
                new_ok=self._busy[Lane.NEW] < self._max_tasks[Lane.NEW],
                admitted_ok=self._busy[Lane.ADMITTED] < self._max_tasks[Lane.ADMITTED],
            )
            for shed in stale:
                self._shed(shed)
            if taken is None:
                return
            message, taken_lane = taken
            self._busy[taken_lane] += 1
            try:
                await self._dispatch(message)
            finally:
                self._busy[taken_lane] -= 1
        if len(self.inbox):
            self._start_worker(lane)

    async def _dispatch(self, message: InboundMessage) -> None:
        try:
            await self._handler(message)
        except Exception:
            logger.exception("handling a message from %s failed", message.peer)
            self._stats["handler_errors"] += 1

    def _shed(self, shed: Shed) -> None:
        """A message the inbox gave up on: counted, logged (rate-limited), refused on streams."""
        self._stats[f"shed_{shed.lane.value}_{shed.reason}"] += 1
        message = shed.message
        if (
            shed.lane is Lane.NEW
            and message.connection is not None
            and self._refuse is not None
            and self._refusing < MAX_REFUSALS
        ):
            # Nobody retransmits over a stream: the client hears 503 now.
            self._refusing += 1
            self._nursery.start_soon(self._run_refusal, message)
            return
        if message.connection is not None:
            self._stats["refusals_dropped"] += 1
        if shed.reason == "memory":
            reason = SHED_MEMORY
        else:
            reason = SHED_NEW if shed.lane is Lane.NEW else SHED_ADMITTED
        if self._on_shed is not None:
            self._on_shed(reason)
        self._shed_log.warning(
            "overloaded: dropped a %s message from %s (%s, %d waiting)",
            shed.lane.value,
            message.peer,
            shed.reason,
            len(self.inbox),
        )

    async def _run_refusal(self, message: InboundMessage) -> None:
        assert self._refuse is not None
        try:
            await self._refuse(message)
        except Exception:
            logger.exception("refusing a message from %s failed", message.peer)
            self._stats["handler_errors"] += 1
        finally:
            self._refusing -= 1
