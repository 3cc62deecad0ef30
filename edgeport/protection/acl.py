"""Source address matching against lists of CIDR networks, IPv4 and IPv6.

:class:`NetworkSet` answers "is this address in any of these networks" in a
few dictionary lookups: the networks are bucketed by prefix length as
integer network addresses, so a lookup masks the address once per distinct
prefix length present (a handful in practice) instead of scanning every
network. Hosts come as the socket reports them (text); the answers for
recently seen hosts are cached in a bounded dict.

:class:`AccessList` combines an allow list and a deny list: deny wins, an
empty allow list allows everyone.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_CACHED_HOSTS: Final = 4096  # answers kept; the cache is emptied when full

_V4_BITS: Final = 32
_V6_BITS: Final = 128


def address_key(host: str) -> tuple[int, int] | None:
    """``(version, integer address)`` of an IP literal, or None when ``host`` is not one.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) counts as the IPv4 address.
    """
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
    except OSError:
        pass
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, host.strip("[]")), "big")
    except OSError:
        return None
    if value >> 32 == 0xFFFF:
        return 4, value & 0xFFFFFFFF
    return 6, value


class NetworkSet:
    """A set of networks with a fast membership test for a host's address."""

    def __init__(self, networks: Iterable[str]) -> None:
        # version -> [(prefix length, mask, {network address, ...}), ...], longest first
        buckets: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        self.networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
            ipaddress.ip_network(text.strip(), strict=False) for text in networks
        )
        for network in self.networks:
            buckets[network.version].setdefault(network.prefixlen, set()).add(
                int(network.network_address)
            )
        self._buckets: dict[int, tuple[tuple[int, frozenset[int]], ...]] = {}
        for version, by_length in buckets.items():
            bits = _V4_BITS if version == 4 else _V6_BITS
            self._buckets[version] = tuple(
                (_mask(bits, length), frozenset(addresses))
                for length, addresses in sorted(by_length.items(), reverse=True)
            )
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        found = self._lookup(host)
        if len(self._cache) >= MAX_CACHED_HOSTS:
            self._cache.clear()
        self._cache[host] = found
        return found

    def _lookup(self, host: str) -> bool:
        key = address_key(host)
        if key is None:
            return False
        version, value = key
        return any(value & mask in addresses for mask, addresses in self._buckets[version])


def _mask(bits: int, length: int) -> int:
    return ((1 << length) - 1) << (bits - length)


class AccessList:
    """Allow and deny lists of networks: deny wins; an empty allow list allows all."""

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow = NetworkSet(allow)
        self.deny = NetworkSet(deny)
        self.active = bool(self.allow) or bool(self.deny)

    def permits(self, host: str) -> bool:
        if not self.active:
            return True
        if host in self.deny:
            return False
        return not self.allow or host in self.allow
