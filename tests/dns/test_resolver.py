"""RFC 3263 target lists built from records, without sockets (edgeport.dns.resolver)."""

from __future__ import annotations

import random
from collections import Counter

from edgeport.convert import NextHop
from edgeport.dns.resolver import Kind, Naptr, Question, Resolution, Srv, Target, order_srv
from edgeport.sip.transport import Transport

ALL = frozenset({Transport.UDP, Transport.TCP, Transport.TLS})


def hop(host: str, port: int | None = None, transport: Transport | None = None) -> NextHop:
    """A next hop to ``host`` as a Request-URI names it: port and transport only if given."""
    chosen = transport or Transport.UDP
    return NextHop(
        host,
        port if port is not None else chosen.default_port,
        chosen,
        explicit_port=port is not None,
        explicit_transport=transport is not None,
    )


def run(resolution: Resolution, records: dict[Question, tuple[object, ...]]) -> list[Question]:
    """Answer every question from ``records`` (absent: negative); the questions asked."""
    asked: list[Question] = []
    for _ in range(50):
        question = resolution.next_question()
        if question is None:
            return asked
        asked.append(question)
        resolution.answer(question, records.get(question, ()))
    raise AssertionError("the resolution did not end")


def test_srv_weights_spread_the_first_choice_as_rfc_2782_says() -> None:
    rng = random.Random(3263)
    records = [
        Srv(10, 60, 5060, "a.test"),
        Srv(10, 40, 5060, "b.test"),
        Srv(20, 100, 5060, "c.test"),
    ]
    first = Counter(order_srv(records, rng)[0].target for _ in range(10_000))
    assert set(first) == {"a.test", "b.test"}  # priority 20 is never first
    assert 0.57 < first["a.test"] / 10_000 < 0.63
    assert all(order_srv(records, rng)[2].target == "c.test" for _ in range(100))


def test_srv_target_dot_means_not_available_and_weight_zero_still_gets_picked() -> None:
    rng = random.Random(1)
    records = [Srv(10, 0, 5060, "zero.test"), Srv(10, 10, 5060, "ten.test"), Srv(5, 1, 1, "")]
    orders = [tuple(r.target for r in order_srv(records, rng)) for _ in range(2_000)]
    assert {len(order) for order in orders} == {2}
    assert Counter(order[0] for order in orders)["zero.test"] > 0  # picked when the draw is 0


def test_naptr_chooses_tcp_when_the_uri_names_no_transport() -> None:
    resolution = Resolution(hop("trunk.test"), ALL, random.Random(0))
    records: dict[Question, tuple[object, ...]] = {
        Question("trunk.test", Kind.NAPTR): (
            Naptr(20, 10, "S", "SIP+D2U", "_sip._udp.trunk.test."),
            Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.trunk.test."),
            Naptr(5, 10, "S", "SIP+D2X", "_sip._x.trunk.test."),  # unknown service
        ),
        Question("_sip._tcp.trunk.test", Kind.SRV): (Srv(0, 0, 5080, "pbx.trunk.test."),),
        Question("_sip._udp.trunk.test", Kind.SRV): (Srv(0, 0, 5070, "pbx.trunk.test."),),
        Question("pbx.trunk.test", Kind.ADDRESS): ("192.0.2.7",),
    }
    asked = run(resolution, records)
    assert asked[0] == Question("trunk.test", Kind.NAPTR)
    assert resolution.targets == [
        Target("192.0.2.7", 5080, Transport.TCP, "pbx.trunk.test"),
        Target("192.0.2.7", 5070, Transport.UDP, "pbx.trunk.test"),
    ]
    assert Question("trunk.test", Kind.ADDRESS) not in asked  # SRV found: no A/AAAA of the host


def test_a_sips_uri_keeps_only_sips_services() -> None:
    resolution = Resolution(
        NextHop("trunk.test", 5061, Transport.TLS, explicit_port=False, explicit_transport=False),
        ALL,
        random.Random(0),
    )
    records: dict[Question, tuple[object, ...]] = {
        Question("trunk.test", Kind.NAPTR): (
            Naptr(10, 10, "S", "SIP+D2U", "_sip._udp.trunk.test"),
            Naptr(20, 10, "S", "SIPS+D2T", "_sips._tcp.trunk.test"),
        ),
        Question("_sips._tcp.trunk.test", Kind.SRV): (Srv(0, 0, 5061, "tls.trunk.test"),),
        Question("tls.trunk.test", Kind.ADDRESS): ("192.0.2.9",),
    }
    asked = run(resolution, records)
    assert Question("_sip._udp.trunk.test", Kind.SRV) not in asked
    assert resolution.targets == [Target("192.0.2.9", 5061, Transport.TLS, "tls.trunk.test")]


def test_without_naptr_srv_is_asked_for_each_transport_then_the_host_itself() -> None:
    resolution = Resolution(hop("trunk.test"), ALL, random.Random(0))
    asked = run(resolution, {Question("trunk.test", Kind.ADDRESS): ("192.0.2.1",)})
    assert [q.name for q in asked] == [
        "trunk.test",
        "_sip._udp.trunk.test",
        "_sip._tcp.trunk.test",
        "_sips._tcp.trunk.test",
        "trunk.test",
    ]
    assert resolution.targets == [Target("192.0.2.1", 5060, Transport.UDP, "trunk.test")]


def test_an_explicit_port_skips_naptr_and_srv() -> None:
    resolution = Resolution(hop("trunk.test", port=5099), ALL, random.Random(0))
    asked = run(resolution, {Question("trunk.test", Kind.ADDRESS): ("192.0.2.1", "2001:db8::1")})
    assert asked == [Question("trunk.test", Kind.ADDRESS)]
    assert resolution.targets == [
        Target("192.0.2.1", 5099, Transport.UDP, "trunk.test"),
        Target("2001:db8::1", 5099, Transport.UDP, "trunk.test"),
    ]


def test_an_explicit_transport_skips_naptr_and_asks_srv_for_that_transport() -> None:
    resolution = Resolution(hop("trunk.test", transport=Transport.TCP), ALL, random.Random(0))
    asked = run(resolution, {Question("trunk.test", Kind.ADDRESS): ("192.0.2.1",)})
    assert asked == [
        Question("_sip._tcp.trunk.test", Kind.SRV),
        Question("trunk.test", Kind.ADDRESS),
    ]
    assert resolution.targets == [Target("192.0.2.1", 5060, Transport.TCP, "trunk.test")]


def test_numeric_hosts_are_used_as_they_are() -> None:
    for host, address in [
        ("192.0.2.5", "192.0.2.5"),
        ("2001:db8::5", "2001:db8::5"),
        ("127.1", "127.0.0.1"),
    ]:
        resolution = Resolution(hop(host), ALL, random.Random(0))
        assert resolution.next_question() is None
        assert resolution.targets == [Target(address, 5060, Transport.UDP, host)]


def test_a_hostile_answer_cannot_grow_the_target_list_without_bound() -> None:
    resolution = Resolution(hop("trunk.test", transport=Transport.UDP), ALL, random.Random(0))
    srv = tuple(Srv(0, 1, 5000 + i, f"h{i}.trunk.test") for i in range(500))
    records: dict[Question, tuple[object, ...]] = {Question("_sip._udp.trunk.test", Kind.SRV): srv}
    for i in range(500):
        records[Question(f"h{i}.trunk.test", Kind.ADDRESS)] = tuple(
            f"192.0.2.{n}" for n in range(200)
        )
    asked = run(resolution, records)
    assert len(asked) <= 1 + 8
    assert len(resolution.targets) <= 16
