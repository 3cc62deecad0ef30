"""TLS key material from the files ``spec.securityContext`` names.

Routr reads a PKCS#12 keystore (``keyStoreType: pkcs12``) holding the
server's private key and certificate chain, and a trust store holding the
CA certificates that client certificates are checked against. edgeport
reads the same files with ``cryptography`` and adds ``keyStoreType: pem``:
one PEM file with the key (encrypted with ``keyStorePassword`` or not)
and the chain. A Java KeyStore (JKS) cannot be read; the error says how to
convert it.

Every failure is a :class:`KeystoreError` whose message names the file and
the reason, so the configuration check can print it on one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

if TYPE_CHECKING:
    import ssl

logger = logging.getLogger(__name__)

MAX_STORE_BYTES: Final = 1024 * 1024  # keystores hold a few certificates; refuse anything larger
MAX_CHAIN_LENGTH: Final = 16  # certificates followed from the leaf towards the root
KEYSTORE_TYPES: Final = ("pkcs12", "pem")
_JKS_MAGIC: Final = b"\xfe\xed\xfe\xed"
_PEM_KEY_RE: Final = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----.*?-----END \1-----",
    re.DOTALL,
)

_SUPPORTED_KEYS: Final = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


class KeystoreError(Exception):
    """A keystore or trust store cannot be used; the message names the file and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        shown = os.fspath(path)
        if not shown.isprintable():  # keep the message on one line
            shown = repr(shown)
        super().__init__(f"cannot open {shown}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A private key and its certificate chain, in PEM, ready for an SSLContext."""

    key_pem: bytes  # unencrypted PKCS#8
    cert_chain_pem: bytes  # the certificate of the key first, then its issuers

    def __repr__(self) -> str:  # never print the key
        return f"KeyMaterial(key_pem=<{len(self.key_pem)} bytes>, cert_chain_pem=...)"


def load_keystore(
    path: str | os.PathLike[str], password: str, store_type: str = "pkcs12"
) -> KeyMaterial:
    """Read the server key and chain from a PKCS#12 or PEM keystore.

    Raises :class:`KeystoreError` when the file cannot be read, the password is
    wrong, it holds no key or no certificate, or the key does not match the
    certificate.
    """
    kind = store_type.lower()
    if kind not in KEYSTORE_TYPES:
        raise KeystoreError(path, f"unsupported keystore type {store_type!r} (pkcs12 or pem)")
    data = _read(path)
    if kind == "pkcs12":
        key, leaf, others = _open_pkcs12(path, data, password)
    else:
        key, leaf, others = _open_pem(path, data, password)
    if key is None:
        raise KeystoreError(path, "no private key in the keystore")
    if leaf is None:
        raise KeystoreError(path, "no certificate for the private key in the keystore")
    if not isinstance(key, _SUPPORTED_KEYS):
        raise KeystoreError(path, f"unsupported private key type {type(key).__name__}")
    if _public_der(key) != _public_der_of_cert(leaf):
        raise KeystoreError(path, "the private key and the certificate do not match")
    chain = _chain_from(leaf, others)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    return KeyMaterial(key_pem=key_pem, cert_chain_pem=cert_pem)


def load_trust_store(path: str | os.PathLike[str], password: str = "") -> bytes:
    """The CA certificates of a PKCS#12 or PEM trust store, as concatenated PEM.

    The type is recognised from the content: PEM text, else PKCS#12. Pass the
    result as ``SSLContext.load_verify_locations(cadata=...)``.
    """
    data = _read(path)
    certs: list[x509.Certificate] = []
    if data.lstrip().startswith(b"-----BEGIN"):
        certs = _pem_certificates(path, data)
    else:
        _reject_jks(path, data)
        loaded = _load_pkcs12_store(path, data, password)
        if loaded.cert is not None:
            certs.append(loaded.cert.certificate)
        certs.extend(item.certificate for item in loaded.additional_certs)
    if not certs:
        raise KeystoreError(path, "no certificate in the trust store")
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def load_cert_chain_into(context: ssl.SSLContext, material: KeyMaterial) -> None:
    """``context.load_cert_chain`` from memory.

    The ssl module reads only files, so the chain and the key are written to
    an anonymous memory file (``memfd``, Linux) or else a private temporary
    file, with the key encrypted under a one-time password, and read back at once.
    """
    passphrase = secrets.token_urlsafe(24)
    key = serialization.load_pem_private_key(material.key_pem, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    blob = material.cert_chain_pem + encrypted
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("edgeport-cert", 0)
        try:
            os.write(fd, blob)
            context.load_cert_chain(f"/proc/self/fd/{fd}", password=passphrase)
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="edgeport-") as directory:
        target = Path(directory) / "chain.pem"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(blob)
        context.load_cert_chain(target, password=passphrase)


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_STORE_BYTES + 1)
    except OSError as exc:
        raise KeystoreError(path, exc.strerror or str(exc)) from None
    except ValueError:  # a NUL character in the name
        raise KeystoreError(path, "not a valid file name") from None
    if len(data) > MAX_STORE_BYTES:
        raise KeystoreError(path, f"larger than {MAX_STORE_BYTES} bytes, not a keystore")
    if not data:
        raise KeystoreError(path, "the file is empty")
    return data


def _reject_jks(path: str | os.PathLike[str], data: bytes) -> None:
    if data.startswith(_JKS_MAGIC):
        raise KeystoreError(
            path,
            "a Java KeyStore (JKS) is not supported; convert it with "
            "`keytool -importkeystore -deststoretype pkcs12`",
        )


def _passwords(password: str) -> list[bytes | None]:
    # An empty keyStorePassword may mean "no password" or "the empty password".
    return [password.encode()] if password else [None, b""]


def _load_pkcs12_store(
    path: str | os.PathLike[str], data: bytes, password: str
) -> pkcs12.PKCS12KeyAndCertificates:
    if data.lstrip().startswith(b"-----BEGIN"):
        raise KeystoreError(path, "not a PKCS#12 file but PEM (set keyStoreType: pem)")
    if not data.startswith(b"\x30"):  # a DER SEQUENCE
        raise KeystoreError(path, "not a PKCS#12 file")
    for candidate in _passwords(password):
        with contextlib.suppress(ValueError):
            return pkcs12.load_pkcs12(data, candidate)
    if password:
        raise KeystoreError(path, "wrong password (or a damaged PKCS#12 file)")
    raise KeystoreError(path, "the keystore needs a password (or the PKCS#12 file is damaged)")


def _open_pkcs12(
    path: str | os.PathLike[str], data: bytes, password: str
) -> tuple[object | None, x509.Certificate | None, list[x509.Certificate]]:
    _reject_jks(path, data)
    loaded = _load_pkcs12_store(path, data, password)
    others = [item.certificate for item in loaded.additional_certs]
    leaf = loaded.cert.certificate if loaded.cert is not None else None
    if leaf is None and loaded.key is not None:
        # Without a localKeyId tying them, the certificate of the key is among the others.
        key_der = _public_der(loaded.key)
        leaf = next((cert for cert in others if _public_der_of_cert(cert) == key_der), None)
        others = [cert for cert in others if cert is not leaf]
    return loaded.key, leaf, others


def _open_pem(
    path: str | os.PathLike[str], data: bytes, password: str
) -> tuple[object | None, x509.Certificate | None, list[x509.Certificate]]:
    blocks = list(_PEM_KEY_RE.finditer(data))
    if not blocks:
        raise KeystoreError(path, "no private key in the PEM file")
    if len(blocks) > 1:
        raise KeystoreError(path, "more than one private key in the PEM file")
    key = _pem_private_key(path, blocks[0].group(0), password)
    certs = _pem_certificates(path, data)
    key_der = _public_der(key)
    leaf = next((cert for cert in certs if _public_der_of_cert(cert) == key_der), None)
    if leaf is None and certs:
        leaf = certs[0]  # reported below as a key/certificate mismatch
    others = [cert for cert in certs if cert is not leaf]
    return key, leaf, others


def _pem_private_key(path: str | os.PathLike[str], block: bytes, password: str) -> object:
    secret = password.encode() if password else None
    try:
        return serialization.load_pem_private_key(block, secret)
    except TypeError:
        if secret is None:
            raise KeystoreError(
                path, "the private key is encrypted and no password is set"
            ) from None
        # A password was given for a key that is not encrypted: the key is usable as is.
        try:
            return serialization.load_pem_private_key(block, None)
        except (TypeError, ValueError):
            raise KeystoreError(path, "the private key cannot be read") from None
    except ValueError:
        if secret is not None:
            raise KeystoreError(path, "wrong password for the private key") from None
        raise KeystoreError(path, "the private key cannot be read") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others
        raise KeystoreError(path, f"the private key cannot be read ({exc})") from None


def _pem_certificates(path: str | os.PathLike[str], data: bytes) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeystoreError(path, f"a certificate cannot be read ({exc})") from None


def _public_der(key: object) -> bytes:
    if not isinstance(key, _SUPPORTED_KEYS):
        return b""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_der_of_cert(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _chain_from(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """The leaf, then each issuer found among ``others``; unrelated certificates are left out.

    A keystore that doubles as trust store holds CA certificates that are not
    part of the chain; sending them would only lengthen every handshake.
    """
    chain = [leaf]
    remaining = [cert for cert in others if cert != leaf]
    current = leaf
    while remaining and len(chain) < MAX_CHAIN_LENGTH and current.issuer != current.subject:
        issuer = next((cert for cert in remaining if cert.subject == current.issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        remaining.remove(issuer)
        current = issuer
    if remaining:
        logger.debug("%d certificate(s) in the keystore are not in the chain", len(remaining))
    return chain
