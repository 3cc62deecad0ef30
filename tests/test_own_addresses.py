"""Is a resolved next hop one of edgeport's listeners, however its address was written?"""

from __future__ import annotations

import ipaddress

from edgeport.localnets import detect_localnets
from edgeport.own_addresses import OwnAddresses, kernel_says_local
from edgeport.sip.transport import Transport
from edgeport.transports.base import Peer

LOCAL = {ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("2001:db8::5")}


def fake_local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_loopback or address in LOCAL


def own(
    *points: Peer, external: tuple[str, ...] = (), clock: list[float] | None = None
) -> OwnAddresses:
    now = clock or [0.0]
    return OwnAddresses(points, external, clock=lambda: now[0], is_local=fake_local)


def test_a_listener_on_every_address_owns_the_host_s_addresses_on_its_port() -> None:
    addresses = own(Peer(Transport.UDP, "0.0.0.0", 5060), Peer(Transport.TCP, "0.0.0.0", 5060))
    for host in ("127.0.0.1", "127.9.8.7", "10.1.2.3", "::ffff:10.1.2.3"):
        assert addresses.is_own(Peer(Transport.UDP, host, 5060)), host
        assert addresses.is_own(Peer(Transport.TLS, host, 5060)), host
    assert not addresses.is_own(Peer(Transport.UDP, "10.1.2.4", 5060))
    assert not addresses.is_own(Peer(Transport.UDP, "127.0.0.1", 5070))
    # An IPv4 listener does not take IPv6 traffic (edgeport binds :: as IPv6 only).
    assert not addresses.is_own(Peer(Transport.UDP, "2001:db8::5", 5060))


def test_the_socket_type_must_match() -> None:
    addresses = own(Peer(Transport.UDP, "0.0.0.0", 5060), Peer(Transport.WS, "0.0.0.0", 5062))
    assert not addresses.is_own(Peer(Transport.TCP, "127.0.0.1", 5060))
    assert addresses.is_own(Peer(Transport.TCP, "127.0.0.1", 5062))
    assert not addresses.is_own(Peer(Transport.UDP, "127.0.0.1", 5062))


def test_a_listener_on_one_address_owns_that_address_only() -> None:
    addresses = own(Peer(Transport.UDP, "10.1.2.3", 5060), Peer(Transport.UDP, "::", 5080))
    assert addresses.is_own(Peer(Transport.UDP, "10.1.2.3", 5060))
    assert not addresses.is_own(Peer(Transport.UDP, "127.0.0.1", 5060))
    assert addresses.is_own(Peer(Transport.UDP, "2001:db8::5", 5080))
    assert addresses.is_own(Peer(Transport.UDP, "::1", 5080))


def test_external_addresses_by_address_or_name() -> None:
    addresses = own(
        Peer(Transport.UDP, "10.1.2.3", 5060),
        external=("203.0.113.7", "sip.example.com:5060", "[2001:db8::99]:5061"),
    )
    assert addresses.is_own(Peer(Transport.UDP, "203.0.113.7", 5060))
    assert addresses.is_own(Peer(Transport.UDP, "198.51.100.1", 5060), "SIP.example.com.")
    assert addresses.is_own(Peer(Transport.UDP, "2001:db8::99", 5060))
    assert not addresses.is_own(Peer(Transport.UDP, "203.0.113.7", 5999))
    assert not addresses.is_own(Peer(Transport.UDP, "198.51.100.1", 5060), "other.example.com")


def test_websocket_aliases_are_never_edgeport() -> None:
    addresses = own(Peer(Transport.WS, "0.0.0.0", 5062))
    assert not addresses.is_own(Peer(Transport.WS, "abc.invalid", 5062))


def test_answers_are_cached_for_a_while() -> None:
    asked: list[str] = []
    now = [0.0]

    def counting(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        asked.append(str(address))
        return False

    addresses = OwnAddresses(
        [Peer(Transport.UDP, "0.0.0.0", 5060)], clock=lambda: now[0], is_local=counting
    )
    for _ in range(3):
        addresses.is_own(Peer(Transport.UDP, "192.0.2.1", 5060))
    assert asked == ["192.0.2.1"]
    now[0] = 61.0
    addresses.is_own(Peer(Transport.UDP, "192.0.2.1", 5060))
    assert asked == ["192.0.2.1", "192.0.2.1"]


def test_the_kernel_knows_the_host_s_own_addresses() -> None:
    # A UDP connect sends nothing: these only ask the routing table.
    assert kernel_says_local(ipaddress.ip_address("127.0.0.1"))
    assert kernel_says_local(ipaddress.ip_address("127.200.1.1"))
    assert not kernel_says_local(ipaddress.ip_address("192.0.2.55"))  # TEST-NET-1
    for net in detect_localnets(ignore_loopback=True):
        interface = ipaddress.ip_interface(net)
        if interface.version == 4 and not interface.ip.is_link_local:
            assert kernel_says_local(interface.ip), net
