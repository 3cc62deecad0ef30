"""SIP over UDP: one datagram is one message (RFC 3261 §18.1, §18.2).

Replies leave from the listening socket, so their source port is the
listening port the peer knows (RFC 3261 §18.2.2, RFC 3581). Empty and
CRLF-only datagrams are keepalives (RFC 5626 §3.5.1 uses STUN on UDP, but
many clients send CRLF) and are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer

if TYPE_CHECKING:
    from collections import Counter

    import trio

logger = logging.getLogger(__name__)

MAX_DATAGRAM_BYTES: Final = 65535  # the largest UDP payload

DeliverDatagram = Callable[[bytes, Peer], None]


async def read_datagrams(
    sock: trio.socket.SocketType, deliver: DeliverDatagram, stats: Counter[str]
) -> None:
    """Deliver each datagram with its source until cancelled."""
    while True:
        try:
            data, address = await sock.recvfrom(MAX_DATAGRAM_BYTES)
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            # An ICMP error for an earlier send can surface here; the socket is fine.
            logger.debug("udp receive error: %s", exc)
            stats["udp_receive_errors"] += 1
            continue
        if len(data) <= 4 and not data.strip(b"\r\n"):
            stats["udp_keepalives"] += 1
            continue
        deliver(data, Peer(Transport.UDP, address[0], address[1]))
