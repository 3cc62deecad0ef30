"""The Via header value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

``parse_via`` meets the common shape of a Via first with one anchored
regular expression written so it cannot backtrack, then a plain scan of
``SIP/2.0/UDP host[:port];params``, and hands anything else to the full
scan; a Via seen before but for its branch is built from kept parts.
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
    read_token,
    skip_ws,
    split_header_values,
)
from edgeport.sip.uri import common_params, parse_host, parse_port


@dataclass(slots=True, init=False)
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

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.protocol = protocol

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
        return f"{self.protocol}/{self.transport} {self.host}{port}{params_str(self.params)}"


# ``SIP/2.0/UDP host[:port];params``: hostname or IPv4, no optional whitespace.
# Linear: the transport stops at the one SP, the host at ":" ";" or the end,
# the port at ";" or the end; none of those is in the class before it.
_COMMON_VIA: Final = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-._]+)(?::([0-9]{1,5}))?" + RE_COMMON_PARAMS, re.ASCII
).fullmatch


# A Via of the common shape, by its text without its ``;branch=...`` -> where
# the branch stood and what the Via parses to (transport, host, port,
# parameters; the branch's place kept): the same text and place with another
# branch is the same Via but for the branch. A client writes the same Via but
# for the branch in request after request; a new branch is checked against
# the parameter-value class and put in a copy of the kept parameters. Bounded
# by PARTS_MAX (emptied when full); texts over PARTS_TEXT_MAX characters are not kept.
_VIA_PARTS: Final[dict[str, tuple[int, str, str, int | None, dict[str, str | None]]]] = {}
_BRANCH_PARAM: Final = ";branch="
# What the common pattern takes in an unquoted parameter value (RE_COMMON_PARAMS).
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
        if common_port is None or common_port <= MAX_PORT:
            params = common_params(param_text)
            transport = transport.upper()
            if (
                rest is not None
                and len(s) <= PARTS_TEXT_MAX
                and param_text.lower().count(_BRANCH_PARAM[:-1]) == 1
            ):
                # The one parameter named branch (or starting so): the rest of
                # the text says all the others.
                if len(_VIA_PARTS) >= PARTS_MAX:
                    _VIA_PARTS.clear()
                _VIA_PARTS[rest] = (mark, transport, host, common_port, params.copy())
            return Via(transport, host, common_port, params)
    if s.startswith("SIP/2.0/"):
        via = _parse_via_fast(s)
        if via is not None:
            return via
    n = len(s)
    i = skip_ws(s, 0)
    name, i = read_token(s, i, "Via protocol")
    i = skip_ws(s, i)
    if i >= n or s[i] != "/":
        raise SipParseError("Invalid Via protocol")
    version, i = read_token(s, skip_ws(s, i + 1), "Via protocol")
    i = skip_ws(s, i)
    if i >= n or s[i] != "/":
        raise SipParseError("Invalid Via protocol")
    transport, i = read_token(s, skip_ws(s, i + 1), "Via transport")
    j = skip_ws(s, i)
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
    i = skip_ws(s, host_end)
    port: int | None = None
    if i < n and s[i] == ":":
        i = skip_ws(s, i + 1)
        j = i
        while j < n and s[j] in DIGITS:
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
