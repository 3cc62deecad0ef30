"""The SIP transports edgeport speaks, and what each one implies.

RFC 3261 §18 (UDP, TCP, TLS), RFC 7118 (WS, WSS). The Via token is the
``transport`` part of ``SIP/2.0/<token>``.
"""

from __future__ import annotations

import enum
from typing import Final


class Transport(enum.Enum):
    """A transport protocol; the value is the lower-case config name."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"
    WS = "ws"
    WSS = "wss"

    @property
    def reliable(self) -> bool:
        """RFC 3261 §17: retransmission timers run only on unreliable transports."""
        return self is not Transport.UDP

    @property
    def secure(self) -> bool:
        return self in (Transport.TLS, Transport.WSS)

    @property
    def stream(self) -> bool:
        """Connection-oriented: one connection carries many messages."""
        return self is not Transport.UDP

    @property
    def default_port(self) -> int:
        """RFC 3261 §19.1.2: 5060, or 5061 for TLS.

        WS and WSS follow their plain and secure peers.
        """
        return _DEFAULT_PORTS[self]

    @classmethod
    def from_via_token(cls, token: str) -> Transport:
        """``udp``/``UDP`` -> Transport.UDP. Raises ValueError for SCTP and unknowns."""
        return cls(token.lower())


_DEFAULT_PORTS: Final = {
    Transport.UDP: 5060,
    Transport.TCP: 5060,
    Transport.TLS: 5061,
    Transport.WS: 5060,
    Transport.WSS: 5061,
}
