"""Auth on behalf of a client: the ``X-Gateway-Auth`` credentials (contract §4).

A processor that wants edgeport to authenticate towards the next hop (a
carrier trunk) adds ``X-Gateway-Auth: base64(username:password)`` to the
forwarded request. edgeport strips it, keeps the credentials with the client
transaction, and when the next hop answers an INVITE, MESSAGE or REGISTER with
401 or 407 it answers the challenge itself: HTTP digest (RFC 2617, RFC 7616;
RFC 8760 for SIP) with MD5 or SHA-256, ``qop=auth`` or no qop, and re-sends
the request with CSeq + 1 and a new branch.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
from typing import TYPE_CHECKING, Final

from edgeport.sip.digest import compute_digest_response
from edgeport.sip.errors import SipParseError
from edgeport.sip.headers import DigestChallenge, parse_digest_challenge, quote_string

if TYPE_CHECKING:
    from edgeport.sip.message import Request, Response

# RFC 7616 §3.7: a client that can SHOULD pick the strongest algorithm offered.
_PREFERENCE: Final = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")


class GatewayAuthError(ValueError):
    """Unusable X-Gateway-Auth value, or a challenge edgeport cannot answer."""


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayCredentials:
    username: str
    password: str = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, value: str) -> GatewayCredentials:
        """``base64(username:password)``; the value must decode and hold exactly one colon."""
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise GatewayAuthError("X-Gateway-Auth is not base64 of UTF-8 text") from None
        if decoded.count(":") != 1:
            raise GatewayAuthError("X-Gateway-Auth must decode to username:password")
        username, password = decoded.split(":")
        if not username:
            raise GatewayAuthError("X-Gateway-Auth has an empty username")
        return cls(username, password)


def _pick_challenge(values: list[str]) -> DigestChallenge:
    challenges: list[DigestChallenge] = []
    for value in values:
        try:
            challenge = parse_digest_challenge(value)
        except SipParseError:
            continue
        if challenge.scheme.lower() == "digest":
            challenges.append(challenge)
    if not challenges:
        raise GatewayAuthError("no digest challenge to answer")

    def rank(challenge: DigestChallenge) -> int:
        algorithm = (challenge.algorithm or "MD5").upper()
        return _PREFERENCE.index(algorithm) if algorithm in _PREFERENCE else len(_PREFERENCE)

    best = min(challenges, key=rank)
    if rank(best) == len(_PREFERENCE):
        raise GatewayAuthError(f"digest algorithm {best.algorithm!r} is not supported")
    return best


def credentials_header(
    request: Request,
    challenge: DigestChallenge,
    credentials: GatewayCredentials,
    *,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The Authorization / Proxy-Authorization value answering ``challenge``."""
    realm = challenge.realm or ""
    nonce = challenge.nonce
    if nonce is None:
        raise GatewayAuthError("the challenge has no nonce")
    algorithm = challenge.algorithm or "MD5"
    offered = [q.lower() for q in challenge.qop_options]
    if offered and "auth" not in offered:
        raise GatewayAuthError(f"qop {offered} offers no 'auth'")
    qop = "auth" if offered else None
    uri = str(request.uri)
    nc_text = f"{nc:08x}"
    try:
        response = compute_digest_response(
            algorithm=algorithm,
            username=credentials.username,
            realm=realm,
            password=credentials.password,
            method=request.method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
        )
    except ValueError as error:
        raise GatewayAuthError(str(error)) from None
    parts = [
        f"username={quote_string(credentials.username)}",
        f"realm={quote_string(realm)}",
        f"nonce={quote_string(nonce)}",
        f"uri={quote_string(uri)}",
        f"response={quote_string(response)}",
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"cnonce={quote_string(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote_string(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


def answer_challenge(
    request: Request,
    challenge_response: Response,
    credentials: GatewayCredentials,
    *,
    branch: str,
    cnonce: str | None = None,
) -> Request:
    """The request again, answering a 401 or 407, with CSeq + 1 and a new top Via branch."""
    if challenge_response.status_code == 401:
        challenge_name, answer_name = "WWW-Authenticate", "Authorization"
    elif challenge_response.status_code == 407:
        challenge_name, answer_name = "Proxy-Authenticate", "Proxy-Authorization"
    else:
        raise GatewayAuthError(f"{challenge_response.status_code} is not a challenge")
    challenge = _pick_challenge(challenge_response.headers.get_all(challenge_name))
    retry = request.copy()
    cseq = request.cseq
    retry.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
    top = request.top_via
    retry.set_top_via(dataclasses.replace(top, params={**top.params, "branch": branch}))
    value = credentials_header(
        retry, challenge, credentials, cnonce=cnonce if cnonce is not None else secrets.token_hex(8)
    )
    retry.headers.set(answer_name, value)
    return retry
