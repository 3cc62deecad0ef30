"""Access lists: IPv4 and IPv6 networks, deny wins, an empty allow list allows all."""

from __future__ import annotations

import pytest

from edgeport.protection.acl import MAX_CACHED_HOSTS, AccessList, NetworkSet, address_key


def test_ipv4_membership_by_prefix() -> None:
    networks = NetworkSet(["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7/32"])
    assert "10.255.1.2" in networks
    assert "192.168.1.200" in networks
    assert "192.168.2.1" not in networks
    assert "203.0.113.7" in networks
    assert "203.0.113.8" not in networks
    assert "11.0.0.1" not in networks


def test_ipv6_membership_and_compressed_forms() -> None:
    networks = NetworkSet(["2001:db8::/32", "fd00:1::/64"])
    assert "2001:db8:ffff::1" in networks
    assert "2001:0db8:0000:0000:0000:0000:0000:0001" in networks
    assert "[2001:db8::5]" in networks
    assert "2001:db9::1" not in networks
    assert "fd00:1::abcd" in networks
    assert "fd00:1:0:1::1" not in networks


def test_versions_do_not_mix() -> None:
    v4 = NetworkSet(["0.0.0.0/0"])
    v6 = NetworkSet(["::/0"])
    assert "1.2.3.4" in v4
    assert "2001:db8::1" not in v4
    assert "2001:db8::1" in v6
    assert "1.2.3.4" not in v6


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert "::ffff:10.1.2.3" in NetworkSet(["10.0.0.0/8"])
    assert address_key("::ffff:10.1.2.3") == (4, 0x0A010203)


def test_host_bits_in_a_network_are_ignored() -> None:
    assert "10.1.2.99" in NetworkSet(["10.1.2.3/24"])


def test_not_an_address_is_never_in() -> None:
    networks = NetworkSet(["0.0.0.0/0", "::/0"])
    assert "example.com" not in networks
    assert "" not in networks
    assert 42 not in networks


def test_cached_answers_stay_right_past_the_cache_size() -> None:
    networks = NetworkSet(["10.0.0.0/16"])
    hosts = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_CACHED_HOSTS + 500)]
    for _ in range(2):
        assert [host in networks for host in hosts] == [
            int(host.split(".")[2]) < 256 for host in hosts
        ]
    assert "10.1.0.1" not in networks


@pytest.mark.parametrize(
    ("host", "permitted"),
    [
        ("192.0.2.10", True),  # allowed
        ("192.0.2.66", False),  # allowed network, but denied: deny wins
        ("198.51.100.1", False),  # not in the allow list
        ("2001:db8::1", True),
        ("2001:db8:0:bad::1", False),
    ],
)
def test_deny_wins_over_allow(host: str, permitted: bool) -> None:
    acl = AccessList(
        allow=["192.0.2.0/24", "2001:db8::/32"], deny=["192.0.2.64/26", "2001:db8:0:bad::/64"]
    )
    assert acl.permits(host) is permitted


def test_empty_allow_list_allows_all_but_denied() -> None:
    acl = AccessList(deny=["203.0.113.0/24"])
    assert acl.active
    assert acl.permits("198.51.100.1")
    assert acl.permits("2001:db8::1")
    assert not acl.permits("203.0.113.9")


def test_no_lists_allow_everyone() -> None:
    acl = AccessList()
    assert not acl.active
    assert acl.permits("203.0.113.9")
    assert acl.permits("not-an-address")


def test_allow_list_refuses_what_is_not_an_address() -> None:
    assert not AccessList(allow=["0.0.0.0/0"]).permits("example.com")
