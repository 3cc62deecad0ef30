"""SIP over UDP: one datagram is one message (RFC 3261 §18.1, §18.2).

Replies leave from the listening socket, so their source port is the
listening port the peer knows (RFC 3261 §18.2.2, RFC 3581). Empty and
CRLF-only datagrams are keepalives (RFC 5626 uses STUN on UDP, but many
clients send CRLF) and are dropped; a STUN Binding request is answered by
the listener (:mod:`.stun`).

The reader takes every datagram the socket holds before it waits again (up
to ``READ_BATCH``, then it lets other tasks run), and a send to a numeric
address is tried at once: a datagram socket almost never blocks, so neither
costs a pass through the scheduler. The non-blocking calls go through a
duplicate of the listening socket's descriptor (the same kernel socket).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer

if TYPE_CHECKING:
    from collections import Counter

logger = logging.getLogger(__name__)

MAX_DATAGRAM_BYTES: Final = 65535  # the largest UDP payload
READ_BATCH: Final = 64  # datagrams read in a row before other tasks get a turn

DeliverDatagram = Callable[[bytes, Peer], None]


class DatagramSocket:
    """A listening UDP socket with non-blocking fast paths for receiving and sending."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.family = sock.family
        self._raw = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        self._raw.setblocking(False)

    def close(self) -> None:
        """Close the socket; a reader waiting on it gets ``trio.ClosedResourceError``."""
        if self._raw.fileno() != -1:
            trio.lowlevel.notify_closing(self._raw)
            self._raw.close()
        self.sock.close()

    async def sendto(self, data: bytes, host: str, port: int) -> None:
        """Send one datagram; raises OSError. A name (not an address) is resolved by trio."""
        if _is_numeric(host, self.family):
            try:
                self._raw.sendto(data, (host, port))
                return
            except BlockingIOError:
                pass
        await self.sock.sendto(data, (host, port))

    def send_nowait(self, data: bytes, host: str, port: int) -> bool:
        """Send one datagram to a numeric address if the socket takes it at once; False
        when it would block or fails (for answers that may be lost, as keep-alives)."""
        try:
            self._raw.sendto(data, (host, port))
        except OSError:  # BlockingIOError included
            return False
        return True

    async def read(self, deliver: DeliverDatagram, stats: Counter[str]) -> None:
        """Deliver each datagram with its source until cancelled."""
        recvfrom = self._raw.recvfrom
        while True:
            await trio.lowlevel.wait_readable(self._raw)
            for _ in range(READ_BATCH):
                try:
                    data, address = recvfrom(MAX_DATAGRAM_BYTES)
                except BlockingIOError:
                    break
                except (ConnectionRefusedError, ConnectionResetError) as exc:
                    # An ICMP error for an earlier send can surface here; the socket is fine.
                    logger.debug("udp receive error: %s", exc)
                    stats["udp_receive_errors"] += 1
                    continue
                if len(data) <= 4 and not data.strip(b"\r\n"):
                    stats["udp_keepalives"] += 1
                    continue
                deliver(data, Peer(Transport.UDP, address[0], address[1]))
            else:
                await trio.lowlevel.checkpoint()


def _is_numeric(host: str, family: int) -> bool:
    try:
        socket.inet_pton(family, host)
    except OSError:
        return False
    return True
