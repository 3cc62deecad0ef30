"""What edgeport remembers about dialogs it changed, bounded in entries.

- :class:`CSeqShifts`: auth on behalf (contract §4) re-sends the caller's
  request with CSeq + 1, so the later requests of that dialog (the ACK of
  its 2xx, a BYE) go with their CSeq shifted by as much.
- :class:`EndedDialogs`: a 2xx that crossed the caller's CANCEL was
  acknowledged and ended with a BYE downstream; its retransmissions (the
  callee missed the ACK) are acknowledged again with the same ACK.
- :class:`ReadyRelays`: forwards with a response to relay and no task
  relaying for them yet: the task that read the response relays it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from edgeport.proxy.model import Destination
    from edgeport.sip.message import Request, Response

MAX_DIALOG_OFFSETS: Final = 10_000  # dialogs whose CSeq edgeport shifted (auth on behalf)
MAX_ENDED_DIALOGS: Final = 1_000  # 2xx-after-CANCEL dialogs whose ACK is kept for re-sending


class CSeqShifts:
    """(Call-ID, From tag) -> how far edgeport moved the CSeq of that dialog."""

    def __init__(self, max_entries: int = MAX_DIALOG_OFFSETS) -> None:
        self._max_entries = max_entries
        self._offsets: OrderedDict[tuple[str, str], int] = OrderedDict()

    def shift(self, request: Request) -> None:
        """Move ``request``'s CSeq as far as its dialog's earlier requests were moved."""
        tag = request.from_.tag
        if not self._offsets or tag is None:
            return
        offset = self._offsets.get((request.call_id, tag))
        if offset:
            cseq = request.cseq
            request.headers.set("CSeq", f"{cseq.seq + offset} {cseq.method}")

    def moved_once(self, request: Request) -> None:
        """``request`` (a retry with credentials) went with CSeq + 1."""
        tag = request.from_.tag
        if tag is None:
            return
        key = (request.call_id, tag)
        self._offsets[key] = self._offsets.get(key, 0) + 1
        self._offsets.move_to_end(key)
        while len(self._offsets) > self._max_entries:
            self._offsets.popitem(last=False)


class EndedDialogs:
    """(Call-ID, CSeq number) of a 2xx edgeport ended -> its ACK and where it went."""

    def __init__(self, max_entries: int = MAX_ENDED_DIALOGS) -> None:
        self._max_entries = max_entries
        self._acks: OrderedDict[tuple[str, int], tuple[bytes, Destination]] = OrderedDict()

    def ended(self, response: Response, ack: bytes, destination: Destination) -> None:
        self._acks[(response.call_id, response.cseq.seq)] = (ack, destination)
        while len(self._acks) > self._max_entries:
            self._acks.popitem(last=False)

    def ack_for(self, response: Response) -> tuple[bytes, Destination] | None:
        """The ACK to send again for a retransmitted 2xx of an ended dialog, if any."""
        if not self._acks or not 200 <= response.status_code < 300:
            return None
        if response.cseq.method != "INVITE":
            return None
        return self._acks.get((response.call_id, response.cseq.seq))


class Relaying(Protocol):
    """A forward whose queued jobs (relays of its responses) run in order."""

    async def drain(self) -> None: ...


class ReadyRelays:
    """Forwards whose responses wait for the task that read them.

    The transaction layer hands a response to its forward synchronously, in
    the task that read it; that task then relays it (:meth:`run`), so a
    response costs no task of its own. A later response of the same forward
    joins the queue of the task already relaying for it, which keeps their
    order.
    """

    def __init__(self) -> None:
        self._ready: deque[Relaying] = deque()

    def add(self, forward: Relaying) -> None:
        self._ready.append(forward)

    async def run(self) -> None:
        """Relay for every ready forward, in the calling task."""
        while self._ready:
            await self._ready.popleft().drain()
