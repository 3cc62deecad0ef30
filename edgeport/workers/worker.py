"""One worker process: a whole edgeport sharing the ports with its siblings.

``edgeport worker --index i --count N --rundir DIR`` (started by the
supervisor, never by hand) runs :func:`run_worker`: the listening sockets
get SO_REUSEPORT, the proxy stamps its index in the branch of the Via it
adds, responses of other workers are handed to them, and health and metrics
are served on ``DIR/worker-<i>.http.sock`` for the supervisor to gather.
The worker stops (drains) when its supervisor goes away.
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
from typing import TYPE_CHECKING, Final, Protocol

import trio

from edgeport.transports.sockets import share_listening_ports
from edgeport.workers.branch import worker_branch_factory
from edgeport.workers.guard_sync import GuardExchange
from edgeport.workers.handoff import HandoffLink
from edgeport.workers.mesh import WorkerMesh

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.config import EdgePortConfig
    from edgeport.server import RunningServer
    from edgeport.transports import InboundMessage

logger = logging.getLogger(__name__)


class InboundHandling(Protocol):
    """What takes the messages a worker reads or is handed (the proxy)."""

    async def handle_inbound(self, inbound: InboundMessage) -> None: ...


PARENT_POLL_INTERVAL: Final = 1.0  # seconds between checks that the supervisor is alive


def health_path(rundir: str | Path, index: int) -> str:
    return str(Path(rundir) / f"worker-{index}.http.sock")


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Which worker this process is, of how many, and where the shared sockets live."""

    index: int
    count: int
    rundir: str

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} is not below the count {self.count}")

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

    async def serve_handoffs(
        self, proxy: InboundHandling, *, task_status: trio.TaskStatus[WorkerMesh]
    ) -> None:
        """Receive hand-offs for ``proxy``; report the mesh (its ``handle_inbound`` is the
        transports' handler; ``attach`` it to the transports once they run)."""
        link = HandoffLink(self.rundir, self.index, self.count)
        mesh = WorkerMesh(link, proxy.handle_inbound)
        mesh.guard_exchange = GuardExchange(link)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(link.serve, mesh.deliver)
                nursery.start_soon(mesh.guard_exchange.run)
                task_status.started(mesh)
        finally:
            link.close()


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


async def run_worker(config: EdgePortConfig, role: WorkerRole) -> None:
    """Serve as worker ``role.index`` until a signal (drain) or the supervisor's end."""
    from edgeport import server  # late: the worker's parent imports none of it

    config = worker_share(config, role.count)
    share_listening_ports()
    parent = os.getppid()
    async with trio.open_nursery() as nursery:

        async def serve_then_stop(*, task_status: trio.TaskStatus[RunningServer]) -> None:
            await server.serve(config, handle_signals=True, worker=role, task_status=task_status)
            nursery.cancel_scope.cancel()

        running: RunningServer = await nursery.start(serve_then_stop)
        logger.info("worker %d of %d serving (pid %d)", role.index, role.count, os.getpid())
        nursery.start_soon(functools.partial(_watch_parent, parent, running.shutdown))


async def _watch_parent(parent: int, shutdown: Callable[[], None]) -> None:
    """Drain when the supervisor is gone (this process was re-parented)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells a process its parent died
        await trio.sleep(PARENT_POLL_INTERVAL)
    logger.warning("the supervisor (pid %d) is gone: draining", parent)
    shutdown()
