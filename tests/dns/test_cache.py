"""The answer cache and the avoid list, on a fake clock (edgeport.dns.cache)."""

from __future__ import annotations

from edgeport.dns.cache import MAX_AVOIDED, AvoidList, DnsCache
from edgeport.dns.resolver import Kind, Question, Target
from edgeport.sip.transport import Transport


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_lives_for_its_ttl_then_is_gone() -> None:
    clock = FakeClock()
    cache = DnsCache(10, clock)
    question = Question("a.test", Kind.ADDRESS)
    cache.put(question, ("192.0.2.1",), 30)
    clock.now += 29.9
    cached = cache.get(question)
    assert cached is not None
    assert cached.records == ("192.0.2.1",)
    clock.now += 0.2
    assert cache.get(question) is None


def test_a_negative_answer_is_kept_too() -> None:
    clock = FakeClock()
    cache = DnsCache(10, clock)
    question = Question("nope.test", Kind.NAPTR)
    cache.put(question, (), 5)
    cached = cache.get(question)
    assert cached is not None
    assert cached.negative


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = DnsCache(3, FakeClock())
    questions = [Question(f"h{i}.test", Kind.ADDRESS) for i in range(4)]
    for question in questions[:3]:
        cache.put(question, ("192.0.2.1",), 60)
    assert cache.get(questions[0]) is not None  # now the most recent
    cache.put(questions[3], ("192.0.2.1",), 60)
    assert len(cache) == 3
    assert cache.get(questions[1]) is None
    assert cache.get(questions[0]) is not None


def test_a_failed_target_goes_last_for_a_while_then_comes_back() -> None:
    clock = FakeClock()
    avoid = AvoidList(30, clock)
    a, b = (Target(f"192.0.2.{i}", 5060, Transport.UDP, "t.test") for i in (1, 2))
    avoid.failed(a)
    assert avoid.reorder([a, b]) == [b, a]  # still tried, last
    clock.now += 30.1
    assert avoid.reorder([a, b]) == [a, b]


def test_the_avoid_list_is_bounded() -> None:
    avoid = AvoidList(30, FakeClock())
    for i in range(MAX_AVOIDED + 50):
        avoid.failed(Target(f"10.0.{i // 256}.{i % 256}", 5060, Transport.UDP, "t"))
    assert len(avoid) == MAX_AVOIDED
