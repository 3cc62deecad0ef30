"""One worker process: a whole edgeport sharing the ports with its siblings.

``edgeport worker --index i --count N --rundir DIR`` (started by the
supervisor, never by hand) runs :func:`run_worker`: the listening sockets
get SO_REUSEPORT, the proxy stamps its index in the branch of the Via it
adds, responses of other workers are handed to them, and health and metrics
are served on ``DIR/worker-<i>.http.sock`` for the supervisor to gather.
The worker stops (drains) when its supervisor goes away.

:func:`edgeport.server.serve` knows nothing of workers: this module gives it
a worker's parts as its plain parameters (the branch factory, the loop key,
this worker's share of the limits and of the memory budget, the health
socket) and :class:`WorkerHandoffs`, the hand-offs to the siblings
(:class:`edgeport.server.Handoffs`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from edgeport.config import BUILTIN_PROCESSOR
from edgeport.memory import MemoryBudget
from edgeport.transports.sockets import share_listening_ports
from edgeport.workers.branch import worker_branch_factory
from edgeport.workers.guard_sync import GuardExchange
from edgeport.workers.handoff import HandoffLink
from edgeport.workers.mesh import HandoffReceiver, ResponseRouter, WorkerMesh

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.config import EdgePortConfig
    from edgeport.protection import EdgeGuard
    from edgeport.reload.reloader import ConfigSource
    from edgeport.server import RunningServer
    from edgeport.transports import Handler, TransportLayer
    from edgeport.transports.connections import TableObserver
    from edgeport.transports.plugins import RemoteHolder

logger = logging.getLogger(__name__)

PARENT_POLL_INTERVAL: Final = 1.0  # seconds between checks that the supervisor is alive


def health_path(rundir: str | Path, index: int) -> str:
    return str(Path(rundir) / f"worker-{index}.http.sock")


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Which worker this process is, of how many, and where the shared sockets live."""

    index: int
    count: int
    rundir: str
    processor: str | None = None  # the supervisor's built-in processor, for "builtin"

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} is not below the count {self.count}")

    def config_for(self, config: EdgePortConfig) -> EdgePortConfig:
        """``config`` as this worker runs it: the supervisor's processor socket for the
        built-in processor, and this worker's share of the limits (at the start and
        at each reload)."""
        if self.processor is not None and config.processor.addr == BUILTIN_PROCESSOR:
            processor = dataclasses.replace(config.processor, addr=self.processor)
            config = dataclasses.replace(config, processor=processor)
        return worker_share(config, self.count)

    @property
    def health_path(self) -> str:
        return health_path(self.rundir, self.index)

    def branch_factory(self) -> Callable[[], str]:
        return worker_branch_factory(self.index)

    def loop_key(self) -> bytes:
        """The key of the loop mark in branches, the same in every worker of one
        edgeport (its run directory is unique to the supervisor's run)."""
        return hashlib.blake2b(
            self.rundir.encode(), digest_size=16, person=b"edgeport-loop"
        ).digest()


class WorkerHandoffs:
    """This worker's hand-offs to its siblings, as :func:`edgeport.server.serve` plugs
    them in (:class:`edgeport.server.Handoffs`).

    Built before the server: the mesh is the transports' table observer and
    remote holder, and :meth:`inbound_handler` their handler; :meth:`serve`
    then receives from the siblings against the running transports.
    """

    def __init__(self, role: WorkerRole) -> None:
        self.link = HandoffLink(role.rundir, role.index, role.count)
        self.mesh = WorkerMesh(self.link)
        # First in every outbox, written once ``serve`` has bound this worker's
        # socket (so the answers find it).
        self.mesh.hello()

    @property
    def table_observer(self) -> TableObserver:
        return self.mesh

    @property
    def remote(self) -> RemoteHolder:
        return self.mesh

    def inbound_handler(self, local: Handler) -> Handler:
        """The transports' handler: responses of other workers go there, the rest to
        ``local`` (the proxy's)."""
        return ResponseRouter(self.link, local).handle_inbound

    async def serve(
        self,
        transports: TransportLayer,
        guard: EdgeGuard,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Receive hand-offs for ``transports`` (responses go into their inbox); share
        what ``guard`` decides with the siblings."""
        exchange = GuardExchange(self.link, guard)
        receiver = HandoffReceiver(
            self.mesh,
            transports.connections,
            transports.send_on,
            transports.dispatch.queue,
            exchange,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.link.serve, receiver.deliver)
                nursery.start_soon(exchange.run)
                task_status.started()
        finally:
            self.link.close()


class _WorkerTag(logging.Filter):
    """Adds ``worker=<i>`` to every log line of a worker process."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def tag_log_lines(index: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerTag(index))


def worker_share(config: EdgePortConfig, count: int) -> EdgePortConfig:
    """``config`` for one of ``count`` workers: ``spec.maxInFlight`` and
    ``spec.connections.max`` divided among them (each gets the ceiling of its share).

    Divided, not counted across the workers: both are checked on every message or
    connection, before any other work, and a shared count would put a round trip
    between processes on that path. The kernel spreads datagrams and connections
    evenly over the workers (SO_REUSEPORT), so the shares add up to the configured
    bound. (The per-source limits, where one source may land on any worker, are
    held for the whole edgeport: :mod:`.guard_sync`.)
    """
    connections = dataclasses.replace(
        config.connections, max_connections=math.ceil(config.connections.max_connections / count)
    )
    return dataclasses.replace(
        config,
        max_in_flight=math.ceil(config.max_in_flight / count),
        connections=connections,
    )


async def run_worker(
    config: EdgePortConfig, role: WorkerRole, source: ConfigSource | None = None
) -> None:
    """Serve as worker ``role.index`` until a signal (drain) or the supervisor's end.

    ``config`` is the file's; ``source`` (where it came from, with
    :meth:`WorkerRole.config_for` as its ``prepare``) lets the supervisor
    reload it (``POST /reload`` on the health socket).
    """
    from edgeport import server  # late: the worker's parent imports none of it

    config = role.config_for(config)
    share_listening_ports()
    parent = os.getppid()
    handoffs = WorkerHandoffs(role)
    async with trio.open_nursery() as nursery:

        async def serve_then_stop(*, task_status: trio.TaskStatus[RunningServer]) -> None:
            await server.serve(
                config,
                handle_signals=True,
                branch_factory=role.branch_factory(),
                loop_key=role.loop_key(),
                # spec.limits.memory: each worker gets its part.
                memory=MemoryBudget.per_worker(config.limits.memory, role.count),
                handoffs=handoffs,
                health_unix_path=role.health_path,
                source=source,
                watch_files=False,  # the supervisor watches, and reloads every worker
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()

        running: RunningServer = await nursery.start(serve_then_stop)
        logger.info("worker %d of %d serving (pid %d)", role.index, role.count, os.getpid())
        nursery.start_soon(functools.partial(_watch_parent, parent, running.shutdown))


async def _watch_parent(parent: int, shutdown: Callable[[], None]) -> None:
    """Drain when the supervisor is gone.

    A pidfd of the supervisor (Linux 5.3) turns readable when it exits: no
    wake-up until then. Where there is none, this process looks whether it
    was re-parented every ``PARENT_POLL_INTERVAL``.
    """
    pidfd = _open_pidfd(parent)
    if pidfd is not None:
        try:
            # Still its child after the pidfd was opened: the pidfd is of the live
            # supervisor, not of a process that got its number since.
            if os.getppid() == parent:
                await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)
    else:
        while os.getppid() == parent:  # noqa: ASYNC110 - no pidfd: nothing else tells
            await trio.sleep(PARENT_POLL_INTERVAL)
    logger.warning("the supervisor (pid %d) is gone: draining", parent)
    shutdown()


def _open_pidfd(pid: int) -> int | None:
    """A pidfd of process ``pid``, or None where the system has none (or it is gone)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None
    return fd
