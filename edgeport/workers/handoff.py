"""Hand-offs between worker processes over local Unix datagram sockets.

Each worker binds ``<rundir>/worker-<i>.handoff.sock``. A hand-off is one
datagram: a magic, a length-prefixed JSON head (kind, peer, local address)
and the raw SIP bytes. Sending never waits: a hand-off goes into the target's
bounded outbox, and one that finds the outbox full, or whose target is not
there (restarting), is dropped and counted in
``edgeport_handoff_drops_total`` (UDP peers retransmit). Every hand-off
written is counted in ``edgeport_handoffs_total{kind}``. What a hand-off means is
:mod:`edgeport.workers.mesh`'s business.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from edgeport.metrics import METRICS, OVERFLOW_LABEL_VALUE
from edgeport.sip.transport import Transport
from edgeport.transports import Peer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

MAGIC: Final = b"EPH1"
MAX_DATAGRAM: Final = 256 * 1024  # a hand-off larger than this is dropped (counted)
SOCKET_BUFFER: Final = 4 * 1024 * 1024  # asked of the kernel; it may grant less
MAX_PENDING: Final = 1024  # hand-offs received and not yet handled; more are dropped
MAX_OUTBOX: Final = 1024  # hand-offs queued for one other worker; more are dropped
KIND_RESPONSE: Final = "response"  # a response for the worker holding its client transaction
KIND_SEND: Final = "send"  # bytes to send over a connection the receiving worker holds
KIND_ANNOUNCE: Final = "announce"  # connections and aliases a worker took or lost
KIND_GUARD: Final = "guard"  # bans, counted requests and connections (edge protection)

HANDOFFS: Final = METRICS.registry.counter(
    "edgeport_handoffs_total",
    "Messages handed to another worker process, by kind.",
    ("kind",),
)
_KINDS: Final = frozenset({KIND_RESPONSE, KIND_SEND, KIND_ANNOUNCE})


def _kind_label(kind: str) -> str:
    # A received hand-off's kind is read from its datagram: bounded like any input.
    return kind if kind in _KINDS else OVERFLOW_LABEL_VALUE


HANDOFF_DROPS: Final = METRICS.registry.counter(
    "edgeport_handoff_drops_total",
    "Hand-offs to another worker dropped, by kind and reason (full, unreachable, too_large).",
    ("kind", "reason"),
    bounds={"kind": _kind_label},
)
_HEAD: Final = struct.Struct("!4sH")


class HandoffError(ValueError):
    """A datagram that is not a well-formed hand-off."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """One message for another worker: raw bytes and where they came from."""

    kind: str
    data: bytes
    peer: Peer
    local: Peer


def encode(handoff: Handoff) -> bytes:
    head = json.dumps(
        {
            "kind": handoff.kind,
            "transport": handoff.peer.transport.value,
            "peer": [handoff.peer.host, handoff.peer.port],
            "local": [handoff.local.transport.value, handoff.local.host, handoff.local.port],
        },
        separators=(",", ":"),
    ).encode()
    return _HEAD.pack(MAGIC, len(head)) + head + handoff.data


def decode(datagram: bytes) -> Handoff:
    """The hand-off in ``datagram``; raises HandoffError when it is not one."""
    if len(datagram) < _HEAD.size:
        raise HandoffError("datagram too short")
    magic, head_length = _HEAD.unpack_from(datagram)
    if magic != MAGIC:
        raise HandoffError("not a hand-off")
    end = _HEAD.size + head_length
    try:
        head = json.loads(datagram[_HEAD.size : end])
        peer_host, peer_port = head["peer"]
        local_transport, local_host, local_port = head["local"]
        return Handoff(
            kind=str(head["kind"]),
            data=datagram[end:],
            peer=Peer(Transport(head["transport"]), str(peer_host), int(peer_port)),
            local=Peer(Transport(local_transport), str(local_host), int(local_port)),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise HandoffError(f"malformed hand-off head: {error}") from None


async def _connect(path: str) -> trio.socket.SocketType | None:
    """A datagram socket connected to ``path``; None when nothing listens there."""
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, SOCKET_BUFFER)
    try:
        await sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _dropped(kind: str, reason: str, target: int) -> None:
    HANDOFF_DROPS.labels(kind=kind, reason=reason).inc()
    logger.debug("hand-off to worker %d dropped: %s", target, reason)


def handoff_path(rundir: str | Path, index: int) -> str:
    return str(Path(rundir) / f"worker-{index}.handoff.sock")


class HandoffLink:
    """This worker's hand-off sockets: an outbox and a connected socket per other worker,
    and one socket receiving for itself.

    ``send`` never waits: it queues the datagram in the target's bounded
    outbox (``MAX_OUTBOX``), or drops and counts it when that is full. A task
    per target writes its outbox in order on a socket connected to the
    target's, waiting while the target's queue is full (the kernel holds
    only a few datagrams per socket: ``net.unix.max_dgram_qlen``). A target
    that is not there (restarting) costs what is queued for it, counted.
    """

    def __init__(self, rundir: str | Path, index: int, count: int) -> None:
        self.rundir = str(rundir)
        self.index = index
        self.count = count
        self._unreachable: set[int] = set()  # targets whose socket refused the last write
        self._outboxes: dict[int, trio.MemorySendChannel[tuple[str, bytes]]] = {}
        self._readers: dict[int, trio.MemoryReceiveChannel[tuple[str, bytes]]] = {}
        for target in range(count):
            if target != index:
                outbox, reader = trio.open_memory_channel[tuple[str, bytes]](MAX_OUTBOX)
                self._outboxes[target] = outbox
                self._readers[target] = reader

    def reachable(self, target: int) -> bool:
        """False while worker ``target``'s socket refuses hand-offs (it died, not yet back)."""
        return target in self._outboxes and target not in self._unreachable

    def mark_reachable(self, target: int) -> None:
        """Worker ``target`` is back (it said hello)."""
        self._unreachable.discard(target)

    def close(self) -> None:
        for outbox in self._outboxes.values():
            outbox.close()

    def send(self, target: int, handoff: Handoff) -> bool:
        """Queue ``handoff`` for worker ``target`` without waiting; False (counted) when dropped."""
        datagram = encode(handoff)
        outbox = self._outboxes.get(target)
        reason = None
        if outbox is None:
            reason = "unreachable"
        elif len(datagram) > MAX_DATAGRAM:
            reason = "too_large"
        else:
            try:
                outbox.send_nowait((handoff.kind, datagram))
            except trio.WouldBlock:
                reason = "full"
            except trio.ClosedResourceError:
                reason = "unreachable"
        if reason is not None:
            _dropped(handoff.kind, reason, target)
            return False
        return True

    async def _write_outbox(self, target: int) -> None:
        """Write what is queued for ``target``, in order, connecting (again) as needed."""
        path = handoff_path(self.rundir, target)
        sock: trio.socket.SocketType | None = None
        try:
            async for kind, datagram in self._readers[target]:
                reason: str | None = "unreachable"
                for _attempt in range(
                    2
                ):  # once more on a fresh socket: the peer may have restarted
                    if sock is None:
                        sock = await _connect(path)
                        if sock is None:
                            break
                    try:
                        await sock.send(datagram)
                    except OSError as error:
                        sock.close()
                        sock = None
                        if error.errno == errno.EMSGSIZE:
                            reason = "too_large"
                            break
                        continue
                    reason = None
                    break
                if reason is None:
                    self._unreachable.discard(target)
                    HANDOFFS.labels(kind=kind).inc()
                else:
                    if reason == "unreachable":
                        self._unreachable.add(target)
                    _dropped(kind, reason, target)
        finally:
            if sock is not None:
                sock.close()

    async def serve(
        self,
        deliver: Callable[[Handoff], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Receive hand-offs for this worker and run ``deliver`` on each, in arrival order."""
        path = handoff_path(self.rundir, self.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a previous worker with this index left it
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, SOCKET_BUFFER)
        await sock.bind(path)
        pending: collections.deque[Handoff] = collections.deque()

        async def deliver_oldest() -> None:
            handoff = pending.popleft()
            try:
                await deliver(handoff)
            except Exception:
                logger.exception("handling a hand-off from %s failed", handoff.peer)

        try:
            async with trio.open_nursery() as nursery:
                for target in self._readers:
                    nursery.start_soon(self._write_outbox, target)
                task_status.started()
                while True:
                    datagram = await sock.recv(MAX_DATAGRAM + 1)
                    try:
                        handoff = decode(datagram)
                    except HandoffError as error:
                        logger.warning("worker %d: %s", self.index, error)
                        continue
                    if len(pending) >= MAX_PENDING:
                        HANDOFF_DROPS.labels(kind=handoff.kind, reason="full").inc()
                        continue
                    pending.append(handoff)
                    nursery.start_soon(deliver_oldest)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
