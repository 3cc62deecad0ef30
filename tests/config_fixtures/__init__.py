"""Real TLS material for the configuration, keystore and command-line tests.

Certificates come from trustme (a throwaway CA); PKCS#12 and PEM files are
written with cryptography, the way keytool or openssl would write them.
"""

from __future__ import annotations

from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12


def private_key(leaf: trustme.LeafCert) -> pkcs12.PKCS12PrivateKeyTypes:
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)  # what trustme makes
    return key


def certificates(leaf: trustme.LeafCert) -> list[x509.Certificate]:
    """The leaf certificate, then its issuers below the root."""
    return [x509.load_pem_x509_certificate(blob.bytes()) for blob in leaf.cert_chain_pems]


def ca_certificate(ca: trustme.CA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes())


def write_pkcs12(
    path: Path,
    password: str,
    *,
    key: pkcs12.PKCS12PrivateKeyTypes | None,
    cert: x509.Certificate | None,
    cas: list[x509.Certificate] | None = None,
) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"edgeport", key, cert, cas, encryption))
    return path


def write_leaf_pkcs12(path: Path, password: str, leaf: trustme.LeafCert) -> Path:
    chain = certificates(leaf)
    return write_pkcs12(path, password, key=private_key(leaf), cert=chain[0], cas=chain[1:])


def write_pem(path: Path, leaf: trustme.LeafCert, password: str = "") -> Path:
    """Key (encrypted with ``password`` when given) followed by the chain, in one file."""
    key = private_key(leaf)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    path.write_bytes(key_pem + b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return path
