"""The registrar table on its own: bindings, refresh, expiry on a fake clock, bounds."""

from __future__ import annotations

import pytest

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport.builtin.registrar import MAX_EXPIRES, Registrar, RegistrarFull, Source

UDP_SOURCE = Source(host="198.51.100.7", port=40123, transport=common_pb2.Transport.UDP)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def contact(user: str, host: str, port: int = -1, transport: str = "") -> sipmessage_pb2.SipURI:
    return sipmessage_pb2.SipURI(
        user=user, host=host, port=port, transport_param=transport, ttl_param=-1
    )


def test_binding_lives_until_its_expiry() -> None:
    clock = FakeClock()
    registrar = Registrar(clock)
    registrar.update("alice@", contact("alice", "192.168.1.20", 5060), 60, UDP_SOURCE)
    [binding] = registrar.bindings("alice@")
    assert binding.contact.host == "192.168.1.20"
    assert binding.source == UDP_SOURCE
    clock.now += 20
    assert registrar.remaining(binding) == 40
    clock.now += 40
    assert registrar.bindings("alice@") == []
    assert len(registrar) == 0


def test_refresh_replaces_the_same_contact_and_keeps_others() -> None:
    clock = FakeClock()
    registrar = Registrar(clock)
    registrar.update("alice@", contact("alice", "192.168.1.20", 5060), 60, UDP_SOURCE)
    clock.now += 1
    registrar.update("alice@", contact("alice", "192.168.1.21"), 60, UDP_SOURCE)
    clock.now += 1
    # Same binding: the absent port is the default 5060, host case does not matter.
    registrar.update("alice@", contact("alice", "192.168.1.20"), 300, UDP_SOURCE)
    bindings = registrar.bindings("alice@")
    assert [b.contact.host for b in bindings] == ["192.168.1.20", "192.168.1.21"]
    assert registrar.remaining(bindings[0]) == 300


def test_zero_expires_removes_one_binding_and_remove_all_removes_every_one() -> None:
    registrar = Registrar(FakeClock())
    registrar.update("alice@", contact("alice", "192.168.1.20"), 60, UDP_SOURCE)
    registrar.update("alice@", contact("alice", "192.168.1.21"), 60, UDP_SOURCE)
    registrar.update("alice@", contact("alice", "192.168.1.20"), 0, UDP_SOURCE)
    assert [b.contact.host for b in registrar.bindings("alice@")] == ["192.168.1.21"]
    registrar.remove_all("alice@")
    assert registrar.bindings("alice@") == []
    assert registrar.binding_for_contact(contact("alice", "192.168.1.21")) is None


def test_binding_for_contact_finds_a_registered_remote_target() -> None:
    clock = FakeClock()
    registrar = Registrar(clock)
    registrar.update("alice@", contact("alice", "192.168.1.20", 5060), 60, UDP_SOURCE)
    found = registrar.binding_for_contact(contact("alice", "192.168.1.20"))
    assert found is not None
    assert found.source == UDP_SOURCE
    assert registrar.binding_for_contact(contact("alice", "192.168.1.99")) is None
    clock.now += 61
    assert registrar.binding_for_contact(contact("alice", "192.168.1.20")) is None


def test_requested_time_is_capped() -> None:
    registrar = Registrar(FakeClock())
    registrar.update("alice@", contact("alice", "192.168.1.20"), 10**9, UDP_SOURCE)
    [binding] = registrar.bindings("alice@")
    assert registrar.remaining(binding) == MAX_EXPIRES


def test_bindings_per_aor_are_bounded_oldest_dropped() -> None:
    clock = FakeClock()
    registrar = Registrar(clock, max_bindings_per_aor=2)
    for host in ("192.168.1.1", "192.168.1.2", "192.168.1.3"):
        clock.now += 1
        registrar.update("alice@", contact("alice", host), 60, UDP_SOURCE)
    assert [b.contact.host for b in registrar.bindings("alice@")] == [
        "192.168.1.3",
        "192.168.1.2",
    ]


def test_full_table_refuses_a_new_aor_after_purging_expired_ones() -> None:
    clock = FakeClock()
    registrar = Registrar(clock, max_aors=2)
    registrar.update("alice@", contact("alice", "192.168.1.1"), 10, UDP_SOURCE)
    registrar.update("bob@", contact("bob", "192.168.1.2"), 60, UDP_SOURCE)
    with pytest.raises(RegistrarFull):
        registrar.update("carol@", contact("carol", "192.168.1.3"), 60, UDP_SOURCE)
    clock.now += 11  # alice's binding is gone: room again
    registrar.update("carol@", contact("carol", "192.168.1.3"), 60, UDP_SOURCE)
    assert sorted(registrar) == ["bob@", "carol@"]
