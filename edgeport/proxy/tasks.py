"""Background tasks of the message path, each guarded: a defect in one is logged
and counted, never raised into the nursery (which would end the server)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import trio

    from edgeport.metrics import EdgeportMetrics

logger = logging.getLogger(__name__)


class GuardedTasks:
    """Starts tasks in ``nursery`` (one that lives as long as the server)."""

    def __init__(self, nursery: trio.Nursery, metrics: EdgeportMetrics) -> None:
        self._nursery = nursery
        self._metrics = metrics

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn`` in a task of its own. Once the nursery has ended (the server is
        stopping: a connection that closes last reports its transactions' transport
        errors) there is nothing left to run it: it is dropped, with a debug line."""
        try:
            self._nursery.start_soon(self._guarded, fn)
        except RuntimeError:  # trio: "Nursery is closed to new arrivals"
            logger.debug("a job queued after the message path's tasks ended is dropped")

    async def _guarded(self, fn: Callable[[], Awaitable[object]]) -> None:
        try:
            await fn()
        except Exception:
            logger.exception("a task of the message path failed")
            self._metrics.dropped_messages.labels(reason="internal_error").inc()
