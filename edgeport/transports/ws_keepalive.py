"""When to Ping a silent WebSocket peer, and when to give up on it (sans-IO).

RFC 6455 §5.5.2: "An endpoint MAY send a Ping frame any time after the
connection is established and before the connection is closed", and "A Ping
frame may serve either as a keepalive or as a means to verify that the remote
endpoint is still responsive"; the peer answers it with a Pong. edgeport
pings a WS or WSS peer it has heard nothing from for
``spec.connections.webSocketPingInterval`` seconds, and again every
interval while it stays silent, so NATs and load balancers see traffic and
keep the connection (a browser sends no Pings, and most SIP libraries for
the browser no keep-alives). A peer silent for ``UNANSWERED_INTERVALS``
intervals (two Pings left unanswered) is gone: its connection is closed, so
its ``.invalid`` aliases and transactions go at once instead of at the idle
timeout. Anything received counts as hearing from the peer.

Plain arithmetic on the times the reader gives it: no clock, no I/O.
"""

from __future__ import annotations

import enum
import math
from typing import Final

# Intervals of silence before the connection is closed: Pings go out after
# one and two, so the first Ping has two intervals to be answered.
UNANSWERED_INTERVALS: Final = 3


class Due(enum.Enum):
    """What the reader must do now."""

    NOTHING = "nothing"
    PING = "ping"
    CLOSE = "close"


class KeepalivePings:
    """The Ping schedule of one connection; ``interval`` 0 never pings."""

    __slots__ = ("heard", "interval", "pinged")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.heard = now  # when the peer last sent anything
        self.pinged = now  # when the last Ping went (or the schedule began)

    def heard_from(self, now: float) -> None:
        self.heard = now

    def sent_ping(self, now: float) -> None:
        self.pinged = now

    @property
    def deadline(self) -> float:
        """When the reader must wake up to ping or to close, if the peer stays silent."""
        if self.interval <= 0:
            return math.inf
        return min(self._next_ping, self._give_up_at)

    def due(self, now: float) -> Due:
        if self.interval <= 0:
            return Due.NOTHING
        if now >= self._give_up_at:
            return Due.CLOSE
        if now >= self._next_ping:
            return Due.PING
        return Due.NOTHING

    @property
    def _next_ping(self) -> float:
        return max(self.heard, self.pinged) + self.interval

    @property
    def _give_up_at(self) -> float:
        return self.heard + self.interval * UNANSWERED_INTERVALS
