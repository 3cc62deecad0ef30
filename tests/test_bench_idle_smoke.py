"""The idle benchmark's machinery, run briefly so it cannot rot.

Real processes on 127.0.0.1 (edgeport with two workers in front of the
built-in processor over TCP); nothing here asserts how idle they are, only
that every process and thread was read and the figures were printed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from benchmarks import idle, overload

pytestmark = pytest.mark.slow


def test_a_threads_cpu_time_and_wake_ups_are_read_from_proc() -> None:
    me = threading.get_native_id()
    before = idle.sample_threads(os.getpid())
    for _ in range(5):  # five sleeps: five wake-ups
        time.sleep(0.01)
    busy_until = time.monotonic() + 0.05
    while time.monotonic() < busy_until:  # 50 ms on a CPU
        pass
    after = idle.sample_threads(os.getpid())
    assert after[me].voluntary - before[me].voluntary >= 5
    (mine,) = [t for t in idle.figures("test", {me: before[me]}, {me: after[me]}, 1.0).threads]
    assert mine.cpu_ms_per_s >= 45
    assert mine.wakeups_per_s >= 5


@pytest.mark.timeout(180)
def test_short_run_reads_every_process_of_two_workers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    opts = idle.parse_options(
        [
            *("--workers", "2", "--processor", "tcp", "--seconds", "1"),
            *("--settle", "0.5", "--warm-up", "4", "--no-pin"),
        ]
    )

    (result,) = idle.run(opts)

    assert (result.workers, result.processor, result.tree) == (2, "tcp", "current")
    roles = sorted(process.role for process in result.processes)
    assert roles == ["supervisor", "worker 0", "worker 1"]
    for process in result.processes:
        assert process.threads
        assert all(t.cpu_ms_per_s >= 0 and t.wakeups_per_s >= 0 for t in process.threads)
    printed = capsys.readouterr().out
    assert "warm-up" not in printed  # every warm-up REGISTER was answered
    assert "| 2 | tcp | current |" in printed
    # The tree under test is imported from here, not from wherever the benchmark runs.
    assert idle._imported_from(overload.current_tree(), tmp_path) == str(
        Path(idle.__file__).parent.parent / "edgeport" / "__init__.py"
    )
