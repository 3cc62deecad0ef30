"""Digest response computation against the RFC test vectors (RFC 2617 §3.5, RFC 7616 §3.9.1)."""

from __future__ import annotations

import hashlib

import pytest

from edgeport.sip import parse_digest_challenge
from edgeport.sip.digest import (
    compute_digest_response,
    digest_ha1,
    make_credentials,
    verify_credentials,
)

RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


def test_rfc2617_md5_qop_auth() -> None:
    response = compute_digest_response(
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    assert compute_digest_response(algorithm=algorithm, **RFC7616) == expected


def test_no_qop_is_rfc2069_form() -> None:
    # RFC 2617 §3.2.2.1: response = H(H(A1) ":" nonce ":" H(A2)) when qop is absent.
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('u:r:p')}:n:{md5('REGISTER:sip:example.com')}")
    plain = compute_digest_response(
        username="u", realm="r", password="p", method="REGISTER", uri="sip:example.com", nonce="n"
    )
    assert plain == expected


def test_auth_int_covers_the_body() -> None:
    args = dict(RFC7616, qop="auth-int")
    first = compute_digest_response(body=b"v=0\r\n", **args)
    second = compute_digest_response(body=b"v=1\r\n", **args)
    assert first != second
    assert len(first) == 32


def test_sess_and_sha512_256() -> None:
    ha1 = digest_ha1(username="u", realm="r", password="p", algorithm="MD5")
    sess = digest_ha1(
        username="u", realm="r", password="p", algorithm="MD5-sess", nonce="n", cnonce="c"
    )
    assert ha1 != sess
    assert len(compute_digest_response(algorithm="SHA-512-256", **RFC7616)) == 64


@pytest.mark.parametrize(("field", "value"), [("algorithm", "SHA-1"), ("qop", "auth-conf")])
def test_unsupported(field: str, value: str) -> None:
    args: dict[str, str] = dict(RFC7616)
    args[field] = value
    with pytest.raises(ValueError, match="unsupported"):
        compute_digest_response(**args)


def test_qop_without_cnonce_is_refused() -> None:
    args: dict[str, str] = dict(RFC7616)
    del args["cnonce"]
    with pytest.raises(ValueError, match="cnonce"):
        compute_digest_response(**args)


def test_make_and_verify_credentials() -> None:
    challenge = parse_digest_challenge(
        'Digest realm="example.com", nonce="abc123", qop="auth-int,auth",'
        ' opaque="op", algorithm=SHA-256'
    )
    creds = make_credentials(
        challenge,
        username="alice",
        password="s3cret",
        method="REGISTER",
        uri="sip:example.com",
        cnonce="cn",
        nonce_count=2,
    )
    assert creds.qop == "auth"
    assert creds.nc == "00000002"
    assert creds.opaque == "op"
    assert creds.algorithm == "SHA-256"
    assert verify_credentials(creds, password="s3cret", method="REGISTER")
    assert not verify_credentials(creds, password="wrong", method="REGISTER")
    assert not verify_credentials(creds, password="s3cret", method="INVITE")


def test_make_credentials_without_qop() -> None:
    challenge = parse_digest_challenge('Digest realm="r", nonce="n"')
    creds = make_credentials(
        challenge, username="u", password="p", method="INVITE", uri="sip:b@x", cnonce="unused"
    )
    assert creds.qop is None
    assert creds.cnonce is None
    assert verify_credentials(creds, password="p", method="INVITE")
