"""A worker drains when its supervisor is gone, and does not wake before."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio
import trio.testing

from edgeport.workers import worker

DEADLINE = 10  # seconds


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd on this system")
async def test_a_worker_waits_for_its_supervisors_exit_without_waking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stand-in supervisor: this test's child, seen as the worker's parent.
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        monkeypatch.setattr(worker.os, "getppid", lambda: supervisor.pid)
        gone = trio.Event()
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker._watch_parent, supervisor.pid, gone.set)
                await trio.testing.wait_all_tasks_blocked()
                # No timer of its own (the next deadline is this test's): the watch
                # sleeps until the supervisor's pidfd turns readable.
                statistics = trio.lowlevel.current_statistics()
                assert statistics.seconds_to_next_deadline > DEADLINE / 2
                assert not gone.is_set()
                supervisor.kill()
                await gone.wait()
    finally:
        supervisor.kill()
        supervisor.wait()


async def test_a_worker_whose_supervisor_is_already_gone_drains_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    supervisor = subprocess.Popen([sys.executable, "-c", "pass"])
    supervisor.wait()  # exited and reaped: its pid names nobody (or somebody else)
    monkeypatch.setattr(worker.os, "getppid", lambda: 1)  # re-parented
    gone = trio.Event()
    with trio.fail_after(DEADLINE):
        await worker._watch_parent(supervisor.pid, gone.set)
    assert gone.is_set()
