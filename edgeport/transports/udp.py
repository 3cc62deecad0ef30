"""SIP over UDP: one datagram is one message (RFC 3261 §18.1, §18.2).

Replies leave from the listening socket, so their source port is the
listening port the peer knows (RFC 3261 §18.2.2, RFC 3581). Empty and
CRLF-only datagrams are keepalives (RFC 5626 §3.5.1 uses STUN on UDP, but
many clients send CRLF) and are dropped.

Reading drains what the kernel holds, up to ``MAX_BATCH`` datagrams per turn
of the scheduler: a trio socket read yields after every datagram, and a busy
event loop would otherwise leave datagrams (responses among them) waiting in
the kernel's buffer, unseen and unprioritised, until it overflows. Here they
reach the inbox at once, stamped with the time they were read.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer

if TYPE_CHECKING:
    from collections import Counter

    import trio

logger = logging.getLogger(__name__)

MAX_DATAGRAM_BYTES: Final = 65535  # the largest UDP payload
MAX_BATCH: Final = 64  # datagrams read per turn of the scheduler

DeliverDatagram = Callable[[bytes, Peer], None]


async def read_datagrams(
    sock: trio.socket.SocketType, deliver: DeliverDatagram, stats: Counter[str]
) -> None:
    """Deliver each datagram with its source until cancelled."""
    # A second descriptor of the same (non-blocking) socket, read without yielding.
    with socket.fromfd(sock.fileno(), sock.family, sock.type) as raw:
        raw.setblocking(False)
        while True:
            try:
                data, address = await sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (ConnectionRefusedError, ConnectionResetError) as exc:
                _receive_error(exc, stats)
                continue
            _one(data, address, deliver, stats)
            for _ in range(MAX_BATCH - 1):
                try:
                    data, address = raw.recvfrom(MAX_DATAGRAM_BYTES)
                except BlockingIOError:
                    break
                except (ConnectionRefusedError, ConnectionResetError) as exc:
                    _receive_error(exc, stats)
                    continue
                _one(data, address, deliver, stats)


def _receive_error(exc: OSError, stats: Counter[str]) -> None:
    # An ICMP error for an earlier send can surface here; the socket is fine.
    logger.debug("udp receive error: %s", exc)
    stats["udp_receive_errors"] += 1


def _one(
    data: bytes, address: tuple[str, int], deliver: DeliverDatagram, stats: Counter[str]
) -> None:
    if len(data) <= 4 and not data.strip(b"\r\n"):
        stats["udp_keepalives"] += 1
        return
    deliver(data, Peer(Transport.UDP, address[0], address[1]))
