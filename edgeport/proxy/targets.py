"""Where a forwarded request goes, and where it goes next when that fails (RFC 3263 §4.3).

:class:`NextHops` resolves a next hop into its ordered targets
(:class:`~edgeport.dns.DnsResolver`), makes the request fit the target it
is sent to (a new branch for each new client transaction; the top Via's
transport when DNS chose another transport than the processor assumed), and
records a target that failed: avoided for a while, counted, logged.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from edgeport.transports import Peer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgeport.convert import NextHop
    from edgeport.dns import DnsResolver, Target
    from edgeport.metrics import EdgeportMetrics
    from edgeport.sip.message import Request

logger = logging.getLogger(__name__)


def peer_of(target: Target) -> Peer:
    return Peer(target.transport, target.address, target.port)


class NextHops:
    """Targets for next hops, requests fitted to them, and the failures between them."""

    def __init__(
        self,
        resolver: DnsResolver,
        metrics: EdgeportMetrics,
        *,
        listening_points: Sequence[Peer],
        failover_timeout: float,
    ) -> None:
        self.resolver = resolver
        self._metrics = metrics
        self._listening = {point.transport: point for point in listening_points}
        self.failover_timeout = failover_timeout

    async def targets(self, hop: NextHop) -> list[Target]:
        """The targets of ``hop``, best first; raises UnresolvableHost."""
        return await self.resolver.resolve(hop)

    def fit(self, request: Request, target: Target, *, branch: str | None = None) -> Request:
        """``request`` as it goes to ``target``: a copy when anything changes.

        RFC 3263 §4.3: a retry to the next target "SHOULD" be "a new client
        transaction", hence ``branch``. RFC 3261 §18.1.1: the top Via names
        the transport the request is sent over; when DNS chose another
        transport than the one the processor wrote, the Via follows it (and
        takes edgeport's port for that transport, where it listens on one).
        """
        top = request.top_via
        token = target.transport.value.upper()
        if branch is None and top.transport.upper() == token:
            return request
        changed = dataclasses.replace(top)
        if branch is not None:
            changed = dataclasses.replace(changed, params={**top.params, "branch": branch})
        if top.transport.upper() != token:
            point = self._listening.get(target.transport)
            changed = dataclasses.replace(
                changed, transport=token, port=point.port if point is not None else top.port
            )
        fitted = request.copy()
        fitted.set_top_via(changed)
        return fitted

    def failed(self, call_id: str, target: Target, why: str, following: Target) -> None:
        """``target`` failed (RFC 3263 §4.3); the request goes on to ``following``."""
        self.resolver.failed(target)
        self._metrics.dns_failovers.inc()
        logger.warning("%s: next hop %s failed (%s); trying %s", call_id, target, why, following)
