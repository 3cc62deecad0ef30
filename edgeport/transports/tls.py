"""TLS contexts for the TLS and WSS listeners and for outbound TLS connections.

RFC 3261 §26.2.1 (TLS for SIP), RFC 5630, RFC 6125 (the server's name in
its certificate). The server context comes from the ``spec.securityContext``
keystore; client authentication follows ``client.authType``;
``client.protocols`` sets the version range, never below TLS 1.2.

The client context (outbound TLS: to a trunk, a peer, a phone) comes from
the same ``spec.securityContext``: the server's certificate chain must lead
to a CA of ``trustStore`` or, unless ``client.useSystemTrustStore`` is
false, of the operating system's trust store; the keystore's certificate
and key are presented when the server asks for a client certificate (mutual
TLS); ``client.protocols`` sets the version range. See
:func:`build_client_context` for how the server's name is checked.

:func:`build_tls` builds both at once, with what a reload reports of the
server certificate (its serial number and notAfter): a reload builds a new
:class:`TlsSet` and the listeners take it for their next handshakes, while
connections already open keep the context they were made with.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from edgeport.config import ClientAuthType, SecurityContext
from edgeport.keystore import KeyMaterial, load_cert_chain_into, load_keystore, load_trust_store

logger = logging.getLogger(__name__)

_VERSIONS: Final = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
TLS_FLOOR: Final = ssl.TLSVersion.TLSv1_2  # TLS 1.0 and 1.1 are deprecated (RFC 8996)

_VERIFY_MODES: Final = {
    ClientAuthType.DISABLED: ssl.CERT_NONE,
    ClientAuthType.DISABLED_ALL: ssl.CERT_NONE,
    ClientAuthType.WANTED: ssl.CERT_OPTIONAL,
    ClientAuthType.REQUIRED: ssl.CERT_REQUIRED,
}


def version_range(protocols: tuple[str, ...]) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """(minimum, maximum) for ``client.protocols``; versions under TLS 1.2 are dropped."""
    versions = []
    for name in protocols:
        version = _VERSIONS.get(name)
        if version is None:
            raise ValueError(f"unknown TLS protocol {name!r}")
        if version < TLS_FLOOR:
            logger.warning("TLS protocol %s is below TLS 1.2 and is not offered", name)
            continue
        versions.append(version)
    if not versions:
        return TLS_FLOOR, ssl.TLSVersion.TLSv1_3
    return min(versions), max(versions)


@dataclass(frozen=True, slots=True)
class TlsSet:
    """The TLS contexts of one configuration, and the server certificate they serve."""

    server: ssl.SSLContext  # the TLS and WSS listeners'
    client: ssl.SSLContext  # outbound TLS connections'
    serial: int  # the server certificate's serial number
    not_after: float  # the server certificate's notAfter, as a Unix timestamp


def build_tls(sc: SecurityContext) -> TlsSet:
    """Both contexts of ``sc``, each from the files as they are now.

    Raises :class:`~edgeport.keystore.KeystoreError` (or ``ssl.SSLError``)
    when a file cannot be used.
    """
    material = load_keystore(sc.key_store, sc.key_store_password, sc.key_store_type)
    leaf = x509.load_pem_x509_certificate(material.cert_chain_pem)
    return TlsSet(
        server=build_server_context(sc, material),
        client=build_client_context(sc, material),
        serial=leaf.serial_number,
        not_after=leaf.not_valid_after_utc.timestamp(),
    )


def build_server_context(
    sc: SecurityContext, material: KeyMaterial | None = None
) -> ssl.SSLContext:
    """The listener context for TLS and WSS, from the keystore (or its ``material``,
    already read) and trust store."""
    if material is None:
        material = load_keystore(sc.key_store, sc.key_store_password, sc.key_store_type)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = version_range(sc.client_protocols)
    load_cert_chain_into(context, material)
    context.verify_mode = _VERIFY_MODES[sc.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        if sc.trust_store:
            cadata = load_trust_store(sc.trust_store, sc.trust_store_password)
            context.load_verify_locations(cadata=cadata.decode("ascii"))
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def build_client_context(
    sc: SecurityContext | None = None, material: KeyMaterial | None = None
) -> ssl.SSLContext:
    """The context for outbound TLS connections.

    Verification (always on: ``CERT_REQUIRED`` and a host name check): the
    server's chain must end at a CA of ``sc.trust_store`` or, when
    ``sc.client_use_system_trust_store`` (the default), of the system trust
    store. The server's certificate must then name the host edgeport
    connected to, as the next hop's URI gave it: a DNS name is matched
    against the certificate's DNS names (subjectAltName dNSName, wildcards
    as RFC 6125 allows); an IP address (``sip:bob@192.0.2.7;transport=tls``)
    is matched only against its IP addresses (subjectAltName iPAddress),
    never its common name, and no SNI is sent for it (RFC 6066 §3). A
    certificate without the IP address of an IP next hop fails, whoever
    signed it.

    Client certificate: the keystore's chain and key, sent when the server
    asks for one. Versions: ``sc.client_protocols``, never below TLS 1.2.
    Without ``sc`` (no securityContext): the system trust store only, no
    client certificate.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    context.minimum_version = TLS_FLOOR
    if sc is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    context.minimum_version, context.maximum_version = version_range(sc.client_protocols)
    if sc.client_use_system_trust_store:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if sc.trust_store:
        cadata = load_trust_store(sc.trust_store, sc.trust_store_password)
        context.load_verify_locations(cadata=cadata.decode("ascii"))
    if material is None:
        material = load_keystore(sc.key_store, sc.key_store_password, sc.key_store_type)
    load_cert_chain_into(context, material)
    return context
