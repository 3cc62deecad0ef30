"""RateLimitedLog: a burst per interval, then a count of what was held back."""

from __future__ import annotations

import logging

import pytest

from edgeport.ratelimit import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_suppressed_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeport.test.ratelimit")
    clock = FakeClock()
    log = RateLimitedLog(
        logging.getLogger("edgeport.test.ratelimit"), burst=3, interval=10.0, clock=clock
    )
    written = [log.info("dropped %s", f"call-{n}") for n in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert [r.getMessage() for r in caplog.records] == [
        "dropped call-0",
        "dropped call-1",
        "dropped call-2",
    ]
    clock.now += 10.0
    assert log.info("dropped %s", "call-10")
    assert caplog.records[-1].getMessage() == "dropped call-10 (7 similar lines suppressed)"
    assert log.suppressed == 0


def test_disabled_level_costs_nothing_and_counts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgeport.test.ratelimit2")
    log = RateLimitedLog(logging.getLogger("edgeport.test.ratelimit2"), burst=1)
    assert not log.info("quiet")
    assert log.suppressed == 0
    assert log.warning("loud")


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimitedLog(logging.getLogger("x"), burst=0)
