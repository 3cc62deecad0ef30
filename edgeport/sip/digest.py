"""Digest access authentication: response computation and checks (RFC 3261 §22.4).

Pure functions over RFC 2617, RFC 7616 (SHA-256, SHA-512/256, ``-sess``)
and RFC 8760 (SHA-256 and SHA-512/256 in SIP). Challenges and credentials
are parsed by :mod:`edgeport.sip.headers`; the client nonce is a parameter,
never drawn here, so results are reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from edgeport.sip.headers import (
    DigestChallenge,
    DigestCredentials,
    parse_digest_challenge,
    parse_digest_credentials,
)

__all__ = [
    "ALGORITHMS",
    "compute_digest_response",
    "digest_ha1",
    "make_credentials",
    "parse_digest_challenge",
    "parse_digest_credentials",
    "verify_credentials",
]

# algorithm token (upper case) -> hashlib name
ALGORITHMS: Final[dict[str, str]] = {
    "MD5": "md5",
    "MD5-SESS": "md5",
    "SHA-256": "sha256",
    "SHA-256-SESS": "sha256",
    "SHA-512-256": "sha512_256",
    "SHA-512-256-SESS": "sha512_256",
}


def _hasher(algorithm: str) -> str:
    name = ALGORITHMS.get(algorithm.upper())
    if name is None:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}")
    return name


def _h(hash_name: str, data: bytes) -> str:
    try:
        return hashlib.new(hash_name, data).hexdigest()
    except ValueError:  # SHA-512/256 missing from this OpenSSL build
        raise ValueError(f"digest algorithm unavailable here: {hash_name}") from None


def digest_ha1(
    *,
    username: str,
    realm: str,
    password: str,
    algorithm: str = "MD5",
    nonce: str = "",
    cnonce: str = "",
) -> str:
    """H(A1) (RFC 7616 §3.4.2): ``H(user:realm:password)``, and for ``-sess``
    ``H(H(user:realm:password):nonce:cnonce)``."""
    hash_name = _hasher(algorithm)
    ha1 = _h(hash_name, f"{username}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(hash_name, f"{ha1}:{nonce}:{cnonce}".encode())
    return ha1


def compute_digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value of digest credentials, as lower-case hex.

    ``qop`` is None (RFC 2069 compatibility), ``"auth"`` or ``"auth-int"``
    (A2 then covers the body); ``nc`` is the 8-hex-digit nonce count.
    """
    hash_name = _hasher(algorithm)
    ha1 = digest_ha1(
        username=username,
        realm=realm,
        password=password,
        algorithm=algorithm,
        nonce=nonce,
        cnonce=cnonce or "",
    )
    if qop is None:
        ha2 = _h(hash_name, f"{method}:{uri}".encode())
        return _h(hash_name, f"{ha1}:{nonce}:{ha2}".encode())
    qop = qop.lower()
    if qop == "auth":
        ha2 = _h(hash_name, f"{method}:{uri}".encode())
    elif qop == "auth-int":
        ha2 = _h(hash_name, f"{method}:{uri}:{_h(hash_name, body)}".encode())
    else:
        raise ValueError(f"unsupported qop: {qop!r}")
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    return _h(hash_name, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def make_credentials(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nonce_count: int = 1,
    body: bytes = b"",
) -> DigestCredentials:
    """Answer a challenge (RFC 3261 §22.2): prefers qop ``auth``, then ``auth-int``."""
    realm = challenge.realm or ""
    nonce = challenge.nonce or ""
    algorithm = challenge.algorithm or "MD5"
    options = challenge.qop_options
    qop = "auth" if "auth" in options else ("auth-int" if "auth-int" in options else None)
    params = {"username": username, "realm": realm, "nonce": nonce, "uri": uri}
    nc = f"{nonce_count:08x}"
    params["response"] = compute_digest_response(
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        nc=nc if qop else None,
        cnonce=cnonce if qop else None,
        body=body,
    )
    params["algorithm"] = algorithm
    if challenge.opaque is not None:
        params["opaque"] = challenge.opaque
    if qop is not None:
        params.update(qop=qop, nc=nc, cnonce=cnonce)
    return DigestCredentials("Digest", params)


def verify_credentials(
    credentials: DigestCredentials, *, password: str, method: str, body: bytes = b""
) -> bool:
    """True when the credentials' response matches ``password`` (constant-time compare)."""
    params = credentials.params
    if credentials.scheme.lower() != "digest" or "response" not in params:
        return False
    try:
        expected = compute_digest_response(
            username=params.get("username", ""),
            realm=params.get("realm", ""),
            password=password,
            method=method,
            uri=params.get("uri", ""),
            nonce=params.get("nonce", ""),
            algorithm=params.get("algorithm", "MD5"),
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            body=body,
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, params["response"].lower())
