"""Header names: canonical spelling, compact forms and the lookup key (RFC 3261 §7.3.3, §20).

The compact forms of RFC 3261 and of the extensions that define one (RFC
3265, RFC 3515, RFC 3841, RFC 3892, RFC 4028, RFC 4474); the canonical
spelling of the names edgeport knows; and :func:`header_key`, the one
folding every lookup of a header by name goes through (lower case, compact
form expanded).
"""

from __future__ import annotations

from typing import Final

# RFC 3261 §7.3.3 and the extensions' compact forms: compact letter -> full name.
COMPACT_FORMS: Final[dict[str, str]] = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 3265
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 3265
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 4474
}

_KNOWN_NAMES: Final = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
# lower-cased full name -> canonical spelling
CANONICAL_NAMES: Final[dict[str, str]] = {name.lower(): name for name in _KNOWN_NAMES}
# lower-cased compact letter -> lower-cased full name
COMPACT_KEYS: Final[dict[str, str]] = {k: v.lower() for k, v in COMPACT_FORMS.items()}
COMPACT_KEYS.update({k.upper(): v for k, v in COMPACT_KEYS.items()})


def _known_keys() -> dict[str, str]:
    known = dict(COMPACT_KEYS)
    for key, name in CANONICAL_NAMES.items():
        for spelling in (key, name, name.title(), name.upper()):
            known[spelling] = key
    return known


# The usual spellings of the known names (and the keys themselves) -> key.
_KNOWN_KEYS: Final = _known_keys()


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact form expanded."""
    known = _KNOWN_KEYS.get(name)
    if known is not None:
        return known
    if len(name) == 1:
        expanded = COMPACT_KEYS.get(name)
        if expanded is not None:
            return expanded
    return name.lower()


def canonical_name(name: str) -> str:
    """``"v"`` -> ``"Via"``, ``"call-id"`` -> ``"Call-ID"``; an unknown name as given."""
    return CANONICAL_NAMES.get(header_key(name), name)


def canonical_name_for_key(key: str, name: str) -> str:
    """canonical_name() when the key is already known (the serialiser's fast path)."""
    return CANONICAL_NAMES.get(key, name)
