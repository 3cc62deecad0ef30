"""Requests edgeport sends on its own behalf, downstream: a CANCEL, and the ACK and BYE
that end a dialog nobody upstream will see.

A CANCEL goes to an INVITE the caller cancelled (RFC 3261 §9.1) or to one
left at a target given up for silence; a 2xx that crossed a CANCEL, or that
came from a target given up, is acknowledged and the dialog it made is
ended with a BYE (RFC 3261 §15). Their responses end here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.teardown import end_dialog
from edgeport.transaction_layer import TransactionTableFull

if TYPE_CHECKING:
    from edgeport.proxy.answers import Responder
    from edgeport.proxy.dialog_state import EndedDialogs
    from edgeport.proxy.loop_guard import LoopGuard
    from edgeport.proxy.model import Destination
    from edgeport.sip.message import Request, Response
    from edgeport.transaction_layer import ClientTransactionHandle, TransactionLayer

logger = logging.getLogger(__name__)


class _IgnoreResponses:
    """The TU of a request edgeport sends itself (CANCEL, BYE): its answers end there."""

    def on_response(
        self,
        handle: ClientTransactionHandle[Destination],
        response: Response,
        source: Destination | None,
    ) -> None:
        return None

    def on_timeout(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None

    def on_transport_error(self, handle: ClientTransactionHandle[Destination]) -> None:
        return None


class OwnRequests:
    """CANCEL, ACK and BYE that edgeport makes itself, sent through their transactions."""

    def __init__(
        self,
        transactions: TransactionLayer[Destination],
        responder: Responder,
        *,
        loops: LoopGuard,
        ended: EndedDialogs,
    ) -> None:
        self._transactions = transactions
        self._responder = responder
        self._loops = loops
        self._ended = ended

    async def send(self, request: Request, destination: Destination) -> None:
        """A request edgeport makes itself (CANCEL, BYE): its responses end with it."""
        try:
            await self._transactions.send_request(
                request,
                destination,
                reliable=destination.peer.transport.reliable,
                tu=_IgnoreResponses(),
            )
        except (TransactionTableFull, ValueError, SipSerializeError) as error:
            logger.warning("%s: %s not sent: %s", request.call_id, request.method, error)

    async def end_dialog(
        self, request: Request, destination: Destination, response: Response
    ) -> None:
        """A 2xx nobody upstream will see (the caller cancelled, or the target was
        given up): acknowledge it and hang up (BYE)."""
        try:
            ack, bye = end_dialog(request, response, branch=self._loops.new_branch())
            ack_data = ack.to_bytes()
        except (SipParseError, SipSerializeError, ValueError) as error:
            logger.warning("%s: 2xx after CANCEL not ended: %s", response.call_id, error)
            return
        logger.info("%s: 2xx after CANCEL: acknowledged and ended with BYE", response.call_id)
        self._ended.ended(response, ack_data, destination)
        if await self._responder.send_quietly(ack_data, destination):
            self._responder.count_sent(ack, destination.peer.transport)
        await self.send(bye, destination)
