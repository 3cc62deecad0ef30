"""The shared grammar of header values: tokens, quoted strings, lists, parameters (RFC 3261 §25.1).

Index-based scanning over ``str`` used by every typed header value:
token and quoted-string reading, comma-separated lists split outside quoted
strings and ``<...>`` (RFC 3261 §7.3.1), ``*( SEMI generic-param )``, and
``1*DIGIT`` values. Also the bounds of the parse tables the value parsers
keep (text as given -> what it parses to).
"""

from __future__ import annotations

from typing import Final

from edgeport.sip.errors import SipParseError

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_TOKEN_SET: Final = frozenset(TOKEN_CHARS)
_WS: Final = " \t"
DIGITS: Final = "0123456789"
# Characters that may not appear in an unquoted parameter value.
_BAD_PARAM_VALUE: Final = frozenset('"<>,;\\')
_BAD_PARAM_VALUE_FAST: Final = frozenset("<>,\\")
# Fast-path character classes (ASCII): RFC 3261 §25.1 token, and what an
# unquoted generic-param value holds in practice (token / host / IPv6 address).
RE_TOKEN: Final = r"A-Za-z0-9\-.!%*_+`'~"
_RE_PARAM_VALUE: Final = RE_TOKEN + r":\[\]@/"
# ``*( ";" name [ "=" value ] )`` with no whitespace and no quoted string. Each
# parameter starts at ";", which neither class holds, and a name stops at "="
# or ";", which its class does not hold: there is one way to split the text,
# so a failed match gives characters back one at a time and stops (linear).
RE_COMMON_PARAMS: Final = rf"((?:;[{RE_TOKEN}]+(?:=[{_RE_PARAM_VALUE}]+)?)*)"
MAX_PORT: Final = 65535
PARTS_MAX: Final = 1024  # entries per parts table; when full it is emptied and fills again
PARTS_TEXT_MAX: Final = 256  # characters of a kept text


def ascii_int(value: str | None) -> int | None:
    """``1*DIGIT`` (ASCII digits only, at most 10) as an int, else None."""
    if not value or len(value) > 10 or value.strip(DIGITS):
        return None
    return int(value)


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return bool(text) and not text.strip(TOKEN_CHARS)


def skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def read_token(s: str, i: int, what: str) -> tuple[str, int]:
    n = len(s)
    j = i
    while j < n and s[j] in _TOKEN_SET:
        j += 1
    if j == i:
        raise SipParseError(f"Invalid {what}")
    return s[i:j], j


def scan_quoted(s: str, i: int) -> tuple[str, int]:
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
        i = skip_ws(s, i)
        if i >= n:
            return params
        if s[i] != ";":
            raise SipParseError(f"Invalid {what} parameters")
        i = skip_ws(s, i + 1)
        name, i = read_token(s, i, f"{what} parameter")
        i = skip_ws(s, i)
        value: str | None = None
        if i < n and s[i] == "=":
            i = skip_ws(s, i + 1)
            if i < n and s[i] == '"':
                _, j = scan_quoted(s, i)
            else:
                j = i
                while j < n and s[j] not in "; \t":
                    j += 1
                if j == i or not _BAD_PARAM_VALUE.isdisjoint(s[i:j]):
                    raise SipParseError(f"Invalid {what} parameter value")
            value = s[i:j]
            i = j
        params[name.lower()] = value


def params_str(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_int_value(value: str, what: str, maximum: int = 2**32 - 1) -> int:
    """A header whose value is ``1*DIGIT`` (Max-Forwards, Expires, Content-Length)."""
    if len(value) <= 10 and value.isascii() and value.isdigit():  # the usual: digits alone
        number = int(value)
    else:
        text = value.strip()
        if not text or text.strip(DIGITS) or len(text) > 10:
            raise SipParseError(f"Invalid {what}")
        number = int(text)
    if number > maximum:
        raise SipParseError(f"Invalid {what}")
    return number
