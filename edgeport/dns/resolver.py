"""RFC 3263 §4 for one next hop, sans-IO: which records to ask for, and the targets they give.

:class:`Resolution` asks one :class:`Question` at a time and takes its
answer as plain records (:class:`Naptr`, :class:`Srv`, addresses); it never
touches a socket or a clock, and its randomness (RFC 2782's weighted
choice) comes from the ``random.Random`` it is given. The caller
(:mod:`edgeport.dns.lookup`) runs the queries::

    resolution = Resolution(hop, supported=..., rng=...)
    while (question := resolution.next_question()) is not None:
        resolution.answer(question, await ask(question))
    targets = resolution.targets

The procedure, for a host that is a name:

- an explicit port: A/AAAA of the host only (RFC 3263 §4.2);
- an explicit transport and no port: SRV for that transport (§4.2), then
  A/AAAA of each SRV target; without SRV records, A/AAAA of the host on the
  transport's default port;
- neither: NAPTR (§4.1), keeping the services edgeport can use, by order
  then preference; each one's replacement is looked up as SRV. Without a
  usable NAPTR record, SRV for every supported transport (``_sip._udp``,
  ``_sip._tcp``, ``_sips._tcp``; only ``_sips._tcp`` for a SIPS URI); without
  any SRV record, A/AAAA of the host with UDP (TLS for SIPS) on the default
  port.

Every target every record leads to is kept, in order, so the caller can
fail over to the next one (RFC 3263 §4.3). WebSocket is not looked up
(SIP+D2W, ``_sip._ws``): edgeport cannot open a WebSocket connection to a
next hop, it can only reuse one a client opened.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from edgeport.sip.transport import Transport

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable, Sequence

    from edgeport.convert import NextHop

_SHORT_IPV4: Final = re.compile(r"[0-9]+(\.[0-9]+){0,3}")
MAX_TARGETS: Final = 16  # targets kept for one next hop (addresses of every SRV target)
MAX_SRV_HOSTS: Final = 8  # SRV target hosts looked up for one next hop
MAX_ADDRESSES_PER_NAME: Final = 4  # addresses kept from one A/AAAA answer

# RFC 3263 §4.1: the NAPTR services for the transports edgeport can open.
NAPTR_SERVICES: Final = {
    "SIP+D2U": Transport.UDP,
    "SIP+D2T": Transport.TCP,
    "SIPS+D2T": Transport.TLS,
}
# RFC 3263 §4.1 (no NAPTR) and §4.2: the SRV prefix of each transport.
SRV_PREFIXES: Final = {
    Transport.UDP: "_sip._udp.",
    Transport.TCP: "_sip._tcp.",
    Transport.TLS: "_sips._tcp.",
}


class Kind(enum.Enum):
    NAPTR = "NAPTR"
    SRV = "SRV"
    ADDRESS = "A/AAAA"  # the caller asks both and answers with every address


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # lower case, without the trailing dot
    kind: Kind


@dataclass(frozen=True, slots=True)
class Naptr:
    """A NAPTR record (RFC 3403 §4.1), the fields RFC 3263 reads."""

    order: int
    preference: int
    flags: str
    service: str
    replacement: str  # without the trailing dot


@dataclass(frozen=True, slots=True)
class Srv:
    """An SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "" for RFC 2782's "."


Records = tuple[Naptr, ...] | tuple[Srv, ...] | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """One place a next hop may be reached: an address, a port, a transport.

    ``name`` is the host name it was found under (for the log).
    """

    address: str
    port: int
    transport: Transport
    name: str

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        via = f" ({self.name})" if self.name != self.address else ""
        return f"{self.transport.value}://{host}:{self.port}{via}"


def normalise(name: str) -> str:
    return name.rstrip(".").lower()


def numeric_address(host: str) -> str | None:
    """The address a numeric host names, or None for a name.

    Besides IPv4 and IPv6 literals, the short IPv4 forms the system resolver
    reads (``127.1``, RFC 1166's ``inet_aton`` forms) count as numeric: no
    top-level domain is all digits (RFC 3696 §2), so they are never names.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host and _SHORT_IPV4.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_numeric(host: str) -> bool:
    return numeric_address(host) is not None


def order_naptr(records: Iterable[Naptr], *, secure: bool) -> list[tuple[Transport, str]]:
    """RFC 3263 §4.1: the usable NAPTR records as (transport, SRV name), best first.

    Usable: flag ``S`` (the replacement is an SRV name), a service edgeport
    speaks, a SIPS service only for a SIPS URI ("if the URI is a SIPS URI,
    only SIPS+D2X services are usable"... edgeport also keeps SIPS services
    for a SIP URI, TLS being at least as good), lowest order first, then
    lowest preference.
    """
    chosen: list[tuple[int, int, Transport, str]] = []
    for record in records:
        transport = NAPTR_SERVICES.get(record.service.upper())
        if transport is None or record.flags.lower() != "s" or not record.replacement:
            continue
        if secure and not transport.secure:
            continue
        chosen.append((record.order, record.preference, transport, normalise(record.replacement)))
    chosen.sort(key=lambda item: (item[0], item[1]))
    return [(transport, name) for _order, _pref, transport, name in chosen]


def order_srv(records: Iterable[Srv], rng: random.Random) -> list[Srv]:
    """RFC 2782: lowest priority first; within a priority, a weighted random order.

    "arrange all SRV RRs (that have not been ordered yet) in any order,
    except that all those with weight 0 are placed at the beginning of the
    list. Compute the sum of the weights of those RRs, and with each RR
    associate the running sum in the selected order. Then choose a uniform
    random number between 0 and the sum computed (inclusive), and select the
    RR whose running sum value is the first in the selected order which is
    greater than or equal to the random number selected." A target of "."
    means the service is not available there: it is left out.
    """
    usable = [record for record in records if record.target]
    ordered: list[Srv] = []
    for priority in sorted({record.priority for record in usable}):
        group = sorted(
            (record for record in usable if record.priority == priority),
            key=lambda record: record.weight != 0,
        )
        while group:
            pick = rng.randint(0, sum(record.weight for record in group))
            running = 0
            chosen = len(group) - 1
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    chosen = index
                    break
            ordered.append(group.pop(chosen))
    return ordered


@dataclass(slots=True)
class Resolution:
    """The resolution of one next hop (see the module docstring), one question at a time."""

    hop: NextHop
    supported: frozenset[Transport]
    rng: random.Random
    targets: list[Target] = field(default_factory=list)
    _questions: list[Question] = field(default_factory=list)
    # Where an address answer goes: name -> (port, transport) for each use of it.
    _address_uses: dict[str, list[tuple[int, Transport]]] = field(default_factory=dict)
    _srv_transport: dict[str, Transport] = field(default_factory=dict)
    _srv_found: bool = False
    _srv_hosts: int = 0
    # The host's own A/AAAA, asked last and only when no SRV record was found.
    _fallback: tuple[int, Transport] | None = None

    def __post_init__(self) -> None:
        host = self.hop.host
        address = numeric_address(host)
        if address is not None:
            self.targets.append(Target(address, self.hop.port, self.hop.transport, host))
            return
        name = normalise(host)
        if self.hop.explicit_port:
            # RFC 3263 §4.2: "If the TARGET was not a numeric IP address, but a
            # port is present in the URI, the client performs an A or AAAA
            # record lookup of the domain name."
            self._ask_addresses(name, self.hop.port, self.hop.transport)
        elif self.hop.explicit_transport:
            self._ask_srv_for(self.hop.transport, name)
            # Asked when the SRV gives nothing; at once for WS and WSS (no SRV).
            self._fallback = (self.hop.port, self.hop.transport)
        else:
            self._questions.append(Question(name, Kind.NAPTR))

    @property
    def _secure(self) -> bool:
        return self.hop.transport.secure

    def next_question(self) -> Question | None:
        """The next record set to look up, or None when the targets are known."""
        if len(self.targets) >= MAX_TARGETS:
            self._questions.clear()
        if self._questions:
            return self._questions.pop(0)
        if self._fallback is not None and not self._srv_found:
            # RFC 3263 §4.2: "If no SRV records were found, the client performs
            # an A or AAAA record lookup of the domain name."
            port, transport = self._fallback
            self._fallback = None
            name = normalise(self.hop.host)
            self._ask_addresses(name, port, transport)
            return self._questions.pop(0)
        return None

    def answer(self, question: Question, records: Sequence[object]) -> None:
        """The records found for ``question`` (none for a negative answer or an error)."""
        if question.kind is Kind.NAPTR:
            self._on_naptr([r for r in records if isinstance(r, Naptr)])
        elif question.kind is Kind.SRV:
            self._on_srv(question.name, [r for r in records if isinstance(r, Srv)])
        else:
            self._on_addresses(question.name, [r for r in records if isinstance(r, str)])

    def _on_naptr(self, records: list[Naptr]) -> None:
        name = normalise(self.hop.host)
        services = [
            (transport, srv_name)
            for transport, srv_name in order_naptr(records, secure=self._secure)
            if transport in self.supported
        ]
        if services:
            for transport, srv_name in services:
                self._srv_transport[srv_name] = transport
                self._questions.append(Question(srv_name, Kind.SRV))
        else:
            # RFC 3263 §4.1: "If no NAPTR records are found, the client
            # constructs SRV queries for those transport protocols it supports".
            for transport in (Transport.UDP, Transport.TCP, Transport.TLS):
                if transport in self.supported and (transport.secure or not self._secure):
                    self._ask_srv_for(transport, name)
        # RFC 3263 §4.1: "If no SRV records are found, [...] the client SHOULD
        # use TCP for a SIPS URI, and UDP for a SIP URI" (TCP under TLS).
        self._fallback = (self.hop.port, Transport.TLS if self._secure else Transport.UDP)

    def _ask_srv_for(self, transport: Transport, name: str) -> None:
        prefix = SRV_PREFIXES.get(transport)
        if prefix is None:
            return
        self._srv_transport[prefix + name] = transport
        self._questions.append(Question(prefix + name, Kind.SRV))

    def _on_srv(self, name: str, records: list[Srv]) -> None:
        transport = self._srv_transport.get(name)
        if transport is None:
            return
        if records:
            self._srv_found = True
        new: list[Question] = []
        for record in order_srv(records, self.rng):
            if self._srv_hosts >= MAX_SRV_HOSTS:
                break
            self._srv_hosts += 1
            target = normalise(record.target)
            if is_numeric(target):
                self._add(Target(target, record.port, transport, name))
                continue
            if target not in self._address_uses:
                new.append(Question(target, Kind.ADDRESS))
            self._address_uses.setdefault(target, []).append((record.port, transport))
        # The hosts of this SRV answer come before the SRV names still to be asked.
        self._questions[0:0] = new

    def _ask_addresses(self, name: str, port: int, transport: Transport) -> None:
        self._address_uses.setdefault(name, []).append((port, transport))
        self._questions.append(Question(name, Kind.ADDRESS))

    def _on_addresses(self, name: str, addresses: list[str]) -> None:
        uses = self._address_uses.pop(name, [])
        for port, transport in uses:
            for address in addresses[:MAX_ADDRESSES_PER_NAME]:
                self._add(Target(address, port, transport, name))

    def _add(self, target: Target) -> None:
        if len(self.targets) < MAX_TARGETS and target not in self.targets:
            self.targets.append(target)
