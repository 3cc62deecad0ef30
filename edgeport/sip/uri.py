"""SIP, SIPS and other URIs: parse and serialise (RFC 3261 §19.1, §25.1).

``sip:``/``sips:`` URIs are split into user, password, host, port, parameters
and headers; %-escapes are kept as received, so ``str(parse_uri(x)) == x`` for
a URI written in canonical form. Any other scheme (``tel:``, ``urn:``...) is
kept whole as an :class:`OpaqueUri`. The parser is a single left-to-right
scan with ``str.find``; the common shape (``sip:user@host:port;params``)
first meets one anchored regular expression that cannot backtrack (see
``_COMMON_SIP_URI``), and anything it does not match takes the full scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from edgeport.sip.errors import SipParseError

# RFC 6761 §6.4: never resolved. A WebSocket client's Contact host is a random
# name under it (RFC 7118 §5.2); edgeport reaches it over the client's connection.
INVALID_TLD: Final = ".invalid"


def is_websocket_alias(host: str) -> bool:
    """A ``.invalid`` host, in any case, bracketed or not, with or without a final dot."""
    return host.strip("[]").rstrip(".").lower().endswith(INVALID_TLD)


__all__ = ["OpaqueUri", "SipUri", "Uri", "parse_uri"]

_ALPHA: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS: Final = "0123456789"
# RFC 3261 §25.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_CHARS: Final = _ALPHA + _DIGITS + "+-."
# hostname = *( domainlabel "." ) toplabel [ "." ]; "_" is tolerated, as most stacks do.
_HOSTNAME_CHARS: Final = _ALPHA + _DIGITS + "-._"
_IPV6_CHARS: Final = "0123456789abcdefABCDEF:."
# Characters no URI may hold unescaped (RFC 3261 §25.1 and RFC 3986 §2).
_FORBIDDEN: Final = frozenset(' \t\r\n<>"\x00\\`{}|^')
_MAX_PORT: Final = 65535

# The usual sip:/sips: URI: lower-case scheme, an optional user without a
# password, a hostname or IPv4 host, an optional port, ";"-parameters made of
# token characters, no headers. Groups: scheme, user, host, port, parameters.
# It yields exactly what the full scan yields for the same text; anything
# else goes to the full scan. Linear: every piece ends at a character its own
# class excludes ("@", ":", ";", "=", end), so no piece can trade characters
# with the next; the only retreat is giving up the optional "user@" once,
# which costs one pass over the user characters.
COMMON_SIP_URI_PATTERN: Final = (
    r"(sips?):"
    r"(?:([A-Za-z0-9\-_.!~*'()%&=+$,/]+)@)?"
    r"([A-Za-z0-9\-._]+)"
    r"(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-_.!~*'%+]+(?:=[A-Za-z0-9\-_.!~*'%+:\[\]]*)?)*)"
)
_COMMON_SIP_URI: Final = re.compile(COMMON_SIP_URI_PATTERN, re.ASCII).fullmatch


def common_params(text: str) -> dict[str, str | None]:
    """Parameters as a common-shape pattern matched them: ``""`` or ``;a=b;c``."""
    params: dict[str, str | None] = {}
    if text:
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
    return params


@dataclass(slots=True, init=False)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1).

    ``host`` keeps an IPv6 reference in brackets (``[2001:db8::1]``).
    ``params`` has lower-cased names in order of appearance; a parameter
    without a value (``lr``) maps to None. Values and ``user`` keep their
    %-escapes as received.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        password: str | None = None,
        host: str = "",
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.headers = {} if headers is None else headers

    @property
    def secure(self) -> bool:
        """RFC 3261 §19.1: a SIPS URI asks for TLS on every hop."""
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    @property
    def lr(self) -> bool:
        """RFC 3261 §19.1.1: the element this URI names is a loose router."""
        return "lr" in self.params

    @property
    def bnc(self) -> bool:
        """RFC 6140 ``bnc``: the host part alone is significant."""
        return "bnc" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        if not value or len(value) > 3 or value.strip(_DIGITS):
            return None
        return int(value)

    @property
    def user_param(self) -> str | None:
        return self.params.get("user")

    @property
    def method_param(self) -> str | None:
        return self.params.get("method")

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port``, as in a Via sent-by."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        user = self.user
        if (user is None or self.password is None) and not self.headers:
            # The usual shape, written without a list.
            text = f"{self.scheme}:{'' if user is None else user + '@'}{self.host}"
            if self.port is not None:
                text = f"{text}:{self.port}"
            for name, value in self.params.items():
                text = f"{text};{name}" if value is None else f"{text};{name}={value}"
            return text
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":")
                parts.append(self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            parts.append("?")
            parts.append("&".join(f"{name}={value}" for name, value in self.headers.items()))
        return "".join(parts)


@dataclass(slots=True, init=False)
class OpaqueUri:
    """A URI edgeport does not look into (``tel:``, ``urn:``, ``http:``...).

    ``str()`` gives it back as ``scheme:value``. The Contact wildcard is
    ``OpaqueUri("", "*")`` and prints as ``*``.
    """

    scheme: str
    value: str

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(self, scheme: str, value: str) -> None:
        self.scheme = scheme
        self.value = value

    @property
    def secure(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}" if self.scheme else self.value


Uri = SipUri | OpaqueUri


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; ``sip:`` and ``sips:`` in depth, others opaque.

    Raises SipParseError (status 400) on anything RFC 3261 §25.1 rejects
    that matters here: no scheme, whitespace or angle brackets inside, an
    empty host, a bad port.
    """
    parts = _URI_PARTS.get(text)
    if parts is not None:
        scheme, user, host, port, params = parts
        return SipUri(scheme, user, None, host, port, params.copy(), {})
    common = _COMMON_SIP_URI(text)
    if common is not None:
        scheme, user, host, port_text, param_text = common.groups()
        port = None if port_text is None else int(port_text)
        if port is None or port <= _MAX_PORT:
            params = common_params(param_text)
            if len(text) <= _PARTS_TEXT_MAX:
                if len(_URI_PARTS) >= _PARTS_MAX:
                    _URI_PARTS.clear()
                _URI_PARTS[text] = (scheme, user, host, port, params.copy())
            return SipUri(scheme, user, None, host, port, params, {})
    return _scan_uri(text)


# A URI of the common shape, by its text -> (scheme, user, host, port,
# parameters). The same Request-URIs come back message after message; each
# parse of a known text builds a fresh SipUri (with a copy of the kept
# parameters), so no two messages share one.
_URI_PARTS: Final[dict[str, tuple[str, str | None, str, int | None, dict[str, str | None]]]] = {}
_PARTS_MAX: Final = 1024  # entries; when full it is emptied and fills again
_PARTS_TEXT_MAX: Final = 256  # characters of a kept URI


def _scan_uri(text: str) -> Uri:
    """The full URI grammar (what parse_uri falls back to)."""
    if not _FORBIDDEN.isdisjoint(text):
        raise SipParseError("Invalid character in URI")
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError("URI has no scheme")
    scheme = text[:colon].lower()
    if scheme == "sip" or scheme == "sips":
        return _parse_sip_uri(scheme, text, colon + 1)
    if scheme[0] not in _ALPHA or scheme.strip(_SCHEME_CHARS):
        raise SipParseError("Invalid URI scheme")
    value = text[colon + 1 :]
    if not value:
        raise SipParseError("Empty URI")
    return OpaqueUri(scheme, value)


def parse_host(host: str) -> str:
    """Check a host (hostname, IPv4 or bracketed IPv6) and return it unchanged."""
    if not host:
        raise SipParseError("Empty host")
    if host[0] == "[":
        if len(host) < 4 or host[-1] != "]" or host[1:-1].strip(_IPV6_CHARS) or ":" not in host:
            raise SipParseError("Invalid IPv6 reference")
    elif host.strip(_HOSTNAME_CHARS):
        raise SipParseError("Invalid host")
    return host


def parse_port(text: str) -> int:
    """A decimal port 0..65535."""
    if not text or text.strip(_DIGITS) or len(text) > 5:
        raise SipParseError("Invalid port")
    port = int(text)
    if port > _MAX_PORT:
        raise SipParseError("Invalid port")
    return port


def _parse_sip_uri(scheme: str, text: str, start: int) -> SipUri:
    end = len(text)
    user: str | None = None
    password: str | None = None
    # userinfo holds no unescaped "@" (RFC 3261 §25.1), so the first "@" ends it.
    at = text.find("@", start)
    if at >= 0:
        userinfo = text[start:at]
        pcolon = userinfo.find(":")
        if pcolon >= 0:
            user, password = userinfo[:pcolon], userinfo[pcolon + 1 :]
        else:
            user = userinfo
        if not user:
            raise SipParseError("Empty user part in URI")
        start = at + 1
    # hostport, then ";params", then "?headers"
    qmark = text.find("?", start)
    semi = text.find(";", start, end if qmark < 0 else qmark)
    hostport_end = semi if semi >= 0 else (qmark if qmark >= 0 else end)
    hostport = text[start:hostport_end]
    port: int | None = None
    if hostport[:1] == "[":
        close = hostport.find("]")
        if close < 0:
            raise SipParseError("Invalid IPv6 reference")
        host = hostport[: close + 1]
        tail = hostport[close + 1 :]
        if tail:
            if tail[0] != ":":
                raise SipParseError("Invalid host")
            port = parse_port(tail[1:])
    else:
        host, colon, port_text = hostport.partition(":")
        if colon:
            port = parse_port(port_text)
    parse_host(host)
    params: dict[str, str | None] = {}
    headers: dict[str, str] = {}
    if semi >= 0:
        for item in text[semi + 1 : end if qmark < 0 else qmark].split(";"):
            name, eq, value = item.partition("=")
            if not name:
                raise SipParseError("Empty URI parameter name")
            params[name.lower()] = value if eq else None
    if qmark >= 0:
        for item in text[qmark + 1 :].split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipParseError("Invalid URI header")
            headers[name] = value
    return SipUri(scheme, user, password, host, port, params, headers)
