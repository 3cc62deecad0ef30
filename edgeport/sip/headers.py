"""Typed SIP header values and header names, in one place (RFC 3261 §7.3, §20, §25).

Each ``parse_*`` takes the raw text of one header line (already unfolded)
and returns a typed value or raises SipParseError; ``str()`` of a typed
value writes it back. The work is done in one module per kind of header:

- :mod:`~edgeport.sip.header_names`: canonical names, compact forms, lookup keys;
- :mod:`~edgeport.sip.header_grammar`: tokens, quoted strings, comma lists, parameters;
- :mod:`~edgeport.sip.via`: Via;
- :mod:`~edgeport.sip.addresses`: From, To, Contact, Route, Record-Route;
- :mod:`~edgeport.sip.request_ids`: Call-ID, CSeq;
- :mod:`~edgeport.sip.auth_headers`: digest challenges and credentials.

This module names them together for the callers; it holds no code.
"""

from __future__ import annotations

from edgeport.sip.addresses import NameAddr, parse_name_addr, parse_name_addr_list
from edgeport.sip.auth_headers import (
    DigestChallenge,
    DigestCredentials,
    parse_digest_challenge,
    parse_digest_credentials,
)
from edgeport.sip.header_grammar import (
    TOKEN_CHARS,
    ascii_int,
    is_token,
    parse_int_value,
    parse_params,
    quote_string,
    split_header_values,
)
from edgeport.sip.header_names import (
    CANONICAL_NAMES,
    COMPACT_FORMS,
    COMPACT_KEYS,
    canonical_name,
    canonical_name_for_key,
    header_key,
)
from edgeport.sip.request_ids import CSeq, parse_call_id, parse_cseq
from edgeport.sip.via import Via, parse_via, parse_via_list

__all__ = [
    "CANONICAL_NAMES",
    "COMPACT_FORMS",
    "COMPACT_KEYS",
    "TOKEN_CHARS",
    "CSeq",
    "DigestChallenge",
    "DigestCredentials",
    "NameAddr",
    "Via",
    "ascii_int",
    "canonical_name",
    "canonical_name_for_key",
    "header_key",
    "is_token",
    "parse_call_id",
    "parse_cseq",
    "parse_digest_challenge",
    "parse_digest_credentials",
    "parse_int_value",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_via",
    "parse_via_list",
    "quote_string",
    "split_header_values",
]
