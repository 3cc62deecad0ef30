"""Digest authentication header values (RFC 3261 §20.7, §20.27, §20.28, §20.44, §22, §25.1).

WWW-Authenticate / Proxy-Authenticate challenges and Authorization /
Proxy-Authorization credentials (RFC 2617, RFC 7616, RFC 8760); a scheme
without parameters (``Basic``, ``Bearer``) keeps its token68 blob. The
common shape meets one anchored regular expression that cannot backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from edgeport.sip.errors import SipParseError
from edgeport.sip.header_grammar import RE_TOKEN, quote_string, read_token, scan_quoted, skip_ws

# RFC 7235 §2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68_CHARS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/"

# One auth-param with no whitespace around "=": a quoted-string without a
# quoted-pair, or a value with no quote, comma, "=" or whitespace.
_RE_AUTH_PARAM: Final = rf'([{RE_TOKEN}]+)=(?:"([^"\\]*)"|([^",= \t]+))'
# ``scheme SP auth-param *(COMMA auth-param)``. Linear: a name stops at "=",
# a quoted value at its closing quote, an unquoted value at the comma or
# whitespace that must follow it; the separator's characters (SP, HTAB, ",")
# are in none of those classes, so there is one way to split the text.
_COMMON_AUTH: Final = re.compile(
    rf"([{RE_TOKEN}]+)[ \t]+({_RE_AUTH_PARAM}(?:[ \t]*,[ \t]*{_RE_AUTH_PARAM})*)", re.ASCII
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
    scheme, i = read_token(s, 0, what)
    n = len(s)
    i = skip_ws(s, i)
    params: dict[str, str] = {}
    if i >= n:
        return scheme, params, None
    rest = s[i:]
    if not rest.rstrip("=").strip(_TOKEN68_CHARS) and "=" not in rest.rstrip("="):
        return scheme, params, rest
    while i < n:
        if s[i] == ",":  # empty list element
            i = skip_ws(s, i + 1)
            continue
        name, i = read_token(s, i, what)
        i = skip_ws(s, i)
        if i >= n or s[i] != "=":
            raise SipParseError(f"Invalid {what}")
        i = skip_ws(s, i + 1)
        if i < n and s[i] == '"':
            param_value, i = scan_quoted(s, i)
        else:
            # token per RFC 7235; read liberally up to the next separator
            j = i
            while j < n and s[j] not in ', \t"':
                j += 1
            if j == i:
                raise SipParseError(f"Invalid {what}")
            param_value, i = s[i:j], j
        params[name.lower()] = param_value
        i = skip_ws(s, i)
        if i < n:
            if s[i] != ",":
                raise SipParseError(f"Invalid {what}")
            i = skip_ws(s, i + 1)
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


@dataclass(slots=True, init=False)
class DigestChallenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §20.44, §20.27).

    ``params``: lower-cased names, values unquoted and unescaped. A
    non-parameter scheme (``Basic xyz``, ``Bearer xyz``) keeps its blob in
    ``token68``.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(
        self, scheme: str, params: dict[str, str] | None = None, token68: str | None = None
    ) -> None:
        self.scheme = scheme
        self.params = {} if params is None else params
        self.token68 = token68

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


@dataclass(slots=True, init=False)
class DigestCredentials:
    """An Authorization / Proxy-Authorization value (RFC 3261 §20.7, §20.28)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(
        self, scheme: str, params: dict[str, str] | None = None, token68: str | None = None
    ) -> None:
        self.scheme = scheme
        self.params = {} if params is None else params
        self.token68 = token68

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
