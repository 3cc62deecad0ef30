"""Keystores and trust stores: PKCS#12 and PEM files built with trustme and cryptography."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeport.keystore import (
    KeyMaterial,
    KeystoreError,
    load_cert_chain_into,
    load_keystore,
    load_trust_store,
)
from tests.config_fixtures import (
    ca_certificate,
    certificates,
    private_key,
    write_leaf_pkcs12,
    write_pem,
    write_pkcs12,
)


def _handshake(material: KeyMaterial, ca: trustme.CA, server_name: str) -> None:
    """A TLS handshake in memory: our key material on the server, ``ca`` trusted by the client."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_cert_chain_into(server_context, material)
    client_context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client = client_context.wrap_bio(client_in, client_out, server_hostname=server_name)
    done = {"client": False, "server": False}
    for _ in range(10):  # a TLS 1.3 handshake takes two flights; ten is plenty
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    assert client.getpeercert()  # verified against ``ca`` and ``server_name``


def _pem_certs(blob: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(blob)


def test_pkcs12_with_a_password_gives_key_and_chain_usable_by_ssl(tmp_path: Path) -> None:
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("sip.example.com")
    chain = certificates(leaf)
    unrelated = ca_certificate(trustme.CA())  # a trusted entry that is not part of the chain
    path = write_pkcs12(
        tmp_path / "signaling.p12",
        "changeme",
        key=private_key(leaf),
        cert=chain[0],
        cas=[unrelated, chain[1]],
    )

    material = load_keystore(path, "changeme", "pkcs12")

    # The leaf first, then its issuer; the unrelated CA is left out.
    assert _pem_certs(material.cert_chain_pem) == chain
    key = serialization.load_pem_private_key(material.key_pem, None)
    assert key.public_key() == private_key(leaf).public_key()
    assert b"changeme" not in repr(material).encode()
    _handshake(material, ca, "sip.example.com")


def test_pkcs12_keystore_type_is_case_insensitive(tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("localhost")
    path = write_leaf_pkcs12(tmp_path / "k.p12", "pw", leaf)
    assert load_keystore(path, "pw", "PKCS12").cert_chain_pem == leaf.cert_chain_pems[0].bytes()


def test_pkcs12_without_a_password(tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("localhost")
    path = write_leaf_pkcs12(tmp_path / "open.p12", "", leaf)
    material = load_keystore(path, "", "pkcs12")
    assert material.cert_chain_pem == leaf.cert_chain_pems[0].bytes()


def test_pkcs12_wrong_password(tmp_path: Path) -> None:
    path = write_leaf_pkcs12(tmp_path / "k.p12", "right", trustme.CA().issue_cert("localhost"))
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "wrong", "pkcs12")
    assert str(caught.value) == f"cannot open {path}: wrong password (or a damaged PKCS#12 file)"
    assert caught.value.path == str(path)


def test_pkcs12_that_needs_a_password_when_none_is_set(tmp_path: Path) -> None:
    path = write_leaf_pkcs12(tmp_path / "k.p12", "secret", trustme.CA().issue_cert("localhost"))
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pkcs12")
    assert str(caught.value) == (
        f"cannot open {path}: the keystore needs a password (or the PKCS#12 file is damaged)"
    )


def test_missing_keystore_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.p12"
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "pw", "pkcs12")
    assert str(caught.value) == f"cannot open {path}: No such file or directory"


def test_keystore_name_with_a_nul_character() -> None:
    with pytest.raises(KeystoreError) as caught:
        load_keystore("k\x00.p12", "pw", "pkcs12")
    assert str(caught.value) == "cannot open 'k\\x00.p12': not a valid file name"


def test_empty_keystore_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.p12"
    path.write_bytes(b"")
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "pw", "pkcs12")
    assert str(caught.value) == f"cannot open {path}: the file is empty"


def test_pkcs12_with_a_key_and_no_certificate(tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("localhost")
    path = write_pkcs12(tmp_path / "k.p12", "pw", key=private_key(leaf), cert=None)
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "pw", "pkcs12")
    assert str(caught.value) == (
        f"cannot open {path}: no certificate for the private key in the keystore"
    )


def test_pkcs12_with_only_certificates_has_no_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = write_pkcs12(tmp_path / "t.p12", "pw", key=None, cert=None, cas=[ca_certificate(ca)])
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "pw", "pkcs12")
    assert str(caught.value) == f"cannot open {path}: no private key in the keystore"


def test_pkcs12_certificate_of_the_key_found_without_a_key_id(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    cert = certificates(leaf)[0]
    path = write_pkcs12(
        tmp_path / "k.p12", "pw", key=private_key(leaf), cert=None, cas=[ca_certificate(ca), cert]
    )
    material = load_keystore(path, "pw", "pkcs12")
    assert _pem_certs(material.cert_chain_pem) == [cert, ca_certificate(ca)]
    _handshake(material, ca, "localhost")


def test_pkcs12_key_with_only_an_unrelated_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("one.example.com"), ca.issue_cert("other.example.com")
    path = write_pkcs12(
        tmp_path / "k.p12", "pw", key=private_key(one), cert=None, cas=[certificates(other)[0]]
    )
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "pw", "pkcs12")
    assert str(caught.value) == (
        f"cannot open {path}: no certificate for the private key in the keystore"
    )


def test_pem_file_declared_as_pkcs12(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "server.pem", trustme.CA().issue_cert("localhost"))
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pkcs12")
    assert str(caught.value) == (
        f"cannot open {path}: not a PKCS#12 file but PEM (set keyStoreType: pem)"
    )


def test_java_keystore_is_named(tmp_path: Path) -> None:
    path = tmp_path / "keystore.jks"
    path.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + bytes(64))
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "changeit", "pkcs12")
    assert str(caught.value) == (
        f"cannot open {path}: a Java KeyStore (JKS) is not supported; convert it with "
        "`keytool -importkeystore -deststoretype pkcs12`"
    )


def test_unknown_keystore_type(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError) as caught:
        load_keystore(tmp_path / "k", "pw", "jceks")
    assert str(caught.value) == (
        f"cannot open {tmp_path / 'k'}: unsupported keystore type 'jceks' (pkcs12 or pem)"
    )


def test_pem_keystore_unencrypted(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.create_child_ca().issue_cert("sip.example.com")
    path = write_pem(tmp_path / "server.pem", leaf)
    material = load_keystore(path, "", "pem")
    assert _pem_certs(material.cert_chain_pem)[0] == certificates(leaf)[0]
    _handshake(material, ca, "sip.example.com")


def test_pem_keystore_with_an_encrypted_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    path = write_pem(tmp_path / "server.pem", leaf, password="s3cret")
    material = load_keystore(path, "s3cret", "pem")
    assert b"ENCRYPTED" not in material.key_pem
    _handshake(material, ca, "localhost")


def test_pem_keystore_encrypted_key_and_no_password(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "server.pem", trustme.CA().issue_cert("x"), password="s3cret")
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pem")
    assert str(caught.value) == (
        f"cannot open {path}: the private key is encrypted and no password is set"
    )


def test_pem_keystore_wrong_password(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "server.pem", trustme.CA().issue_cert("x"), password="s3cret")
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "guess", "pem")
    assert str(caught.value) == f"cannot open {path}: wrong password for the private key"


def test_pem_keystore_password_for_a_plain_key_is_harmless(tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("x")
    path = write_pem(tmp_path / "server.pem", leaf)
    assert load_keystore(path, "unused", "pem").cert_chain_pem == leaf.cert_chain_pems[0].bytes()


def test_pem_keystore_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(trustme.CA().issue_cert("x").cert_chain_pems[0].bytes())
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pem")
    assert str(caught.value) == f"cannot open {path}: no private key in the PEM file"


def test_pem_keystore_without_a_certificate(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(trustme.CA().issue_cert("x").private_key_pem.bytes())
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pem")
    assert str(caught.value) == (
        f"cannot open {path}: no certificate for the private key in the keystore"
    )


def test_pem_keystore_key_and_certificate_that_do_not_match(tmp_path: Path) -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("one"), ca.issue_cert("other")
    path = tmp_path / "mixed.pem"
    path.write_bytes(one.private_key_pem.bytes() + other.cert_chain_pems[0].bytes())
    with pytest.raises(KeystoreError) as caught:
        load_keystore(path, "", "pem")
    assert str(caught.value) == (
        f"cannot open {path}: the private key and the certificate do not match"
    )


def test_trust_store_from_pem(tmp_path: Path) -> None:
    first, second = trustme.CA(), trustme.CA()
    path = tmp_path / "ca.pem"
    path.write_bytes(first.cert_pem.bytes() + second.cert_pem.bytes())
    pem = load_trust_store(path)
    assert _pem_certs(pem) == [ca_certificate(first), ca_certificate(second)]
    ssl.create_default_context(cadata=pem.decode())  # accepted by ssl as is


def test_trust_store_from_pkcs12(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = write_pkcs12(tmp_path / "t.p12", "trust", key=None, cert=None, cas=[ca_certificate(ca)])
    assert _pem_certs(load_trust_store(path, "trust")) == [ca_certificate(ca)]


def test_trust_store_that_is_also_the_keystore(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.create_child_ca().issue_cert("x")
    path = write_leaf_pkcs12(tmp_path / "both.p12", "pw", leaf)
    assert _pem_certs(load_trust_store(path, "pw")) == certificates(leaf)


def test_trust_store_wrong_password(tmp_path: Path) -> None:
    ca = trustme.CA()
    path = write_pkcs12(tmp_path / "t.p12", "trust", key=None, cert=None, cas=[ca_certificate(ca)])
    with pytest.raises(KeystoreError) as caught:
        load_trust_store(path, "nope")
    assert str(caught.value) == f"cannot open {path}: wrong password (or a damaged PKCS#12 file)"


def test_trust_store_without_certificates(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(trustme.CA().issue_cert("x").private_key_pem.bytes())
    with pytest.raises(KeystoreError) as caught:
        load_trust_store(path)
    assert str(caught.value) == f"cannot open {path}: no certificate in the trust store"
