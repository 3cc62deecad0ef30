"""Typed SIP header values: Via, name-addr headers, CSeq, digest auth (RFC 3261 §20, §25).

Header names: canonical spelling and compact forms (RFC 3261 §7.3.3, §20,
plus RFC 3265, RFC 3515, RFC 3841, RFC 3892, RFC 4028, RFC 4474). Values:
each ``parse_*`` takes the raw text of one header line (already unfolded)
and returns a typed value or raises SipParseError; ``str()`` of a typed
value writes it back. Comma-separated lists (Via, Contact, Route,
Record-Route) are split outside quoted strings and ``<...>``.

Scanning is index-based over ``str``. The common shapes of a Via, an
address and a digest header first meet one anchored regular expression each;
each is written so it cannot backtrack (the comment above it says why), only
accepts text the full scan reads the same way, and hands anything else to
the full scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from edgeport.sip.errors import SipParseError
from edgeport.sip.uri import (
    COMMON_SIP_URI_PATTERN,
    OpaqueUri,
    SipUri,
    Uri,
    common_params,
    parse_host,
    parse_port,
    parse_uri,
)

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "DigestChallenge",
    "DigestCredentials",
    "NameAddr",
    "Via",
    "canonical_name",
    "header_key",
    "parse_call_id",
    "parse_cseq",
    "parse_digest_challenge",
    "parse_digest_credentials",
    "parse_int_value",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_via",
    "parse_via_list",
    "quote_string",
    "split_header_values",
]

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


# --- low-level scanning ------------------------------------------------------

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_TOKEN_SET: Final = frozenset(TOKEN_CHARS)
_WS: Final = " \t"
_DIGITS: Final = "0123456789"
# Characters that may not appear in an unquoted parameter value.
_BAD_PARAM_VALUE: Final = frozenset('"<>,;\\')
_BAD_PARAM_VALUE_FAST: Final = frozenset("<>,\\")
# RFC 7235 §2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/"
# Fast-path character classes (ASCII): RFC 3261 §25.1 token, and what an
# unquoted generic-param value holds in practice (token / host / IPv6 address).
_RE_TOKEN: Final = r"A-Za-z0-9\-.!%*_+`'~"
_RE_PARAM_VALUE: Final = _RE_TOKEN + r":\[\]@/"
# ``*( ";" name [ "=" value ] )`` with no whitespace and no quoted string. Each
# parameter starts at ";", which neither class holds, and a name stops at "="
# or ";", which its class does not hold: there is one way to split the text,
# so a failed match gives characters back one at a time and stops (linear).
_RE_COMMON_PARAMS: Final = rf"((?:;[{_RE_TOKEN}]+(?:=[{_RE_PARAM_VALUE}]+)?)*)"
# RFC 3261 §8.1.1.5: "The sequence number value MUST be expressible as a 32-bit
# unsigned integer and MUST be less than 2**31."
_MAX_CSEQ: Final = 2**31 - 1
_MAX_PORT: Final = 65535


def ascii_int(value: str | None) -> int | None:
    """``1*DIGIT`` (ASCII digits only, at most 10) as an int, else None."""
    if not value or len(value) > 10 or value.strip(_DIGITS):
        return None
    return int(value)


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return bool(text) and not text.strip(TOKEN_CHARS)


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _read_token(s: str, i: int, what: str) -> tuple[str, int]:
    n = len(s)
    j = i
    while j < n and s[j] in _TOKEN_SET:
        j += 1
    if j == i:
        raise SipParseError(f"Invalid {what}")
    return s[i:j], j


def _scan_quoted(s: str, i: int) -> tuple[str, int]:
    """Read the quoted-string starting at ``s[i] == '"'``; return (unescaped text, end)."""
    n = len(s)
    j = i + 1
    close = s.find('"', j)
    backslash = s.find("\\", j)
    if close >= 0 and (backslash < 0 or backslash > close):
        return s[j:close], close + 1  # the common case: no quoted-pair
    out: list[str] = []
    while j < n:
        ch = s[j]
        if ch == '"':
            return "".join(out), j + 1
        if ch == "\\":
            j += 1
            if j >= n:
                break
            ch = s[j]
        out.append(ch)
        j += 1
    raise SipParseError("Unterminated quoted string")


def quote_string(text: str) -> str:
    """Write ``text`` as a quoted-string, escaping ``"`` and ``\\`` (RFC 3261 §25.1)."""
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value outside quoted strings and ``<...>``.

    RFC 3261 §7.3.1: a header line may hold several values of a
    comma-separated list. Empty elements are dropped; each item is stripped.
    """
    if "," not in value:
        item = value.strip()
        return [item] if item else []
    if '"' not in value:
        if "<" not in value:
            return [item for item in (part.strip() for part in value.split(",")) if item]
        # Re-join the pieces of a "<...>" that held a comma.
        items: list[str] = []
        pending = ""
        for part in value.split(","):
            pending = f"{pending},{part}" if pending else part
            if pending.count("<") <= pending.count(">"):
                item = pending.strip()
                if item:
                    items.append(item)
                pending = ""
        if pending:
            raise SipParseError("Unterminated <URI>")
        return items
    return _split_quoted(value)


def _split_quoted(value: str) -> list[str]:
    items = []
    start = 0
    i = 0
    n = len(value)
    in_quote = False
    in_angle = False
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif in_angle:
            if ch == ">":
                in_angle = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            in_angle = True
        elif ch == ",":
            item = value[start:i].strip()
            if item:
                items.append(item)
            start = i + 1
        i += 1
    if in_quote:
        raise SipParseError("Unterminated quoted string")
    if in_angle:
        raise SipParseError("Unterminated <URI>")
    item = value[start:].strip()
    if item:
        items.append(item)
    return items


def parse_params(s: str, i: int, what: str = "header") -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )`` from ``s[i:]`` (RFC 3261 §25.1).

    Names are lower-cased; a value is kept as written (a quoted-string keeps
    its quotes, so it serialises back unchanged); a name without ``=`` maps
    to None. SWS is allowed around ``;`` and ``=``.
    """
    rest = s[i:] if i else s
    if not rest:
        return {}
    if (
        rest[0] == ";"
        and '"' not in rest
        and " " not in rest
        and "\t" not in rest
        and _BAD_PARAM_VALUE_FAST.isdisjoint(rest)
    ):
        # The common case: ";name=value;flag", no whitespace, no quoted strings.
        params: dict[str, str | None] = {}
        for item in rest[1:].split(";"):
            name, eq, value = item.partition("=")
            if not (name.isascii() and name.isalnum()) and (not name or name.strip(TOKEN_CHARS)):
                raise SipParseError(f"Invalid {what} parameter")
            if eq:
                if not value:
                    raise SipParseError(f"Invalid {what} parameter value")
                params[name.lower()] = value
            else:
                params[name.lower()] = None
        return params
    return _parse_params_slow(s, i, what)


def _parse_params_slow(s: str, i: int, what: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    n = len(s)
    while True:
        i = _skip_ws(s, i)
        if i >= n:
            return params
        if s[i] != ";":
            raise SipParseError(f"Invalid {what} parameters")
        i = _skip_ws(s, i + 1)
        name, i = _read_token(s, i, f"{what} parameter")
        i = _skip_ws(s, i)
        value: str | None = None
        if i < n and s[i] == "=":
            i = _skip_ws(s, i + 1)
            if i < n and s[i] == '"':
                _, j = _scan_quoted(s, i)
            else:
                j = i
                while j < n and s[j] not in "; \t":
                    j += 1
                if j == i or not _BAD_PARAM_VALUE.isdisjoint(s[i:j]):
                    raise SipParseError(f"Invalid {what} parameter value")
            value = s[i:j]
            i = j
        params[name.lower()] = value


def _params_str(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_int_value(value: str, what: str, maximum: int = 2**32 - 1) -> int:
    """A header whose value is ``1*DIGIT`` (Max-Forwards, Expires, Content-Length)."""
    if len(value) <= 10 and value.isascii() and value.isdigit():  # the usual: digits alone
        number = int(value)
    else:
        text = value.strip()
        if not text or text.strip(_DIGITS) or len(text) > 10:
            raise SipParseError(f"Invalid {what}")
        number = int(text)
    if number > maximum:
        raise SipParseError(f"Invalid {what}")
    return number


# --- Via ---------------------------------------------------------------------


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

    ``params`` keeps every parameter in order with lower-cased names:
    ``branch``, ``received``, ``rport`` (None when present without a value),
    ``maddr``, ``ttl`` and any extension.
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        """RFC 3581: the client asks for the response at the source port."""
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The rport value, or None when absent or without a value."""
        value = self.params.get("rport")
        return ascii_int(value)

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        return ascii_int(value)

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port``."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_params_str(self.params)}"


# ``SIP/2.0/UDP host[:port];params``: hostname or IPv4, no optional whitespace.
# Linear: the transport stops at the one SP, the host at ":" ";" or the end,
# the port at ";" or the end; none of those is in the class before it.
_COMMON_VIA: Final = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-._]+)(?::([0-9]{1,5}))?" + _RE_COMMON_PARAMS, re.ASCII
).fullmatch


_PARTS_MAX: Final = 1024  # entries per parts table; when full it is emptied and fills again
_PARTS_TEXT_MAX: Final = 256  # characters of a kept text
# A Via of the common shape, by its text without its ``;branch=...`` -> where
# the branch stood and what the Via parses to (transport, host, port,
# parameters; the branch's place kept): the same text and place with another
# branch is the same Via but for the branch. A client writes the same Via but
# for the branch in request after request; a new branch is checked against
# the parameter-value class and put in a copy of the kept parameters. Bounded
# like _ADDR_PARTS; texts over _PARTS_TEXT_MAX characters are not kept.
_VIA_PARTS: Final[dict[str, tuple[int, str, str, int | None, dict[str, str | None]]]] = {}
_BRANCH_PARAM: Final = ";branch="
# What the common pattern takes in an unquoted parameter value (_RE_PARAM_VALUE).
_PARAM_VALUE_CHARS: Final = TOKEN_CHARS + ":[]@/"


def parse_via(value: str) -> Via:
    """Parse one Via value: ``SIP / 2.0 / UDP host[:port] *(;param)`` (RFC 3261 §20.42)."""
    s = value
    mark = s.find(_BRANCH_PARAM)
    rest = None
    if mark > 0:
        end = s.find(";", mark + 8)
        if end < 0:
            end = len(s)
        rest = s[:mark] + s[end:]
        parts = _VIA_PARTS.get(rest)
        if parts is not None and parts[0] == mark:
            branch = s[mark + 8 : end]
            if branch and not branch.strip(_PARAM_VALUE_CHARS):
                _, kept_transport, kept_host, kept_port, kept_params = parts
                fresh = kept_params.copy()
                fresh["branch"] = branch
                return Via(kept_transport, kept_host, kept_port, fresh)
    common = _COMMON_VIA(s)
    if common is not None:
        transport, host, port_text, param_text = common.groups()
        common_port = None if port_text is None else int(port_text)
        if common_port is None or common_port <= _MAX_PORT:
            params = common_params(param_text)
            transport = transport.upper()
            if (
                rest is not None
                and len(s) <= _PARTS_TEXT_MAX
                and param_text.lower().count(_BRANCH_PARAM[:-1]) == 1
            ):
                # The one parameter named branch (or starting so): the rest of
                # the text says all the others.
                if len(_VIA_PARTS) >= _PARTS_MAX:
                    _VIA_PARTS.clear()
                _VIA_PARTS[rest] = (mark, transport, host, common_port, params.copy())
            return Via(transport, host, common_port, params)
    if s.startswith("SIP/2.0/"):
        via = _parse_via_fast(s)
        if via is not None:
            return via
    n = len(s)
    i = _skip_ws(s, 0)
    name, i = _read_token(s, i, "Via protocol")
    i = _skip_ws(s, i)
    if i >= n or s[i] != "/":
        raise SipParseError("Invalid Via protocol")
    version, i = _read_token(s, _skip_ws(s, i + 1), "Via protocol")
    i = _skip_ws(s, i)
    if i >= n or s[i] != "/":
        raise SipParseError("Invalid Via protocol")
    transport, i = _read_token(s, _skip_ws(s, i + 1), "Via transport")
    j = _skip_ws(s, i)
    if j == i:
        raise SipParseError("Invalid Via sent-by")
    i = j
    if i < n and s[i] == "[":
        close = s.find("]", i)
        if close < 0:
            raise SipParseError("Invalid Via sent-by")
        host_end = close + 1
    else:
        host_end = i
        while host_end < n and s[host_end] not in ":; \t":
            host_end += 1
    try:
        host = parse_host(s[i:host_end])
    except SipParseError:
        raise SipParseError("Invalid Via sent-by") from None
    i = _skip_ws(s, host_end)
    port: int | None = None
    if i < n and s[i] == ":":
        i = _skip_ws(s, i + 1)
        j = i
        while j < n and s[j] in _DIGITS:
            j += 1
        try:
            port = parse_port(s[i:j])
        except SipParseError:
            raise SipParseError("Invalid Via sent-by") from None
        i = j
    params = parse_params(s, i, "Via")
    protocol = f"{name}/{version}".upper()
    if protocol != "SIP/2.0":
        raise SipParseError("Unsupported Via protocol")
    return Via(transport.upper(), host, port, params, protocol)


def _parse_via_fast(s: str) -> Via | None:
    """``SIP/2.0/UDP host[:port][;params]`` with no optional whitespace; else None."""
    sp = s.find(" ", 8)
    transport = s[8:sp]
    if sp < 0 or not (transport.isascii() and transport.isalpha()):
        return None
    semi = s.find(";", sp)
    sent_by = s[sp + 1 :] if semi < 0 else s[sp + 1 : semi]
    if not sent_by or " " in sent_by or "\t" in sent_by:
        return None
    port: int | None = None
    try:
        if sent_by[0] == "[":
            close = sent_by.find("]")
            host = sent_by[: close + 1]
            tail = sent_by[close + 1 :] if close > 0 else "?"
            if tail:
                if tail[0] != ":":
                    raise SipParseError("Invalid Via sent-by")
                port = parse_port(tail[1:])
        else:
            host, colon, port_text = sent_by.partition(":")
            if colon:
                port = parse_port(port_text)
        parse_host(host)
    except SipParseError:
        raise SipParseError("Invalid Via sent-by") from None
    params = {} if semi < 0 else parse_params(s, semi, "Via")
    return Via(transport.upper(), host, port, params)


def parse_via_list(value: str) -> list[Via]:
    """Every Via value on one header line, in order."""
    return [parse_via(item) for item in split_header_values(value)]


# --- name-addr / addr-spec (From, To, Contact, Route, Record-Route) ----------


@dataclass(slots=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value (RFC 3261 §20.10, §25.1).

    ``params`` are the header parameters (``tag``, ``expires``, ``q``...),
    names lower-cased, values as written. Contact ``*`` is
    ``NameAddr(None, OpaqueUri("", "*"), wildcard=True)``.
    """

    display_name: str | None
    uri: Uri
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter, or None when absent or not a number."""
        value = self.params.get("expires")
        return ascii_int(value)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` parameter, or None when absent or not a number."""
        # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        value = self.params.get("q")
        if (
            not value
            or len(value) > 5
            or value[0] not in _DIGITS
            or value.strip("0123456789.")
            or value.count(".") > 1
        ):
            return None
        q = float(value)
        return q if q <= 1.0 else None

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        # Always the name-addr form: a URI holding "," ";" or "?" needs the brackets.
        if self.display_name is None:
            return f"<{self.uri}>{_params_str(self.params)}"
        return f"{quote_string(self.display_name)} <{self.uri}>{_params_str(self.params)}"


_WILDCARD_URI: Final = "*"
# ``["display" [SWS]] <sip-uri>;params`` with a quoted display name holding
# no quoted-pair and a URI of parse_uri's common shape. Groups: display name,
# the five URI groups, header parameters. Linear: the display name stops at
# the first '"' (not in its class), the URI pattern cannot backtrack (see
# uri.py) and ends at ">", which none of its classes holds, and the header
# parameters are ``_RE_COMMON_PARAMS``.
_COMMON_NAME_ADDR: Final = re.compile(
    r'(?:"([^"\\]*)"[ \t]*)?<' + COMMON_SIP_URI_PATTERN + ">" + _RE_COMMON_PARAMS, re.ASCII
).fullmatch


# An address of the common shape, by its text as given -> what it parses to
# (display name, scheme, user, host, port, URI parameters, header parameters).
# The same addresses come back message after message (a dialog's From and
# To, a client's Contact, a route set); each parse of a known text builds
# fresh objects from the kept parts (copies of the kept dictionaries), so no
# two messages share a view. Texts over _PARTS_TEXT_MAX characters are not kept.
_AddrParts = tuple[
    str | None, str, str | None, str, int | None, dict[str, str | None], dict[str, str | None]
]
_ADDR_PARTS: Final[dict[str, _AddrParts]] = {}


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``( name-addr / addr-spec ) *( SEMI param )``, or the Contact ``*``.

    RFC 3261 §20.10: "If the URI is not enclosed in angle brackets, any
    semicolon-delimited parameters are header-parameters, not URI parameters."
    """
    parts = _ADDR_PARTS.get(value)
    if parts is not None:
        quoted, scheme, user, host, port, uri_params, header_params = parts
        return NameAddr(
            quoted,
            SipUri(scheme, user, None, host, port, uri_params.copy(), {}),
            header_params.copy(),
        )
    s = value.strip()
    common = _COMMON_NAME_ADDR(s)
    if common is not None:
        quoted, scheme, user, host, port_text, uri_text, header_text = common.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= _MAX_PORT:
            uri_params = common_params(uri_text)
            header_params = common_params(header_text)
            if len(value) <= _PARTS_TEXT_MAX:
                if len(_ADDR_PARTS) >= _PARTS_MAX:
                    _ADDR_PARTS.clear()
                _ADDR_PARTS[value] = (
                    quoted,
                    scheme,
                    user,
                    host,
                    port,
                    uri_params.copy(),
                    header_params.copy(),
                )
            common_uri = SipUri(scheme, user, None, host, port, uri_params, {})
            return NameAddr(quoted, common_uri, header_params)
    if s == _WILDCARD_URI:
        return NameAddr(None, OpaqueUri("", _WILDCARD_URI), {}, wildcard=True)
    if not s:
        raise SipParseError("Empty address")
    display: str | None = None
    if s[0] == '"':
        display, i = _scan_quoted(s, 0)
        i = _skip_ws(s, i)
        if i >= len(s) or s[i] != "<":
            raise SipParseError("Invalid address")
        lt = i
    else:
        lt = s.find("<")
        if lt > 0:
            token_display = s[:lt].strip()
            # display-name = *(token LWS) / quoted-string
            if token_display.replace(" ", "").replace("\t", "").strip(TOKEN_CHARS):
                raise SipParseError("Invalid display name")
            display = " ".join(token_display.split()) if token_display else None
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise SipParseError("Unterminated <URI>")
        uri = parse_uri(s[lt + 1 : gt])
        params = parse_params(s, gt + 1, "address")
    else:
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi]
        uri = parse_uri(uri_text.rstrip())
        params = {} if semi < 0 else parse_params(s, semi, "address")
    return NameAddr(display, uri, params)


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Every address on one Contact / Route / Record-Route line, in order."""
    return [parse_name_addr(item) for item in split_header_values(value)]


def parse_call_id(value: str) -> str:
    """``callid = word [ "@" word ]``: one run of non-space characters (RFC 3261 §25.1)."""
    text = value.strip()
    if not text or len(text.split()) != 1:
        raise SipParseError("Invalid Call-ID")
    return text


# --- CSeq --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# CSeq text as given -> its value (immutable, so shared); bounded like _ADDR_PARTS.
_CSEQS: Final[dict[str, CSeq]] = {}


def parse_cseq(value: str) -> CSeq:
    """``1*DIGIT LWS Method``; the number below 2**31 (RFC 3261 §8.1.1.5)."""
    known = _CSEQS.get(value)
    if known is not None:
        return known
    cseq = _parse_cseq(value)
    if len(value) <= _PARTS_TEXT_MAX:
        if len(_CSEQS) >= _PARTS_MAX:
            _CSEQS.clear()
        _CSEQS[value] = cseq
    return cseq


def _parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError("Invalid CSeq")
    number, method = parts
    if not number or number.strip(_DIGITS) or len(number) > 10 or not is_token(method):
        raise SipParseError("Invalid CSeq")
    seq = int(number)
    if seq > _MAX_CSEQ:
        raise SipParseError("Invalid CSeq")
    return CSeq(seq, method)


# --- digest authentication (RFC 3261 §22, §25.1; RFC 2617, RFC 7616, RFC 8760)


# One auth-param with no whitespace around "=": a quoted-string without a
# quoted-pair, or a value with no quote, comma, "=" or whitespace.
_RE_AUTH_PARAM: Final = rf'([{_RE_TOKEN}]+)=(?:"([^"\\]*)"|([^",= \t]+))'
# ``scheme SP auth-param *(COMMA auth-param)``. Linear: a name stops at "=",
# a quoted value at its closing quote, an unquoted value at the comma or
# whitespace that must follow it; the separator's characters (SP, HTAB, ",")
# are in none of those classes, so there is one way to split the text.
_COMMON_AUTH: Final = re.compile(
    rf"([{_RE_TOKEN}]+)[ \t]+({_RE_AUTH_PARAM}(?:[ \t]*,[ \t]*{_RE_AUTH_PARAM})*)", re.ASCII
).fullmatch
# Once _COMMON_AUTH matched, the parameters are exactly this pattern's matches.
_AUTH_PARAMS: Final = re.compile(_RE_AUTH_PARAM, re.ASCII).findall


def _parse_auth(value: str, what: str) -> tuple[str, dict[str, str], str | None]:
    """``scheme (token68 / auth-param *(COMMA auth-param))``; quoted values unescaped."""
    s = value.strip()
    common = _COMMON_AUTH(s)
    if common is not None:
        return (
            common.group(1),
            {
                name.lower(): unquoted or quoted
                for name, quoted, unquoted in _AUTH_PARAMS(common.group(2))
            },
            None,
        )
    scheme, i = _read_token(s, 0, what)
    n = len(s)
    i = _skip_ws(s, i)
    params: dict[str, str] = {}
    if i >= n:
        return scheme, params, None
    rest = s[i:]
    if not rest.rstrip("=").strip(_TOKEN68_CHARS) and "=" not in rest.rstrip("="):
        return scheme, params, rest
    while i < n:
        if s[i] == ",":  # empty list element
            i = _skip_ws(s, i + 1)
            continue
        name, i = _read_token(s, i, what)
        i = _skip_ws(s, i)
        if i >= n or s[i] != "=":
            raise SipParseError(f"Invalid {what}")
        i = _skip_ws(s, i + 1)
        if i < n and s[i] == '"':
            param_value, i = _scan_quoted(s, i)
        else:
            # token per RFC 7235; read liberally up to the next separator
            j = i
            while j < n and s[j] not in ', \t"':
                j += 1
            if j == i:
                raise SipParseError(f"Invalid {what}")
            param_value, i = s[i:j], j
        params[name.lower()] = param_value
        i = _skip_ws(s, i)
        if i < n:
            if s[i] != ",":
                raise SipParseError(f"Invalid {what}")
            i = _skip_ws(s, i + 1)
    return scheme, params, None


def _auth_str(
    scheme: str, params: dict[str, str], token68: str | None, bare: frozenset[str]
) -> str:
    if token68 is not None:
        return f"{scheme} {token68}"
    items = ", ".join(
        f"{k}={v}" if k in bare else f"{k}={quote_string(v)}" for k, v in params.items()
    )
    return f"{scheme} {items}" if items else scheme


# Parameters written as tokens, not quoted strings (RFC 2617 §3.2.1, §3.2.2; RFC 7616 §3.3, §3.4).
_CHALLENGE_TOKENS: Final = frozenset({"algorithm", "stale", "userhash", "charset"})
_CREDENTIAL_TOKENS: Final = frozenset({"algorithm", "qop", "nc", "userhash"})


@dataclass(slots=True)
class DigestChallenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §20.44, §20.27).

    ``params``: lower-cased names, values unquoted and unescaped. A
    non-parameter scheme (``Basic xyz``, ``Bearer xyz``) keeps its blob in
    ``token68``.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def opaque(self) -> str | None:
        return self.params.get("opaque")

    @property
    def algorithm(self) -> str | None:
        return self.params.get("algorithm")

    @property
    def domain(self) -> str | None:
        return self.params.get("domain")

    @property
    def qop_options(self) -> list[str]:
        """``qop="auth,auth-int"`` -> ["auth", "auth-int"]."""
        qop = self.params.get("qop")
        return [] if qop is None else [q.strip() for q in qop.split(",") if q.strip()]

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"

    def __str__(self) -> str:
        return _auth_str(self.scheme, self.params, self.token68, _CHALLENGE_TOKENS)


@dataclass(slots=True)
class DigestCredentials:
    """An Authorization / Proxy-Authorization value (RFC 3261 §20.7, §20.28)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def username(self) -> str | None:
        return self.params.get("username")

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def uri(self) -> str | None:
        return self.params.get("uri")

    @property
    def response(self) -> str | None:
        return self.params.get("response")

    @property
    def algorithm(self) -> str | None:
        return self.params.get("algorithm")

    @property
    def cnonce(self) -> str | None:
        return self.params.get("cnonce")

    @property
    def opaque(self) -> str | None:
        return self.params.get("opaque")

    @property
    def qop(self) -> str | None:
        return self.params.get("qop")

    @property
    def nc(self) -> str | None:
        """The nonce count as written: 8 hex digits (RFC 2617 §3.2.2)."""
        return self.params.get("nc")

    def __str__(self) -> str:
        return _auth_str(self.scheme, self.params, self.token68, _CREDENTIAL_TOKENS)


def parse_digest_challenge(value: str) -> DigestChallenge:
    """Parse a WWW-Authenticate or Proxy-Authenticate value."""
    scheme, params, token68 = _parse_auth(value, "challenge")
    return DigestChallenge(scheme, params, token68)


def parse_digest_credentials(value: str) -> DigestCredentials:
    """Parse an Authorization or Proxy-Authorization value."""
    scheme, params, token68 = _parse_auth(value, "credentials")
    return DigestCredentials(scheme, params, token68)
