"""Next hops resolved through a real DNS server (dnsmasq on 127.0.0.1), on trio."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing

from edgeport.config import DnsConfig
from edgeport.dns import DnsResolver, UnresolvableHost
from edgeport.dns.resolver import Kind, Question
from edgeport.metrics import EdgeportMetrics
from edgeport.sip.transport import Transport
from tests.dns.test_cache import FakeClock
from tests.dns.test_resolver import hop
from tests.support.dnsmasq import run_dnsmasq

RECORDS = [
    "host-record=a.trunk.test,127.0.0.11",
    "host-record=b.trunk.test,127.0.0.12",
    "srv-host=_sip._udp.trunk.test,a.trunk.test,5070,10,60",
    "srv-host=_sip._udp.trunk.test,b.trunk.test,5071,10,40",
    'naptr-record=naptr.test,10,50,"S","SIP+D2T","","_sip._tcp.trunk.test"',
    'naptr-record=naptr.test,20,50,"S","SIP+D2U","","_sip._udp.trunk.test"',
    "srv-host=_sip._tcp.trunk.test,a.trunk.test,5080,10,10",
]


def resolver(server: str, **kwargs: object) -> DnsResolver:
    return DnsResolver(DnsConfig(servers=(server,), timeout=3.0), **kwargs)  # type: ignore[arg-type]


async def test_naptr_sends_a_uri_without_transport_over_tcp(tmp_path: Path) -> None:
    with run_dnsmasq(tmp_path, RECORDS) as dns, trio.fail_after(10):
        targets = await resolver(dns.server).resolve(hop("naptr.test"))
    assert next((t.address, t.port, t.transport) for t in targets) == (
        "127.0.0.11",
        5080,
        Transport.TCP,
    )
    assert {t.transport for t in targets[1:]} == {Transport.UDP}  # then the SIP+D2U ones


async def test_an_explicit_port_skips_srv(tmp_path: Path) -> None:
    with run_dnsmasq(tmp_path, [*RECORDS, "host-record=trunk.test,127.0.0.13"]) as dns:
        with trio.fail_after(10):
            targets = await resolver(dns.server).resolve(hop("trunk.test", port=5099))
    assert [(t.address, t.port, t.transport) for t in targets] == [
        ("127.0.0.13", 5099, Transport.UDP)
    ]


async def test_an_unresolvable_name_fails_at_once_and_the_answer_is_cached(
    tmp_path: Path,
) -> None:
    metrics = EdgeportMetrics()
    with run_dnsmasq(tmp_path, RECORDS) as dns:
        dns_resolver = resolver(dns.server, metrics=metrics)
        with trio.fail_after(2):  # NXDOMAIN: no waiting for a timeout
            with pytest.raises(UnresolvableHost, match=r"nope\.test"):
                await dns_resolver.resolve(hop("nope.test"))
        asked = metrics.dns_lookups.labels(result="negative").value
        with trio.fail_after(2), pytest.raises(UnresolvableHost):
            await dns_resolver.resolve(hop("nope.test"))
    assert metrics.dns_lookups.labels(result="negative").value == asked  # no new query
    assert metrics.dns_lookups.labels(result="cached").value >= 1


async def test_ttl_expiry_changes_the_answer(tmp_path: Path) -> None:
    clock = FakeClock()
    with run_dnsmasq(tmp_path, [], hosts="127.0.0.21 moving.test", ttl=30) as dns:
        dns_resolver = resolver(dns.server, clock=clock)
        with trio.fail_after(10):
            first = await dns_resolver.resolve(hop("moving.test", port=5060))
            await trio.to_thread.run_sync(dns.set_hosts, "127.0.0.22 moving.test")
            clock.now += 29  # within the TTL: still the cached answer
            cached = await dns_resolver.resolve(hop("moving.test", port=5060))
            clock.now += 2  # past it: asked again
            fresh = await dns_resolver.resolve(hop("moving.test", port=5060))
    assert [t.address for t in first] == ["127.0.0.21"]
    assert [t.address for t in cached] == ["127.0.0.21"]
    assert [t.address for t in fresh] == ["127.0.0.22"]


async def test_concurrent_lookups_of_one_name_share_one_query(tmp_path: Path) -> None:
    metrics = EdgeportMetrics()
    with run_dnsmasq(tmp_path, RECORDS) as dns:
        dns_resolver = resolver(dns.server, metrics=metrics)
        results: list[list[str]] = []

        async def one() -> None:
            targets = await dns_resolver.resolve(hop("a.trunk.test", port=5060))
            results.append([t.address for t in targets])

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(one)
    assert results == [["127.0.0.11"]] * 20
    assert metrics.dns_lookups.labels(result="answer").value == 1


async def test_weights_spread_calls_over_the_srv_targets(tmp_path: Path) -> None:
    with run_dnsmasq(tmp_path, RECORDS) as dns:
        dns_resolver = resolver(dns.server, rng=random.Random(7))
        with trio.fail_after(20):
            firsts = Counter(
                [
                    (await dns_resolver.resolve(hop("trunk.test", transport=Transport.UDP)))[0].port
                    for _ in range(400)
                ]
            )
    # 60/40 weights: loosely, the heavier one first more often, the other one too.
    assert firsts[5070] > firsts[5071] > 100


class NeverAnswered(DnsResolver):
    """A resolver whose DNS server never answers: each query waits until cancelled, and
    the task that asked is remembered (so the test cancels exactly that one)."""

    def __init__(self, metrics: EdgeportMetrics | None = None) -> None:
        super().__init__(
            DnsConfig(servers=("127.0.0.1:9",), timeout=30.0), metrics=metrics or EdgeportMetrics()
        )
        self.asking: list[trio.lowlevel.Task] = []

    async def _ask(self, question: Question) -> tuple[tuple[str, ...], float, str]:
        self.asking.append(trio.lowlevel.current_task())
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_lookup_outliving_two_cancelled_queries_of_its_name_never_raises() -> None:
    # Four lookups of one name; the query under way is cancelled (its lookup's deadline)
    # again and again. A waiter whose second shared query was cancelled asks itself:
    # once two did at the same time, the second took the first one's place in the table
    # of queries under way and the first, ending, removed it: KeyError, and the request
    # being forwarded failed with an internal error.
    dns_resolver = NeverAnswered()
    question = Question("nowhere.test", Kind.NAPTR)
    scopes: dict[trio.lowlevel.Task, trio.CancelScope] = {}
    ended: list[int] = []

    async def lookup(n: int) -> None:
        with trio.CancelScope() as scope:
            scopes[trio.lowlevel.current_task()] = scope
            await dns_resolver.records(question)
        ended.append(n)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(lookup, n)
            for _ in range(10):  # rounds of queries: 1, 1, then 2 at once
                await trio.testing.wait_all_tasks_blocked()
                if not dns_resolver.asking:
                    break
                for task in dns_resolver.asking:
                    scopes[task].cancel()
                dns_resolver.asking.clear()
        assert sorted(ended) == [0, 1, 2, 3]
        # Nothing is left under way: a new lookup asks at once.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lookup, 4)
            await trio.testing.wait_all_tasks_blocked()
            assert len(dns_resolver.asking) == 1
            nursery.cancel_scope.cancel()


async def test_a_lookup_that_times_out_is_counted_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A DNS server that never answers: the lookup's deadline ends it before the query's
    # own timeout does, and the request gets a failure answer; the lookup must show in
    # edgeport_dns_lookups_total{result="failure"} ("failure (timeout, server error)").
    metrics = EdgeportMetrics()
    dns_resolver = NeverAnswered(metrics=metrics)
    with pytest.raises(UnresolvableHost, match="timed out"):
        await dns_resolver.resolve(hop("nowhere.test"))
    assert metrics.dns_lookups.labels(result="failure").value == 1
