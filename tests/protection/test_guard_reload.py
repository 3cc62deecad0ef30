"""A reload of the guard: new access lists and limits from the next message; bans kept."""

from __future__ import annotations

import dataclasses

from edgeport.config import AccessControlConfig, FloodConfig, ProtectionConfig
from edgeport.metrics import EdgeportMetrics
from edgeport.protection import EdgeGuard, Verdict
from tests.e2e.conftest import make_config
from tests.protection.test_guard import Clock, tcp, udp
from tests.protection.test_scanners import LEGIT_REGISTER

PROCESSOR = "10.9.9.9:51901"


def test_a_source_added_to_deny_is_refused_from_the_next_message() -> None:
    clock = Clock()
    config = make_config(localnets=())
    edge = EdgeGuard(clock=clock, metrics=EdgeportMetrics())
    edge.reconfigure(config, PROCESSOR)
    assert edge.admit(udp("192.0.2.9"), LEGIT_REGISTER) is Verdict.ACCEPT
    assert edge.open_connection(tcp("192.0.2.9")) is not None
    denied = dataclasses.replace(config, access_control=AccessControlConfig(deny=("192.0.2.0/24",)))
    edge.reconfigure(denied, PROCESSOR)
    assert edge.admit(udp("192.0.2.9"), LEGIT_REGISTER) is Verdict.DENIED
    assert edge.open_connection(tcp("192.0.2.9", 40001)) is None
    assert edge.admit(udp("198.51.100.1"), LEGIT_REGISTER) is Verdict.ACCEPT


def test_a_ban_in_force_outlives_a_reload_that_raises_the_limit() -> None:
    clock = Clock()
    strict = make_config(
        localnets=(),
        protection=ProtectionConfig(flood=FloodConfig(requests=3, window=10.0, ban_time=60.0)),
    )
    edge = EdgeGuard(clock=clock, metrics=EdgeportMetrics())
    edge.reconfigure(strict, PROCESSOR)
    verdicts = [edge.admit(udp("203.0.113.5"), LEGIT_REGISTER) for _ in range(4)]
    assert verdicts[-1] is Verdict.BANNED
    lenient = dataclasses.replace(
        strict,
        protection=ProtectionConfig(flood=FloodConfig(requests=1000, window=10.0, ban_time=5.0)),
    )
    edge.reconfigure(lenient, PROCESSOR)
    clock.now += 30.0  # past the new ban time, within the one the ban started with
    assert edge.admit(udp("203.0.113.5"), LEGIT_REGISTER) is Verdict.BANNED
    assert edge.flood.limits.requests == 1000
    assert [edge.admit(udp("203.0.113.6"), LEGIT_REGISTER) for _ in range(10)] == [
        Verdict.ACCEPT
    ] * 10


def test_new_localnets_are_trusted_after_a_reload() -> None:
    clock = Clock()
    config = make_config(
        localnets=(), protection=ProtectionConfig(flood=FloodConfig(requests=2, window=10.0))
    )
    edge = EdgeGuard(clock=clock, metrics=EdgeportMetrics())
    edge.reconfigure(dataclasses.replace(config, localnets=("203.0.113.0/24",)), PROCESSOR)
    assert [edge.admit(udp("203.0.113.5"), LEGIT_REGISTER) for _ in range(5)] == [
        Verdict.ACCEPT
    ] * 5
