"""Call-ID and CSeq: the values that name a request within a call.

RFC 3261 §8.1.1.4, §8.1.1.5, §20.8, §20.16, §25.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edgeport.sip.errors import SipParseError
from edgeport.sip.header_grammar import DIGITS, PARTS_MAX, PARTS_TEXT_MAX, is_token

# RFC 3261 §8.1.1.5: "The sequence number value MUST be expressible as a 32-bit
# unsigned integer and MUST be less than 2**31."
_MAX_CSEQ: Final = 2**31 - 1


def parse_call_id(value: str) -> str:
    """``callid = word [ "@" word ]``: one run of non-space characters (RFC 3261 §25.1)."""
    text = value.strip()
    if not text or len(text.split()) != 1:
        raise SipParseError("Invalid Call-ID")
    return text


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# CSeq text as given -> its value (immutable, so shared); bounded by PARTS_MAX,
# texts over PARTS_TEXT_MAX characters not kept.
_CSEQS: Final[dict[str, CSeq]] = {}


def parse_cseq(value: str) -> CSeq:
    """``1*DIGIT LWS Method``; the number below 2**31 (RFC 3261 §8.1.1.5)."""
    known = _CSEQS.get(value)
    if known is not None:
        return known
    cseq = _parse_cseq(value)
    if len(value) <= PARTS_TEXT_MAX:
        if len(_CSEQS) >= PARTS_MAX:
            _CSEQS.clear()
        _CSEQS[value] = cseq
    return cseq


def _parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError("Invalid CSeq")
    number, method = parts
    if not number or number.strip(DIGITS) or len(number) > 10 or not is_token(method):
        raise SipParseError("Invalid CSeq")
    seq = int(number)
    if seq > _MAX_CSEQ:
        raise SipParseError("Invalid CSeq")
    return CSeq(seq, method)
