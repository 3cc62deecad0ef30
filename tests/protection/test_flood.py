"""The flood limiter: sliding window, bans that end by themselves, bounded tables."""

from __future__ import annotations

import pytest

from edgeport.protection.flood import FloodLimiter, FloodLimits


def limiter(
    requests: int = 10, window: float = 10.0, ban: float = 30.0, tracked: int = 100
) -> FloodLimiter:
    return FloodLimiter(
        FloodLimits(requests=requests, window=window, ban_time=ban, max_tracked=tracked)
    )


def test_requests_up_to_the_limit_pass_the_next_one_bans() -> None:
    flood = limiter(requests=10)
    assert not any(flood.count("192.0.2.1", 100.0 + i * 0.1) for i in range(10))
    assert not flood.banned("192.0.2.1", 101.0)
    assert flood.count("192.0.2.1", 101.0)
    assert flood.banned("192.0.2.1", 101.0)
    assert flood.bans_started == 1


def test_sources_are_counted_apart() -> None:
    flood = limiter(requests=5)
    for i in range(5):
        assert not flood.count("192.0.2.1", 1.0 + i)
        assert not flood.count("192.0.2.2", 1.0 + i)
    assert flood.count("192.0.2.1", 6.0)
    assert not flood.banned("192.0.2.2", 6.0)


def test_a_steady_rate_under_the_limit_is_never_banned() -> None:
    flood = limiter(requests=10, window=10.0)
    # 0.8 requests per second for 100 s: 8 per window (the two-bucket estimate may
    # exceed the true count by about one request at bucket edges).
    assert not any(flood.count("192.0.2.1", i / 0.8) for i in range(80))


def test_sliding_window_weighs_the_previous_bucket() -> None:
    flood = limiter(requests=10, window=10.0)
    assert not flood.count("192.0.2.1", 0.0)  # the first bucket is [0 s, 10 s)
    for _ in range(9):
        assert not flood.count("192.0.2.1", 9.0)
    # At 11 s the window (1 s .. 11 s) covers 90% of the first bucket: 9 + new.
    assert not flood.count("192.0.2.1", 11.0)  # 9 + 1 = 10
    assert flood.count("192.0.2.1", 11.0)  # 9 + 2 = 11 > 10


def test_a_burst_fits_again_after_a_full_quiet_window() -> None:
    flood = limiter(requests=10, window=10.0)
    for _ in range(10):
        assert not flood.count("192.0.2.1", 0.0)
    for _ in range(10):
        assert not flood.count("192.0.2.1", 25.0)  # two windows later: nothing carried


def test_ban_ends_by_itself_after_ban_time() -> None:
    flood = limiter(requests=2, ban=30.0)
    for _ in range(3):
        flood.count("192.0.2.1", 50.0)
    assert flood.banned("192.0.2.1", 50.0)
    assert flood.banned("192.0.2.1", 79.9)
    assert flood.banned_now(79.9) == 1
    assert not flood.banned("192.0.2.1", 80.0)
    assert flood.banned_now(80.0) == 0
    # Counting starts afresh: the requests before the ban do not count.
    assert not flood.count("192.0.2.1", 80.0)
    assert not flood.count("192.0.2.1", 80.0)


def test_banned_now_drops_expired_bans_in_order() -> None:
    flood = limiter(requests=1, ban=10.0)
    for index, now in enumerate((0.0, 1.0, 2.0)):
        host = f"192.0.2.{index}"
        flood.count(host, now)
        assert flood.count(host, now)
    assert flood.banned_now(5.0) == 3
    assert flood.banned_now(10.5) == 2
    assert flood.banned_now(12.0) == 0


def test_tracked_sources_are_capped_oldest_evicted() -> None:
    flood = limiter(requests=3, tracked=100)
    for i in range(10_000):  # a spoofed-source flood: one request per source
        assert not flood.count(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", i * 0.001)
    assert flood.tracked == 100
    assert flood.evicted == 9_900
    # A steady source keeps being counted while fresh sources churn through the table.
    flood = limiter(requests=3, window=10.0, tracked=2)
    assert not flood.count("192.0.2.1", 0.0)
    assert not flood.count("198.51.100.1", 1.0)
    assert not flood.count("198.51.100.2", 2.0)  # evicts 192.0.2.1, the oldest
    assert flood.tracked == 2
    for _ in range(3):
        assert not flood.count("192.0.2.1", 3.0)  # counted from zero again


def test_bans_are_capped_oldest_evicted() -> None:
    flood = limiter(requests=1, tracked=3)
    for i in range(5):
        host = f"192.0.2.{i}"
        flood.count(host, float(i))
        assert flood.count(host, float(i))
    assert flood.banned_now(5.0) == 3
    assert not flood.banned("192.0.2.0", 5.0)
    assert flood.banned("192.0.2.4", 5.0)


@pytest.mark.parametrize("limits", [FloodLimits(window=0), FloodLimits(max_tracked=0)])
def test_invalid_limits_are_refused(limits: FloodLimits) -> None:
    with pytest.raises(ValueError, match="window"):
        FloodLimiter(limits)


def test_requests_another_worker_counted_add_to_the_estimate() -> None:
    flood = limiter(requests=10)
    assert not flood.count("192.0.2.1", 1.0, 6)
    assert not flood.count("192.0.2.1", 1.5, 4)  # 10: at the limit
    assert flood.count("192.0.2.1", 2.0)  # 11
    assert flood.bans_started == 1


def test_a_ban_another_worker_started_is_held_for_what_is_left_of_it() -> None:
    flood = limiter(requests=10, ban=30.0)
    flood.count("192.0.2.9", 0.0)  # a ban here first: 30 s, to 30 s
    assert flood.count("192.0.2.9", 0.0, 20)
    flood.apply_ban("192.0.2.1", 1.0, 5.0)  # told of it late: 5 s left
    flood.apply_ban("192.0.2.2", 1.0, 3600.0)  # never longer than ban_time
    assert flood.bans_started == 1  # only the one started here
    assert flood.bans_in_force(1.0) == [
        ("192.0.2.9", 29.0),
        ("192.0.2.1", 5.0),
        ("192.0.2.2", 30.0),
    ]
    assert flood.banned("192.0.2.1", 5.9)
    # A ban that ends sooner than the ones before it is not counted once it ends.
    assert flood.banned_now(6.0) == 2
    assert not flood.banned("192.0.2.1", 6.0)
    flood.apply_ban("192.0.2.3", 6.0, 0.0)
    assert not flood.banned("192.0.2.3", 6.0)
