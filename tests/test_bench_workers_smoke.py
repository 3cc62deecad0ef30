"""The worker benchmark's machinery, run briefly so it cannot rot.

Real processes on 127.0.0.1 (the built-in processor, edgeport with one and
with two workers); nothing here asserts speed, only that every REGISTER and
call went through, CPU was measured, and two workers handed messages off.
"""

from __future__ import annotations

import pytest

from benchmarks import workers

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_short_run_measures_one_and_two_workers() -> None:
    opts = workers.parse_options(
        ["--registers", "60", "--rate", "60", "--calls", "24", "--sources", "24"]
    )

    one, two = workers.run(opts)

    for result in (one, two):
        assert result.registered == 60
        assert result.completed == 24
        assert result.cpu_seconds > 0
        assert result.messages_received > 0
    assert one.handoffs == 0
    assert two.handoffs > 0
    assert two.handoff_drops == 0
    assert "hand-offs" in workers.report_line(two)
