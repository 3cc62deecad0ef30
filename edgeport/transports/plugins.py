"""What the transport parts are given at construction to tell or ask the rest of edgeport.

Two interfaces, each optional, each passed to :func:`edgeport.transports.serve_transports`
(and from there to the parts that use it); nothing is set on a part later:

- :class:`CaptureSink`: told of every message received and sent (HEP capture,
  :class:`edgeport.capture.sender.HepCapture`). Called on the message path:
  it must not block, raise or keep the caller.
- :class:`RemoteHolder`: may take a send for a peer whose connection another
  worker process holds (:mod:`edgeport.workers.mesh`).

The connection table's own interfaces (``TableObserver``, ``HolderProber``)
live with the table, in :mod:`.connections`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgeport.transports.base import Connection, InboundMessage, Peer
    from edgeport.transports.udp import DatagramSocket


class CaptureSink(Protocol):
    """Copies of what the transports read and write."""

    def received(self, message: InboundMessage) -> None:
        """A message read from ``message.peer`` (before it waits in the inbox)."""
        ...

    def sent_on(self, data: bytes, conn: Connection) -> None:
        """A message written on a stream connection."""
        ...

    def sent_datagram(self, data: bytes, udp: DatagramSocket, host: str, port: int) -> None:
        """A datagram sent from a UDP listening socket to ``host``:``port``."""
        ...


class RemoteHolder(Protocol):
    """Whoever else may hold a peer's connection (another worker process)."""

    def send_elsewhere(self, peer: Peer, data: bytes) -> bool:
        """Hand ``data`` to the holder of ``peer``'s connection; False when there is none
        and this process should send it itself.

        Called only for a stream peer (or a ``.invalid`` alias) that has no live
        connection here. Raises :class:`edgeport.transports.NoRoute` when the holder
        cannot take it.
        """
        ...
