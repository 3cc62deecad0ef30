"""Next hops named in DNS, resolved on trio: the I/O around :mod:`edgeport.dns.resolver`.

:class:`DnsResolver` turns a :class:`~edgeport.convert.NextHop` into the
ordered targets RFC 3263 gives for it. It asks dnspython's asynchronous
resolver (which runs on trio through sniffio, never blocking the event
loop), keeps every answer for its TTL in a :class:`~edgeport.dns.cache.DnsCache`
(negative answers and failures too), and lets concurrent lookups of the same
question share one query. Targets that failed lately go to the end of the
list (:class:`~edgeport.dns.cache.AvoidList`).

A numeric host is used as it is. A ``.invalid`` host is the Contact of a
WebSocket client (RFC 7118 §5.2): it is never resolved; the transport layer
finds the connection it was seen on. ``localhost`` is the loopback address
(RFC 6761 §6.3), without a query.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Final

import dns.asyncresolver
import dns.exception
import dns.message
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.rrset
import trio

from edgeport.config.values import split_dns_server
from edgeport.dns.cache import (
    DEFAULT_NEGATIVE_TTL,
    FAILURE_TTL,
    MAX_NEGATIVE_TTL,
    AvoidList,
    DnsCache,
)
from edgeport.dns.resolver import (
    Kind,
    Naptr,
    Question,
    Records,
    Resolution,
    Srv,
    Target,
    normalise,
    numeric_address,
)
from edgeport.metrics import METRICS
from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from edgeport.config import DnsConfig
    from edgeport.convert import NextHop
    from edgeport.metrics import EdgeportMetrics

logger = logging.getLogger(__name__)

LOOPBACK_NAMES: Final = frozenset({"localhost"})
MAX_QUESTIONS: Final = 32  # queries one resolution may make (cache hits included)


class UnresolvableHost(Exception):
    """The next hop's host name leads to no address."""


class DnsResolver:
    """RFC 3263 targets for next hops, through a TTL cache and one query per question."""

    def __init__(
        self,
        config: DnsConfig,
        *,
        supported: Collection[Transport] = (Transport.UDP, Transport.TCP, Transport.TLS),
        clock: Callable[[], float] = trio.current_time,
        rng: random.Random | None = None,
        metrics: EdgeportMetrics = METRICS,
    ) -> None:
        self._timeout = config.timeout
        self._supported = frozenset(supported)
        self._rng = rng or random.Random()
        self._metrics = metrics
        self.cache = DnsCache(config.cache.max_entries, clock)
        self.avoid = AvoidList(config.avoid_for, clock)
        self._pending: dict[Question, trio.Event] = {}
        self._resolver = _dnspython_resolver(config.servers)

    async def resolve(self, hop: NextHop) -> list[Target]:
        """The targets of ``hop``, best first (avoided ones last); raises UnresolvableHost."""
        host = hop.host.strip("[]")
        if is_websocket_alias(host):
            return [Target(host.lower(), hop.port, hop.transport, host.lower())]
        if normalise(host) in LOOPBACK_NAMES:
            return [Target("127.0.0.1", hop.port, hop.transport, host)]
        address = numeric_address(host)
        if address is not None:
            return [Target(address, hop.port, hop.transport, host)]
        resolution = Resolution(hop, self._supported, self._rng)
        with trio.move_on_after(self._timeout):
            for _ in range(MAX_QUESTIONS):
                question = resolution.next_question()
                if question is None:
                    break
                resolution.answer(question, await self.records(question))
            if not resolution.targets:
                raise UnresolvableHost(f"{host}: no address in DNS")
            return self.avoid.reorder(resolution.targets)
        # The lookup's deadline ends the query under way before its own timeout could:
        # counted here, or a DNS server that never answers would show nowhere.
        self._metrics.dns_lookups.labels(result="failure").inc()
        raise UnresolvableHost(f"{host}: DNS lookup timed out after {self._timeout} s")

    def failed(self, target: Target) -> None:
        """``target`` did not answer (RFC 3263 §4.3): avoid it for a while."""
        self.avoid.failed(target)

    async def records(self, question: Question) -> Records:
        """The records for ``question``: cached, shared with a query under way, or asked."""
        for _ in range(2):  # a shared query whose owner was cancelled is asked again
            cached = self.cache.get(question)
            if cached is not None:
                self._metrics.dns_lookups.labels(result="cached").inc()
                return cached.records
            pending = self._pending.get(question)
            if pending is None:
                break
            await pending.wait()
        # After two shared queries cancelled in turn, another one may be under way
        # already: then this one is asked beside it, and only the owner of the entry
        # removes it (taking its place would leave it to be removed twice).
        done = trio.Event()
        owner = self._pending.setdefault(question, done) is done
        try:
            records, ttl, result = await self._ask(question)
            self.cache.put(question, records, ttl)
            self._metrics.dns_lookups.labels(result=result).inc()
            return records
        finally:
            if owner:
                del self._pending[question]
            done.set()

    async def _ask(self, question: Question) -> tuple[Records, float, str]:
        """One question to the DNS servers: (records, TTL, result label)."""
        if question.kind is Kind.ADDRESS:
            found: dict[str, tuple[Records, float, str]] = {}

            async def ask(rdtype: str) -> None:
                found[rdtype] = await self._query(question.name, rdtype)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "A")
                nursery.start_soon(ask, "AAAA")
            answers = [found["A"], found["AAAA"]]
            addresses = tuple(str(r) for records, _ttl, _res in answers for r in records)
            useful = [ttl for records, ttl, _res in answers if records] or [
                ttl for _records, ttl, _res in answers
            ]
            results = {res for _records, _ttl, res in answers}
            result = "answer" if addresses else ("failure" if "failure" in results else "negative")
            return addresses, min(useful), result
        return await self._query(question.name, question.kind.value)

    async def _query(self, name: str, rdtype: str) -> tuple[Records, float, str]:
        try:
            answer = await self._resolver.resolve(
                name, rdtype, raise_on_no_answer=False, lifetime=self._timeout
            )
        except dns.resolver.NXDOMAIN as error:
            logger.debug("DNS: %s %s: no such name", name, rdtype)
            responses = error.kwargs.get("responses") or {}
            return (), _negative_ttl(next(iter(responses.values()), None)), "negative"
        except (dns.exception.DNSException, OSError) as error:
            logger.warning("DNS: %s %s: %s", name, rdtype, error)
            return (), FAILURE_TTL, "failure"
        if answer.rrset is None:
            return (), _negative_ttl(answer.response), "negative"
        return _records(answer.rrset), float(answer.rrset.ttl), "answer"


def _records(rrset: dns.rrset.RRset) -> Records:
    if rrset.rdtype == dns.rdatatype.NAPTR:
        return tuple(
            Naptr(
                rdata.order,
                rdata.preference,
                rdata.flags.decode("ascii", "replace"),
                rdata.service.decode("ascii", "replace"),
                rdata.replacement.to_text(omit_final_dot=True),
            )
            for rdata in rrset
        )
    if rrset.rdtype == dns.rdatatype.SRV:
        return tuple(
            Srv(
                rdata.priority,
                rdata.weight,
                rdata.port,
                "" if rdata.target.to_text() == "." else rdata.target.to_text(True),
            )
            for rdata in rrset
        )
    return tuple(rdata.to_text() for rdata in rrset)


def _negative_ttl(response: dns.message.Message | None) -> float:
    """RFC 2308 §5: the SOA's MINIMUM, or its TTL if smaller; a default without one."""
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                minimum = min(float(rrset.ttl), float(next(iter(rrset)).minimum))
                return min(minimum, MAX_NEGATIVE_TTL)
    return DEFAULT_NEGATIVE_TTL


def _dnspython_resolver(servers: tuple[str, ...]) -> dns.asyncresolver.Resolver:
    """spec.dns.servers, or the system's /etc/resolv.conf (its search list included)."""
    if servers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*split_dns_server(server)) for server in servers
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            logger.warning("DNS: no usable /etc/resolv.conf; asking 127.0.0.1")
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
        resolver.use_search_by_default = True
    resolver.cache = None  # edgeport's own cache keeps the answers
    return resolver
