"""Per-source request rate limit with temporary bans, in the spirit of Kamailio's pike.

Sans-IO: every call takes the current time as a number, so the limiter is
tested with plain numbers.

Each source host has two counters over fixed buckets of ``window`` seconds;
the rate over the sliding window ending now is estimated as the previous
bucket's count weighted by how much of it the window still covers, plus the
current bucket's count (the two-bucket sliding counter). A source whose
estimate goes over ``requests`` is banned for ``ban_time`` seconds; a ban
ends by itself when it is next looked at after that time.

With worker processes (:mod:`edgeport.workers.guard_sync`) a limiter also
counts the requests other workers report (``count(host, now, requests)``)
and holds the bans they started (``apply_ban``).

Memory is bounded: at most ``max_tracked`` sources are counted and at most
``max_tracked`` bans are held. A new source beyond that evicts the source
whose counting bucket started longest ago (spoofed-source floods churn
through the table instead of growing it); a new ban beyond that evicts the
oldest ban.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edgeport.config.model import (
    DEFAULT_FLOOD_BAN_TIME,
    DEFAULT_FLOOD_MAX_TRACKED,
    DEFAULT_FLOOD_REQUESTS,
    DEFAULT_FLOOD_WINDOW,
)


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """Requests allowed per ``window`` seconds per source; ``requests`` 0 turns it off."""

    requests: int = DEFAULT_FLOOD_REQUESTS
    window: float = DEFAULT_FLOOD_WINDOW
    ban_time: float = DEFAULT_FLOOD_BAN_TIME
    max_tracked: int = DEFAULT_FLOOD_MAX_TRACKED

    @property
    def enabled(self) -> bool:
        return self.requests > 0


class _Counter:
    __slots__ = ("current", "previous", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.current = 0
        self.previous = 0


class FloodLimiter:
    """Counts requests per source host and bans the ones over the limit."""

    def __init__(self, limits: FloodLimits) -> None:
        if limits.window <= 0 or limits.ban_time < 0 or limits.max_tracked < 1:
            raise ValueError("window must be positive, ban_time >= 0, max_tracked >= 1")
        self.limits = limits
        self._counters: OrderedDict[str, _Counter] = OrderedDict()
        self._bans: OrderedDict[str, float] = OrderedDict()  # host -> ban end, in ban order
        self.bans_started = 0
        self.evicted = 0

    def reconfigure(self, limits: FloodLimits) -> None:
        """New limits from the next request on (a reload). The bans in force keep
        their end; counts go on under the new window. A smaller ``max_tracked``
        drops the sources (and bans) counted longest ago."""
        if limits.window <= 0 or limits.ban_time < 0 or limits.max_tracked < 1:
            raise ValueError("window must be positive, ban_time >= 0, max_tracked >= 1")
        self.limits = limits
        while len(self._counters) > limits.max_tracked:
            self._counters.popitem(last=False)
            self.evicted += 1
        while len(self._bans) > limits.max_tracked:
            self._bans.popitem(last=False)

    def banned(self, host: str, now: float) -> bool:
        """True while ``host`` is banned; an expired ban is lifted here."""
        until = self._bans.get(host)
        if until is None:
            return False
        if now < until:
            return True
        del self._bans[host]
        return False

    def count(self, host: str, now: float, requests: int = 1) -> bool:
        """Count ``requests`` from ``host`` (one received here, or several another worker
        process reported); True when they start a ban."""
        limits = self.limits
        counter = self._counters.get(host)
        if counter is None:
            if len(self._counters) >= limits.max_tracked:
                self._counters.popitem(last=False)
                self.evicted += 1
            counter = self._counters[host] = _Counter(now)
        elapsed = now - counter.start
        if elapsed >= limits.window:
            buckets = int(elapsed // limits.window)
            counter.previous = counter.current if buckets == 1 else 0
            counter.current = 0
            counter.start += buckets * limits.window
            elapsed = now - counter.start
            self._counters.move_to_end(host)
        counter.current += requests
        weight = 1.0 - elapsed / limits.window
        if counter.current + counter.previous * weight <= limits.requests:
            return False
        self._ban(host, now)
        del self._counters[host]  # counting starts afresh after the ban
        return True

    def _ban(self, host: str, now: float) -> None:
        if host not in self._bans and len(self._bans) >= self.limits.max_tracked:
            self._bans.popitem(last=False)
        self._bans[host] = now + self.limits.ban_time
        self._bans.move_to_end(host)
        self.bans_started += 1

    def apply_ban(self, host: str, now: float, seconds: float) -> None:
        """Ban ``host`` for ``seconds`` (at most ``ban_time``): a ban another worker
        process started. Not counted in ``bans_started``."""
        seconds = min(seconds, self.limits.ban_time)
        if seconds <= 0 or self.banned(host, now):
            return
        if len(self._bans) >= self.limits.max_tracked:
            self._bans.popitem(last=False)
        self._bans[host] = now + seconds
        self._counters.pop(host, None)

    def bans_in_force(self, now: float) -> list[tuple[str, float]]:
        """Every ban in force at ``now``: (host, seconds left), oldest first."""
        return [(host, until - now) for host, until in self._bans.items() if until > now]

    def banned_now(self, now: float) -> int:
        """The number of sources banned at ``now`` (expired bans are dropped)."""
        bans = self._bans
        # Bans are kept in the order they started and those started here all last
        # ban_time: the expired ones are mostly at the front. A ban another worker
        # started may end sooner than the ones before it.
        while bans:
            host, until = next(iter(bans.items()))
            if until > now:
                break
            del bans[host]
        return sum(1 for until in bans.values() if until > now)

    @property
    def tracked(self) -> int:
        return len(self._counters)
