"""The sans-IO SIP core: message model, parser, framing, transactions (RFC 3261).

Nothing here does I/O, reads a clock or draws random numbers; the trio
layers feed bytes and timer events in and carry bytes and actions out.
"""

from edgeport.sip.digest import compute_digest_response
from edgeport.sip.errors import MAX_MESSAGE_BYTES, SipParseError, SipSerializeError
from edgeport.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    DigestChallenge,
    DigestCredentials,
    NameAddr,
    Via,
    canonical_name,
    parse_cseq,
    parse_digest_challenge,
    parse_digest_credentials,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_via_list,
)
from edgeport.sip.message import REASON_PHRASES, Headers, Message, Request, Response, make_response
from edgeport.sip.parser import parse_message
from edgeport.sip.uri import OpaqueUri, SipUri, Uri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "MAX_MESSAGE_BYTES",
    "REASON_PHRASES",
    "CSeq",
    "DigestChallenge",
    "DigestCredentials",
    "Headers",
    "Message",
    "NameAddr",
    "OpaqueUri",
    "Request",
    "Response",
    "SipParseError",
    "SipSerializeError",
    "SipUri",
    "Uri",
    "Via",
    "canonical_name",
    "compute_digest_response",
    "make_response",
    "parse_cseq",
    "parse_digest_challenge",
    "parse_digest_credentials",
    "parse_message",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_uri",
    "parse_via",
    "parse_via_list",
]
