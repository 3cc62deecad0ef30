"""Cross-field checks: rules that join several keys, or look outside the file.

A secure transport needs ``spec.securityContext``, whose keystores must open;
``useSystemTrustStore: false`` needs a trust store; PROXY protocol only on
stream listeners and only with trusted proxies named; the built-in
processor's peers file must load.

They read the document itself (after the environment's overrides), so that
they are reported even when an unrelated key failed to structure; a section
that did not structure is left to the structuring pass's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeport.config.schema import SecurityContextFile, structure_security_context
from edgeport.config.values import one_of
from edgeport.keystore import KeystoreError, load_keystore, load_trust_store
from edgeport.sip.transport import Transport


def cross_checks(document: Mapping[str, Any]) -> list[str]:
    """Every cross-field problem of ``document``, one line each with its key path."""
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        return []
    problems: list[str] = []
    transports = spec.get("transport")
    problems.extend(_proxy_protocol_checks(spec))
    problems.extend(_builtin_checks(spec))
    protocols = [
        entry["protocol"].lower()
        for entry in (transports if isinstance(transports, list) else [])
        if isinstance(entry, Mapping) and isinstance(entry.get("protocol"), str)
    ]
    secure = [
        name
        for name in dict.fromkeys(protocols)
        if name in (Transport.TLS.value, Transport.WSS.value)
    ]
    raw_security = spec.get("securityContext")
    if secure and raw_security is None:
        problems.append(
            f"spec.securityContext: required key missing (spec.transport uses {one_of(secure)})"
        )
    if raw_security is None:
        return problems
    try:
        security: SecurityContextFile = structure_security_context(raw_security)
    except Exception:  # already reported by the structuring pass
        return problems
    try:
        load_keystore(security.key_store, security.key_store_password, security.key_store_type)
    except KeystoreError as exc:
        problems.append(f"spec.securityContext.keyStore: {exc}")
    if security.trust_store is not None:
        try:
            load_trust_store(security.trust_store, security.trust_store_password)
        except KeystoreError as exc:
            problems.append(f"spec.securityContext.trustStore: {exc}")
    elif not security.client.use_system_trust_store:
        problems.append(
            "spec.securityContext.client.useSystemTrustStore: false needs "
            "spec.securityContext.trustStore (outbound TLS would trust no certificate)"
        )
    return problems


def _proxy_protocol_checks(spec: Mapping[str, Any]) -> list[str]:
    """PROXY protocol only on stream listeners, and only with trusted proxies named."""
    transports = spec.get("transport")
    entries = transports if isinstance(transports, list) else []
    problems: list[str] = []
    enabled = False
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get("proxyProtocol") is not True:
            continue
        enabled = True
        protocol = entry.get("protocol")
        if isinstance(protocol, str) and protocol.lower() == Transport.UDP.value:
            problems.append(
                f"spec.transport[{index}].proxyProtocol: only tcp, tls, ws and wss "
                "listeners take a PROXY protocol header"
            )
    section = spec.get("proxyProtocol")
    trusted = section.get("trustedProxies") if isinstance(section, Mapping) else None
    if enabled and not trusted:
        problems.append(
            "spec.proxyProtocol.trustedProxies: required when a transport sets proxyProtocol "
            "(the networks of the load balancers allowed to send the header)"
        )
    return problems


def _builtin_checks(spec: Mapping[str, Any]) -> list[str]:
    """The spec.builtin.peers file must load (it is read again when the processor starts)."""
    section = spec.get("builtin")
    path = section.get("peers") if isinstance(section, Mapping) else None
    if not isinstance(path, str) or not path.strip():
        return []  # absent, or reported by the structuring pass
    # Late: importing edgeport.builtin runs its package, which brings in trio and gRPC.
    from edgeport.builtin.config import PeersConfigError, load_builtin_file

    try:
        load_builtin_file(path.strip())
    except PeersConfigError as exc:
        return [f"spec.builtin.peers: {line}" for line in exc.problems]
    return []
