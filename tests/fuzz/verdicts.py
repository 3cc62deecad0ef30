"""What the sender knows of each Call-ID it sent, to judge what the processor receives.

Every live input gets the Call-ID ``fz-<seed>-<index>`` before it is mutated.
Before its bytes leave, each message edgeport will see in them (a datagram, a
WebSocket message, a frame of the stream as a mirror framer cuts it) is marked
by its Call-ID: WELL_FORMED when the oracle accepts it, MALFORMED when not,
UNJUDGED when it went behind a mutated PROXY header. The processor, in another
thread, asks :meth:`Verdicts.judge` about each request's ``ref``: a Call-ID
only ever sent malformed, or never sent at all, is a finding.

Memory is bounded: one byte per input index, and at most
:data:`MAX_OTHER_CALL_IDS` digests for Call-IDs of other shapes (a seed's own
Call-ID left by a splice, a flipped byte). Past that cap, such a Call-ID
received is counted as not judged rather than remembered.
"""

from __future__ import annotations

import enum
import hashlib
import re
import threading
from typing import Final

WELL_FORMED: Final = 1
MALFORMED: Final = 2
UNJUDGED: Final = 4
MAX_OTHER_CALL_IDS: Final = 100_000  # 20-byte digests: a few MiB at most

# A flipped or grown Call-ID may hold thousands of digits: int() refuses past 4,300.
_GENERATED: Final = re.compile(r"fz-(\d{1,18})-(\d{1,18})")


class Judgement(enum.Enum):
    EXPECTED = "well-formed"
    AMBIGUOUS = "sent both well-formed and malformed"
    UNJUDGED = "behind a mutated PROXY header"
    OVERFLOW = "not remembered (table full)"
    UNEXPECTED = "only malformed, or never sent"


class Verdicts:
    def __init__(self, seed: int, count: int) -> None:
        self.seed = seed
        self._by_index = bytearray(count)
        self._others: dict[bytes, int] = {}
        self.overflowed = False
        self._lock = threading.Lock()

    def _index(self, call_id: str) -> int | None:
        match = _GENERATED.fullmatch(call_id)
        if match is None or int(match.group(1)) != self.seed:
            return None
        index = int(match.group(2))
        return index if index < len(self._by_index) else None

    def mark(self, call_id: str, verdict: int) -> None:
        index = self._index(call_id)
        with self._lock:
            if index is not None:
                self._by_index[index] |= verdict
                return
            key = _digest(call_id)
            if key in self._others:
                self._others[key] |= verdict
            elif len(self._others) < MAX_OTHER_CALL_IDS:
                self._others[key] = verdict
            else:
                self.overflowed = True

    def judge(self, call_id: str) -> Judgement:
        index = self._index(call_id)
        with self._lock:
            if index is not None:
                verdict = self._by_index[index]
            else:
                found = self._others.get(_digest(call_id))
                if found is None and self.overflowed:
                    return Judgement.OVERFLOW
                verdict = found or 0
        if verdict & WELL_FORMED:
            return Judgement.AMBIGUOUS if verdict & MALFORMED else Judgement.EXPECTED
        if verdict & UNJUDGED:
            return Judgement.UNJUDGED
        return Judgement.UNEXPECTED


def _digest(call_id: str) -> bytes:
    # surrogatepass: a Call-ID decoded with surrogateescape, or any other lone surrogate
    return hashlib.sha1(call_id.encode("utf-8", "surrogatepass")).digest()
