"""SIP transaction timers as data: the base values and every timer derived from them.

RFC 3261 §17 and its Table 4 (Appendix A). The transaction state machines in
``edgeport.sip.transaction`` ask this module how long each timer runs; nothing
here reads a clock. Timer C (RFC 3261 §16.6 step 11) is the proxy's INVITE
timer; it lives here too so that one frozen value describes every timer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

# RFC 3261 §17.1.1.2: "Timer D ... at least 32 seconds for unreliable transports".
TIMER_D_UNRELIABLE: Final = 32.0  # seconds

# RFC 3261 §16.6 step 11: "The timer MUST be larger than 3 minutes."
MIN_TIMER_C: Final = 180.0  # seconds


class Timer(enum.Enum):
    """The RFC 3261 transaction timers, by their letters."""

    A = "A"  # INVITE request retransmit (client, unreliable)
    B = "B"  # INVITE transaction timeout (client)
    C = "C"  # proxy INVITE timeout (RFC 3261 §16.6 step 11)
    D = "D"  # wait for response retransmits after a non-2xx final (INVITE client)
    E = "E"  # non-INVITE request retransmit (client, unreliable)
    F = "F"  # non-INVITE transaction timeout (client)
    G = "G"  # INVITE final response retransmit (server, unreliable)
    H = "H"  # wait for ACK (INVITE server)
    I = "I"  # noqa: E741 -- the RFC's name; wait for ACK retransmits (INVITE server)
    J = "J"  # wait for request retransmits (non-INVITE server)
    K = "K"  # wait for response retransmits (non-INVITE client)

    # Members are singletons: hashed by identity, in C, rather than by
    # Enum's own __hash__ (Python code run on every table lookup).
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The base timer values (RFC 3261 Table 4), in seconds.

    ``t1`` is the round-trip estimate, ``t2`` the retransmit cap for non-INVITE
    requests and INVITE responses, ``t4`` how long a message may live in the
    network. ``timer_c`` is the proxy's INVITE timeout.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_c: float = MIN_TIMER_C + 5.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError(f"timers need 0 < t1 <= t2, got t1={self.t1} t2={self.t2}")
        if self.t4 <= 0:
            raise ValueError(f"t4 must be positive, got {self.t4}")
        if self.timer_c <= MIN_TIMER_C:
            raise ValueError(f"timer_c must be larger than {MIN_TIMER_C} s, got {self.timer_c}")

    @property
    def transaction_timeout(self) -> float:
        """Timers B, F, H (and J on unreliable transports): 64*T1."""
        return 64 * self.t1

    def duration(self, timer: Timer, *, reliable: bool) -> float:
        """How long ``timer`` runs when started; 0 means it fires at once.

        For the retransmit timers A, E and G this is the first interval; later
        intervals come from ``next_interval``.
        """
        match timer:
            case Timer.A | Timer.E | Timer.G:
                return self.t1
            case Timer.B | Timer.F | Timer.H:
                return self.transaction_timeout
            case Timer.C:
                return self.timer_c
            case Timer.D:
                return 0.0 if reliable else TIMER_D_UNRELIABLE
            case Timer.J:
                return 0.0 if reliable else self.transaction_timeout
            case Timer.I | Timer.K:
                return 0.0 if reliable else self.t4

    def next_interval(self, timer: Timer, previous: float) -> float:
        """The retransmit interval after ``previous`` for Timer A, E or G.

        RFC 3261 §17.1.1.2: Timer A doubles each time, without a cap.
        RFC 3261 §17.1.2.2 and §17.2.1: Timers E and G double up to T2.
        """
        if timer is Timer.A:
            return 2 * previous
        if timer in (Timer.E, Timer.G):
            return min(2 * previous, self.t2)
        raise ValueError(f"Timer {timer.value} is not a retransmit timer")
