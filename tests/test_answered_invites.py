"""The record of answered INVITEs that routes their later 2xx: expiry and bounds."""

from __future__ import annotations

import pytest

from edgeport.proxy.answered import AnsweredInvites


def test_a_later_2xx_finds_where_the_first_went_until_timer_m() -> None:
    answered = AnsweredInvites[str](32.0)
    answered.record("z9hG4bKw0-a.l00000001", "caller-a", now=10.0)
    assert answered.destination("z9hG4bKw0-a.l00000001", now=41.9) == "caller-a"
    assert answered.destination("z9hG4bKw0-a.l00000001", now=42.0) is None
    assert len(answered) == 0


def test_an_unknown_branch_finds_nothing() -> None:
    answered = AnsweredInvites[str](32.0)
    answered.record("z9hG4bKw0-a.l00000001", "caller-a", now=0.0)
    assert answered.destination("z9hG4bKw0-b.l00000001", now=1.0) is None


def test_the_record_is_bounded_oldest_first() -> None:
    answered = AnsweredInvites[int](32.0, max_entries=3)
    for n in range(5):
        answered.record(f"b{n}", n, now=float(n))
    assert len(answered) == 3
    assert answered.destination("b0", now=5.0) is None
    assert answered.destination("b1", now=5.0) is None
    assert answered.destination("b4", now=5.0) == 4


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_for"):
        AnsweredInvites[int](0.0)
