"""edgeport's branches and its two loop checks (RFC 3261 §16.3 item 4, §16.6 item 8).

Every request edgeport sends on a caller's behalf gets a branch of edgeport's
own: a unique part (naming the worker, with workers) and the loop mark of
the request as it was received (:mod:`edgeport.sip.loops`). A request that
comes back carrying that mark has looped; a next hop that resolves to one of
edgeport's own listeners, however its address was written
(:mod:`edgeport.own_addresses`), would loop. Both are answered 482 by the
caller of these checks and counted (``loop``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.loops import has_looped, loop_mark, marked_branch

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.metrics import EdgeportMetrics
    from edgeport.own_addresses import OwnAddresses
    from edgeport.sip.message import Request
    from edgeport.transports import Peer

logger = logging.getLogger(__name__)


class LoopGuard:
    """The branch factory with loop marks, and the checks on entry and before sending."""

    def __init__(
        self,
        own_addresses: OwnAddresses,
        metrics: EdgeportMetrics,
        *,
        branch_factory: Callable[[], str],
        loop_key: bytes,
    ) -> None:
        self.own_addresses = own_addresses  # replaced by a reload (externalAddrs)
        self._metrics = metrics
        self.new_branch = branch_factory  # a unique branch, without a mark
        self._key = loop_key
        self._log = RateLimitedLog(logger)

    def marked_branches(self, request: Request) -> Callable[[], str]:
        """Branches for what edgeport sends on behalf of ``request`` (as received):
        each unique, each with the request's loop mark."""
        mark = loop_mark(request, self._key)
        unique = self.new_branch

        def new_branch() -> str:
            return marked_branch(unique(), mark)

        return new_branch

    def has_looped(self, request: Request) -> bool:
        """The request carries edgeport's Via with its own mark: it has looped."""
        return has_looped(request, self._key)

    def routed_to_self(self, request: Request, written_host: str, peer: Peer) -> bool:
        """A next hop that is edgeport itself, however its address was written
        (logged, counted)."""
        if not self.own_addresses.is_own(peer, written_host):
            return False
        self._log.warning(
            "%s: %s routed to edgeport itself (%s, %s)",
            request.call_id,
            request.method,
            written_host,
            peer,
        )
        self._metrics.dropped_messages.labels(reason="loop").inc()
        return True

    def count_loop(self, request: Request) -> None:
        """A request that came back with edgeport's mark (logged, counted)."""
        self._log.warning("%s: %s has looped back; 482", request.call_id, request.method)
        self._metrics.dropped_messages.labels(reason="loop").inc()
