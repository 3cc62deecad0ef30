"""Edge protection for the whole edgeport: what each worker's guard tells the others.

Each worker's :class:`edgeport.protection.EdgeGuard` sees only the traffic the
kernel gave that worker. :class:`GuardExchange` carries what the guards
decide and count over the hand-off sockets (kind ``guard``), one JSON
document per datagram, each with ``from`` (the sending worker):

* ``ban``: ``[[source, seconds], ...]``, a ban a worker started (sent at
  once, so every worker drops the source within milliseconds), or, to a
  worker that just said hello, every ban in force;
* ``counts``: ``[[source, requests], ...]``, requests counted toward the flood
  limit and not yet reported (:mod:`edgeport.protection.sharing`): sent as
  soon as a source has a significant share of the limit unreported, else
  ``REPORT_INTERVAL`` after the first request counted since the last report
  (while nothing is counted, nothing is sent and nothing wakes); at most
  ``MAX_ITEMS`` sources, the busiest;
* ``open`` / ``close``: ``[[source, serial, opened_at], ...]`` /
  ``[[source, serial], ...]``, connections counted toward
  ``maxConnectionsPerSource``, as they open and close;
* ``snapshot``: every connection a worker counts, in ``open`` lists over as
  many datagrams as it takes, the last one marked ``last``; sent every
  ``SNAPSHOT_INTERVAL`` (a connection whose ``close`` was lost, its
  hand-off dropped, stops counting then) while connections open or close,
  until ``SNAPSHOTS_AFTER_A_CHANGE`` were sent since the last change; and to
  a worker that said hello.

What arrives is checked (types, sizes, ranges) before the guard sees it. A
worker that restarts says hello (:mod:`.mesh`): the others forget the
connections its predecessor held and tell it the bans and connections in
force.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, Final

import trio

from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.workers.handoff import KIND_GUARD, Handoff

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgeport.protection import EdgeGuard
    from edgeport.workers.handoff import HandoffLink

logger = logging.getLogger(__name__)

REPORT_INTERVAL: Final = 0.25  # seconds from a first count to the report that carries it
MIN_REPORT_GAP: Final = 0.005  # seconds between two reports: at most 200 a second
MAX_ITEMS: Final = 256  # sources (or connections) per datagram
MAX_SOURCE_CHARS: Final = 64  # an IPv4 address or an IPv6 /64, as the guard keys sources
SNAPSHOT_INTERVAL: Final = 30.0  # seconds between two lists of every counted connection
# Lists sent after a connection opened or closed: one more than needed, in case one is lost.
SNAPSHOTS_AFTER_A_CHANGE: Final = 2
_NOWHERE: Final = Peer(Transport.UDP, "", 0)


class GuardExchange:
    """This worker's guard and its siblings: what it tells them, what it hears.

    Built with the guard, which it asks at once to hold its limits together
    with the other workers (:meth:`EdgeGuard.share`).
    """

    def __init__(self, link: HandoffLink, guard: EdgeGuard) -> None:
        self.link = link
        self.guard = guard
        self._wake = trio.Event()  # something for run() to do, or to reckon with
        self._due = trio.Event()  # a source is due: report now
        self._counted = False  # counted since the last report
        self._snapshots = 0
        self._snapshots_owed = 0  # periodic lists still to send since the last change
        self._next_snapshot = math.inf
        guard.share(self, worker=link.index, workers=link.count)

    # what the guard tells the others (GuardPeers) --------------------------

    def ban_started(self, source: str, seconds: float) -> None:
        self._broadcast({"ban": [[source, seconds]]})

    def counts_due(self) -> None:
        self._due.set()
        self.counts_pending()

    def counts_pending(self) -> None:
        self._counted = True
        self._wake.set()

    def connection_opened(self, source: str, serial: int, opened_at: float) -> None:
        self._broadcast({"open": [[source, serial, opened_at]]})
        self._connections_changed()

    def connection_closed(self, source: str, serial: int) -> None:
        self._broadcast({"close": [[source, serial]]})
        self._connections_changed()

    def _connections_changed(self) -> None:
        if not self._snapshots_owed:
            self._next_snapshot = trio.current_time() + SNAPSHOT_INTERVAL
            self._wake.set()
        self._snapshots_owed = SNAPSHOTS_AFTER_A_CHANGE

    async def run(self) -> None:
        """Report counted requests when a source is due, else ``REPORT_INTERVAL`` after
        the first count; list the counted connections every ``SNAPSHOT_INTERVAL`` while
        they change. Sleeps with no deadline while there is neither."""
        while True:
            with trio.move_on_at(self._next_snapshot if self._snapshots_owed else math.inf):
                await self._wake.wait()
            self._wake = trio.Event()
            if self._counted:
                with trio.move_on_after(REPORT_INTERVAL):
                    await self._due.wait()
                self._due = trio.Event()
                self._counted = False
                self.report()
            if self._snapshots_owed and trio.current_time() >= self._next_snapshot:
                self._snapshots_owed -= 1
                self._next_snapshot = trio.current_time() + SNAPSHOT_INTERVAL
                self.send_snapshot()
            await trio.sleep(MIN_REPORT_GAP)

    def report(self) -> None:
        counts = self.guard.take_unreported(MAX_ITEMS)
        if counts:
            self._broadcast({"counts": [[source, n] for source, n in counts]})

    def send_snapshot(self, to: int | None = None) -> None:
        """List every connection counted here, to worker ``to`` or to all."""
        self._snapshots += 1
        opened = [list(item) for item in self.guard.local_connections()]
        chunks = list(_chunks(opened)) or [[]]
        for number, chunk in enumerate(chunks, 1):
            document: dict[str, Any] = {"snapshot": self._snapshots, "open": chunk}
            if number == len(chunks):
                document["last"] = True
            if to is None:
                self._broadcast(document)
            else:
                self._send(to, document)

    def hello_from(self, worker: int) -> None:
        """Worker ``worker`` (re)started: forget its predecessor's connections, tell it
        the bans and connections in force."""
        guard = self.guard
        if not 0 <= worker < self.link.count or worker == self.link.index:
            return
        guard.forget_worker(worker)
        bans = [[source, seconds] for source, seconds in guard.bans_in_force()]
        for chunk in _chunks(bans):
            self._send(worker, {"ban": chunk})
        self.send_snapshot(worker)

    # what the others tell this one -----------------------------------------

    def receive(self, data: bytes) -> None:
        """One document from another worker; anything malformed in it is skipped."""
        guard = self.guard
        try:
            document = json.loads(data)
            sender = int(document["from"])
        except (ValueError, KeyError, TypeError):
            logger.warning("worker %d: malformed guard report", self.link.index)
            return
        if sender == self.link.index or not 0 <= sender < self.link.count:
            return
        for source, seconds in _numbers(document.get("ban")):
            guard.apply_ban(source, seconds)
        for source, requests in _numbers(document.get("counts")):
            if requests.is_integer():
                guard.add_reported(source, int(min(requests, guard.flood.limits.requests + 1)))
        snapshot = document.get("snapshot", 0)
        if not _is_serial(snapshot) and snapshot != 0:
            return
        for item in _items(document.get("open"), 3):
            source, serial, opened_at = item
            if (
                _is_serial(serial)
                and isinstance(opened_at, int | float)
                and math.isfinite(opened_at)
            ):
                guard.remote_connection_opened(sender, source, serial, float(opened_at), snapshot)
        for item in _items(document.get("close"), 2):
            source, serial = item
            if _is_serial(serial):
                guard.remote_connection_closed(sender, source, serial)
        if snapshot and document.get("last") is True:
            guard.remote_snapshot_done(sender, snapshot)

    # sending ---------------------------------------------------------------

    def _broadcast(self, document: dict[str, Any]) -> None:
        for worker in range(self.link.count):
            if worker != self.link.index:
                self._send(worker, document)

    def _send(self, worker: int, document: dict[str, Any]) -> None:
        body = json.dumps({"from": self.link.index, **document}, separators=(",", ":"))
        self.link.send(worker, Handoff(KIND_GUARD, body.encode(), _NOWHERE, _NOWHERE))


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), MAX_ITEMS):
        yield items[start : start + MAX_ITEMS]


def _items(value: Any, size: int) -> Iterator[list[Any]]:
    """The well-formed ``[source, ...]`` items of ``size`` in a received list."""
    if not isinstance(value, list):
        return
    for item in value[:MAX_ITEMS]:
        if (
            isinstance(item, list)
            and len(item) == size
            and isinstance(item[0], str)
            and 0 < len(item[0]) <= MAX_SOURCE_CHARS
        ):
            yield item


def _numbers(value: Any) -> Iterator[tuple[str, float]]:
    """``[source, number]`` items whose number is positive and finite."""
    for source, number in _items(value, 2):
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue
        if 0 < number < math.inf:
            yield source, float(number)


def _is_serial(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
