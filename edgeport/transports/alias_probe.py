"""Is the connection holding a claimed ``.invalid`` alias still there?

A WebSocket client's alias stays with the first connection that presented
it (:mod:`.connections`). When another connection presents it, the honest
case is a browser that reconnected while its old TCP connection is
half-open (nothing tells edgeport before the idle timeout). :class:`AliasProber`
then pings the holder (RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an
endpoint MUST send a Pong frame in response"): a holder that answers within
``PROBE_TIMEOUT`` keeps its alias; one that does not is closed, and its
aliases pass to the waiting claim.

Bounded: one probe in flight per holder, at most one probe of a holder per
``PROBE_INTERVAL`` and ``MAX_PROBES_IN_FLIGHT`` at once; a probe not sent
for these reasons is counted as ``skipped`` in ``edgeport_alias_probes_total``.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import trio

from edgeport.metrics import METRICS
from edgeport.ratelimit import RateLimitedLog
from edgeport.transports.errors import ConnectionLost

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.transports.base import Connection

logger = logging.getLogger(__name__)

PROBE_TIMEOUT: Final = 5.0  # seconds for the holder's Pong
PROBE_INTERVAL: Final = 30.0  # seconds between two probes of one holder
MAX_PROBES_IN_FLIGHT: Final = 64

ALIAS_PROBES: Final = METRICS.registry.counter(
    "edgeport_alias_probes_total",
    "Probes of a connection holding a claimed .invalid alias, by result "
    "(answered: it keeps the alias; unanswered: it was closed; skipped: rate-limited).",
    ("result",),
)


@runtime_checkable
class Probeable(Protocol):
    """A connection that can prove it is alive (a WebSocket: Ping and Pong)."""

    async def probe(self) -> None:
        """Return once the peer answered; raise ConnectionLost when it cannot be asked."""
        ...


class AliasProber:
    """Probes holders of claimed aliases in ``nursery``; closes those that do not answer."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        timeout: float = PROBE_TIMEOUT,
        interval: float = PROBE_INTERVAL,
        max_in_flight: int = MAX_PROBES_IN_FLIGHT,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._nursery = nursery
        self.timeout = timeout
        self.interval = interval
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._in_flight: set[Connection] = set()
        self._last: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
        self._log = RateLimitedLog(logger)

    def probe(self, holder: Connection) -> None:
        """Start a probe of ``holder`` unless one runs, one ran lately, or too many run."""
        now = self._clock()
        last = self._last.get(holder)
        if (
            holder in self._in_flight
            or not isinstance(holder, Probeable)
            or (last is not None and now - last < self.interval)
            or len(self._in_flight) >= self.max_in_flight
        ):
            ALIAS_PROBES.labels(result="skipped").inc()
            return
        self._in_flight.add(holder)
        self._last[holder] = now
        self._nursery.start_soon(self._run, holder, holder)

    async def _run(self, holder: Connection, probeable: Probeable) -> None:
        answered = False
        try:
            with trio.move_on_after(self.timeout):
                await probeable.probe()
                answered = True
        except ConnectionLost:
            pass
        finally:
            self._in_flight.discard(holder)
        if answered:
            ALIAS_PROBES.labels(result="answered").inc()
            self._log.info("%s %s answered a probe: it keeps its aliases", holder.id, holder.peer)
            return
        ALIAS_PROBES.labels(result="unanswered").inc()
        self._log.warning(
            "%s %s did not answer a probe within %g s: closing it, its aliases %s go",
            holder.id,
            holder.peer,
            self.timeout,
            sorted(holder.aliases),
        )
        holder.close()
