"""Address header values: From, To, Contact, Route, Record-Route (RFC 3261 §20.10, §25.1).

``name-addr`` / ``addr-spec`` with header parameters, and the Contact
``*``. The common shape (an optional quoted display name, ``<sip-uri>``,
parameters without whitespace) meets one anchored regular expression that
cannot backtrack; an address seen before is built from kept parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from edgeport.sip.errors import SipParseError
from edgeport.sip.header_grammar import (
    DIGITS,
    MAX_PORT,
    PARTS_MAX,
    PARTS_TEXT_MAX,
    RE_COMMON_PARAMS,
    TOKEN_CHARS,
    ascii_int,
    params_str,
    parse_params,
    quote_string,
    scan_quoted,
    skip_ws,
    split_header_values,
)
from edgeport.sip.uri import (
    COMMON_SIP_URI_PATTERN,
    OpaqueUri,
    SipUri,
    Uri,
    common_params,
    parse_uri,
)


@dataclass(slots=True, init=False)
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

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(
        self,
        display_name: str | None,
        uri: Uri,
        params: dict[str, str | None] | None = None,
        wildcard: bool = False,
    ) -> None:
        self.display_name = display_name
        self.uri = uri
        self.params = {} if params is None else params
        self.wildcard = wildcard

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
            or value[0] not in DIGITS
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
            return f"<{self.uri}>{params_str(self.params)}"
        return f"{quote_string(self.display_name)} <{self.uri}>{params_str(self.params)}"


_WILDCARD_URI: Final = "*"
# ``["display" [SWS]] <sip-uri>;params`` with a quoted display name holding
# no quoted-pair and a URI of parse_uri's common shape. Groups: display name,
# the five URI groups, header parameters. Linear: the display name stops at
# the first '"' (not in its class), the URI pattern cannot backtrack (see
# uri.py) and ends at ">", which none of its classes holds, and the header
# parameters are ``RE_COMMON_PARAMS``.
_COMMON_NAME_ADDR: Final = re.compile(
    r'(?:"([^"\\]*)"[ \t]*)?<' + COMMON_SIP_URI_PATTERN + ">" + RE_COMMON_PARAMS, re.ASCII
).fullmatch


# An address of the common shape, by its text as given -> what it parses to
# (display name, scheme, user, host, port, URI parameters, header parameters).
# The same addresses come back message after message (a dialog's From and
# To, a client's Contact, a route set); each parse of a known text builds
# fresh objects from the kept parts (copies of the kept dictionaries), so no
# two messages share a view. Texts over PARTS_TEXT_MAX characters are not kept.
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
        if port is None or port <= MAX_PORT:
            uri_params = common_params(uri_text)
            header_params = common_params(header_text)
            if len(value) <= PARTS_TEXT_MAX:
                if len(_ADDR_PARTS) >= PARTS_MAX:
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
        display, i = scan_quoted(s, 0)
        i = skip_ws(s, i)
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
