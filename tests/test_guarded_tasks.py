"""The message path's background tasks: started in the proxy's nursery, guarded."""

from __future__ import annotations

import logging

import pytest
import trio

from edgeport.metrics import EdgeportMetrics
from edgeport.proxy.tasks import GuardedTasks


async def test_a_job_queued_once_the_proxy_tasks_have_ended_is_dropped_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # At shutdown the proxy's nursery ends before the connections do; a connection to a
    # next hop that ends then reports a transport error for each transaction still on
    # it, and the forward lifecycle queues its failover as a task. That task was started
    # in the ended nursery: RuntimeError ("Nursery is closed to new arrivals") raised
    # into the transaction layer, logged as an ERROR with a traceback per transaction.
    metrics = EdgeportMetrics()
    async with trio.open_nursery() as nursery:
        tasks = GuardedTasks(nursery, metrics)
    ran: list[str] = []

    async def job() -> None:
        ran.append("job")

    with caplog.at_level(logging.DEBUG, logger="edgeport.proxy.tasks"):
        tasks.spawn(job)
    await trio.sleep(0)
    assert ran == []
    assert "after the message path's tasks ended" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert metrics.dropped_messages.labels(reason="internal_error").value == 0


async def test_a_job_that_fails_is_logged_and_counted_and_the_nursery_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = EdgeportMetrics()
    ran: list[str] = []

    async def broken() -> None:
        raise ValueError("defect")

    async def fine() -> None:
        ran.append("fine")

    async with trio.open_nursery() as nursery:
        tasks = GuardedTasks(nursery, metrics)
        tasks.spawn(broken)
        tasks.spawn(fine)
    assert ran == ["fine"]
    assert "a task of the message path failed" in caplog.text
    assert metrics.dropped_messages.labels(reason="internal_error").value == 1
