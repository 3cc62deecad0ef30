"""Failover between the targets of one next hop (RFC 3263 §4.3).

A next hop named in DNS may give several targets (:mod:`.targets`). When
the current one fails before anything of it was relayed upstream (a
transport error, a timeout, no response at all within
``spec.dns.failoverTimeout``, a 503), :class:`Failover` says so to the
:class:`~.forwarding.Forwarder` (the event ``TARGET_FAILED`` of
:mod:`edgeport.forward_state`) and, on ``NEXT_TARGET``, readies the request
for the next target with a new branch. An attempt given up for silence that
wakes up later is cancelled (or, for a 2xx, acknowledged and ended with a
BYE): no branch is left ringing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from edgeport.dns import MAX_TARGETS
from edgeport.forward_state import ForwardState
from edgeport.proxy.targets import peer_of
from edgeport.sip.transaction import build_cancel

if TYPE_CHECKING:
    from edgeport.proxy.forwarding import Forward
    from edgeport.proxy.large_requests import LargeRequests
    from edgeport.proxy.loop_guard import LoopGuard
    from edgeport.proxy.model import Destination
    from edgeport.proxy.own_requests import OwnRequests
    from edgeport.proxy.targets import NextHops
    from edgeport.proxy.tasks import GuardedTasks
    from edgeport.sip.message import Request, Response
    from edgeport.transaction_layer import ClientTransactionHandle

logger = logging.getLogger(__name__)

# While the caller has seen nothing but a 100, a failed target gives way to the next.
_FAILOVER_STATES = (
    ForwardState.SENDING,
    ForwardState.CALLING,
    ForwardState.PROCEEDING,
    ForwardState.CANCEL_WAITING,
    ForwardState.CANCELLED,
)


@dataclass(slots=True)
class Attempt:
    """A request sent to a target that was given up (RFC 3263 §4.3 failover)."""

    request: Request
    destination: Destination
    cancelled: bool = False  # a CANCEL went to it after its first provisional


class Failover:
    """The silence timer, the choice of the next target, and the attempts given up."""

    def __init__(
        self,
        hops: NextHops,
        loops: LoopGuard,
        large: LargeRequests,
        tasks: GuardedTasks,
        own: OwnRequests,
    ) -> None:
        self._hops = hops
        self._loops = loops
        self._large = large  # RFC 3261 §18.1.1: over TCP when too large for UDP
        self._tasks = tasks
        self._own = own

    def start_silence_timer(
        self, forward: Forward, client: ClientTransactionHandle[Destination]
    ) -> None:
        """Give up on ``client``'s target when it sends nothing within the failover timeout."""
        forward.stop_silence_timer()
        scope = forward.silence_timer = trio.CancelScope()
        timeout = self._hops.failover_timeout

        async def wait() -> None:
            with scope:
                await trio.sleep(timeout)
                forward.silence_timer = None
                forward.on_silence(client)

        self._tasks.spawn(wait)

    def takes_over(self, forward: Forward, why: str) -> bool:
        """The current target failed (``why``): True when the next target is to be tried
        (there is one and the caller has seen nothing yet), the reason kept for the log."""
        if (
            forward.targets
            and not forward.relayed_provisional
            and forward.machine.state in _FAILOVER_STATES
        ):
            forward.failure = why
            return True
        return False

    async def next_target(self, forward: Forward) -> bool:
        """Action NEXT_TARGET: ready the request for the next target, with a new branch.

        False when every target left is edgeport itself (the send failed).
        """
        assert forward.request is not None
        assert forward.destination is not None
        assert forward.target is not None
        forward.stop_silence_timer()
        if forward.client is not None and len(forward.abandoned) < MAX_TARGETS:
            forward.abandoned[forward.client] = Attempt(forward.request, forward.destination)
        failed = forward.target
        while forward.targets:
            target = forward.targets.pop(0)
            self._hops.failed(forward.call_id, failed, forward.failure, target)
            if not self._loops.routed_to_self(forward.request, target.name, peer_of(target)):
                break
            failed = target
        else:
            return False
        forward.target = target
        forward.request = self._hops.fit(forward.request, target, branch=forward.new_branch())
        forward.destination = await self._large.destination(forward.request, peer_of(target))
        forward.client = None
        forward.auth_answered = False
        return True

    async def abandoned_response(
        self, forward: Forward, handle: ClientTransactionHandle[Destination], response: Response
    ) -> None:
        """A response from a target given up for silence: nobody upstream will see it.

        An INVITE that rings there is cancelled (RFC 3261 §9.1, now that a
        provisional came); one that was answered 2xx is acknowledged and ended.
        """
        attempt = forward.abandoned[handle]
        if attempt.request.method != "INVITE":
            return
        status = response.status_code
        if status < 200 and not attempt.cancelled:
            attempt.cancelled = True
            logger.info(
                "%s: cancelling the INVITE left at %s", forward.call_id, attempt.destination.peer
            )
            await self._own.send(build_cancel(attempt.request), attempt.destination)
        elif 200 <= status < 300:
            await self._own.end_dialog(attempt.request, attempt.destination, response)
