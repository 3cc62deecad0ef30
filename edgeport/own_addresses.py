"""Is a next hop edgeport itself? Its own addresses, however they are spelled.

RFC 3261 §16.3 item 4 and §16.6: a proxy must not forward a request to
itself. A processor can route to ``sip:x@127.1:5060``, to a DNS name of the
host, to an interface address or to the external address: each reaches one
of edgeport's own listeners. The next hop is compared after it has been
resolved to an IP address (``127.1`` and ``localhost`` resolve to
``127.0.0.1``), with the address and port of every listener:

- a listener bound to a specific address matches that address only;
- a listener bound to ``0.0.0.0`` (or ``::``) matches every address of the
  host: loopback (all of ``127.0.0.0/8`` and ``::1``), and any address the
  kernel routes locally, found by asking the kernel which source address it
  would use towards that address (a local address is its own source);
- an external address (``spec.externalAddrs``, a NAT in front of edgeport
  that hairpins) matches with any listening port;
- the socket type matters: a UDP next hop matches UDP listeners, a TCP, TLS,
  WS or WSS next hop matches stream listeners.

Kernel answers are cached per address (bounded, and for a limited time, as
interface addresses change).
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from edgeport.edge_checks import own_hosts
from edgeport.ip import IPAddress, parse_ip
from edgeport.transports.base import Peer, normalize_host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from edgeport.sip.transport import Transport

MAX_CACHED_ADDRESSES: Final = 4096  # addresses whose locality the kernel told
CACHE_TTL: Final = 60.0  # seconds an answer is trusted
_UNSPECIFIED: Final = frozenset({"0.0.0.0", "::"})
_PROBE_PORT: Final = 9  # discard; a UDP connect sends nothing


def _kind(transport: Transport) -> bool:
    """True for stream transports: what a listener's socket type is compared by."""
    return transport.stream


def kernel_says_local(address: IPAddress) -> bool:
    """Whether the host owns ``address``: the kernel's source towards it is itself."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(address), _PROBE_PORT))
            source = probe.getsockname()[0]
    except OSError:
        return False  # no route: not an address of ours either
    return parse_ip(source) == address


class OwnAddresses:
    """The listeners' addresses and ports; :meth:`is_own` answers for a resolved next hop."""

    def __init__(
        self,
        listening_points: Iterable[Peer],
        external_addrs: Iterable[str] = (),
        *,
        clock: Callable[[], float],
        is_local: Callable[[IPAddress], bool] = kernel_says_local,
    ) -> None:
        # (stream?, port) -> bind addresses; an IP version (4 or 6) stands for
        # every address of that family (a listener on 0.0.0.0 or ::)
        self._listeners: dict[tuple[bool, int], set[IPAddress | int]] = {}
        for point in listening_points:
            host = normalize_host(point.host)
            bound: IPAddress | int | None = parse_ip(host)
            if host in _UNSPECIFIED:
                bound = 6 if ":" in host else 4
            if bound is not None:
                self._listeners.setdefault((_kind(point.transport), point.port), set()).add(bound)
        self._ports = {port for _, port in self._listeners}
        self._external_ips: set[IPAddress] = set()
        self._external_names: set[str] = set()
        for host in own_hosts((), external_addrs):
            ip = parse_ip(host)
            if ip is not None:
                self._external_ips.add(ip)
            else:
                self._external_names.add(host.rstrip("."))
        self._clock = clock
        self._is_local = is_local
        self._local: OrderedDict[IPAddress, tuple[bool, float]] = OrderedDict()

    def is_own(self, peer: Peer, written_host: str = "") -> bool:
        """True when ``peer`` (a resolved next hop) reaches one of edgeport's listeners.

        ``written_host`` is the host as the route named it, before resolution
        (an external address may be given by name).
        """
        if peer.port not in self._ports:
            return False
        if written_host and normalize_host(written_host).rstrip(".") in self._external_names:
            return True
        address = parse_ip(peer.host)
        if address is None:
            return False  # a `.invalid` WebSocket alias: a client, never edgeport
        if address in self._external_ips:
            return True
        bound = self._listeners.get((_kind(peer.transport), peer.port))
        if not bound:
            return False
        if address in bound:
            return True
        return address.version in bound and self._locally_owned(address)

    def _locally_owned(self, address: IPAddress) -> bool:
        now = self._clock()
        cached = self._local.get(address)
        if cached is not None and cached[1] > now:
            return cached[0]
        owned = self._is_local(address)
        self._local[address] = (owned, now + CACHE_TTL)
        self._local.move_to_end(address)
        while len(self._local) > MAX_CACHED_ADDRESSES:
            self._local.popitem(last=False)
        return owned
