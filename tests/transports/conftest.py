"""Fixtures for the transport tests."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from transport_helpers import Recorder

from edgeport.config import ClientAuthType, SecurityContext


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def security_context(ca: trustme.CA, tmp_path: Path) -> Callable[[ClientAuthType], SecurityContext]:
    """A PKCS#12 keystore for 127.0.0.1 and a PKCS#12 trust store holding the CA."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    keystore = tmp_path / "keystore.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"edgeport", key, cert, [ca_cert], serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    truststore = tmp_path / "truststore.p12"
    truststore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            None, None, None, [ca_cert], serialization.BestAvailableEncryption(b"trust")
        )
    )

    def build(auth: ClientAuthType) -> SecurityContext:
        return SecurityContext(
            key_store=str(keystore),
            key_store_password="s3cret",
            trust_store=str(truststore),
            trust_store_password="trust",
            client_auth_type=auth,
        )

    return build


@pytest.fixture
def client_context(ca: trustme.CA) -> Callable[[bool], ssl.SSLContext]:
    """A client context trusting the CA; with a client certificate when asked."""

    def build(with_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if with_cert:
            ca.issue_cert("client.example.com").configure_cert(context)
        return context

    return build
