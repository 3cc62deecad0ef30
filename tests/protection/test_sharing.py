"""Requests counted by one worker and not yet reported to the others (sans-IO)."""

from __future__ import annotations

import pytest

from edgeport.protection.sharing import UnreportedCounts


def counts(requests: int = 300, workers: int = 2, tracked: int = 100) -> UnreportedCounts:
    return UnreportedCounts(requests=requests, window=10.0, workers=workers, max_tracked=tracked)


def test_a_source_is_due_once_a_quarter_of_its_share_is_unreported() -> None:
    unreported = counts(requests=300, workers=2)
    assert unreported.push_at == 38  # 300 / (4 * 2), rounded up
    assert not any(unreported.note("192.0.2.1", 1.0) for _ in range(37))
    assert unreported.note("192.0.2.1", 1.0)
    assert unreported.take(1.0, limit=10) == [("192.0.2.1", 38)]
    assert unreported.take(1.0, limit=10) == []  # reported: it starts afresh


def test_only_significant_sources_are_reported_busiest_first_and_bounded() -> None:
    unreported = counts(requests=300, workers=2)
    assert unreported.significant == 19
    for i in range(50):  # a spoofed-source flood: one request from each address
        unreported.note(f"198.51.100.{i}", 1.0)
    for n, host in ((20, "192.0.2.1"), (30, "192.0.2.2"), (25, "192.0.2.3")):
        for _ in range(n):
            unreported.note(host, 1.0)
    assert unreported.take(1.0, limit=2) == [("192.0.2.2", 30), ("192.0.2.3", 25)]
    assert unreported.take(1.0, limit=2) == [("192.0.2.1", 20)]
    assert unreported.take(1.0, limit=2) == []
    assert len(unreported) == 50  # the spoofed ones wait, bounded


def test_counts_older_than_the_window_are_dropped() -> None:
    unreported = counts(requests=300, workers=2)
    for _ in range(30):
        unreported.note("192.0.2.1", 1.0)
    assert unreported.take(11.5, limit=10) == []
    assert len(unreported) == 0


def test_waiting_sources_are_bounded_and_a_banned_one_is_forgotten() -> None:
    unreported = counts(tracked=3)
    for i in range(5):
        unreported.note(f"192.0.2.{i}", 1.0)
    assert len(unreported) == 3
    unreported.forget("192.0.2.4")
    assert len(unreported) == 2


def test_small_limits_report_every_request_pair() -> None:
    unreported = counts(requests=4, workers=2)
    assert unreported.push_at == 1
    assert unreported.significant == 2
    assert unreported.note("192.0.2.1", 1.0)


@pytest.mark.parametrize(("requests", "workers", "tracked"), [(0, 2, 1), (5, 1, 1), (5, 2, 0)])
def test_bad_settings_are_refused(requests: int, workers: int, tracked: int) -> None:
    with pytest.raises(ValueError, match="workers"):
        counts(requests=requests, workers=workers, tracked=tracked)
