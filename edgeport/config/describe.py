"""The effective configuration given back in the file's shape (``edgeport check-config``).

:func:`describe_config` writes every setting edgeport runs with, defaults
and detected localnets included, under the file's camelCase keys; passwords
are masked, and the settings only the environment gives are listed by
variable name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from edgeport.config.model import KIND

if TYPE_CHECKING:
    from edgeport.config.model import EdgePortConfig

PASSWORD_MASK: Final = "****"


def describe_config(config: EdgePortConfig) -> dict[str, Any]:
    """The effective configuration as plain data, in the file's camelCase shape.

    Passwords are masked. The settings that only the environment sets
    (publishers, health checks, 183 SDP stripping) are under ``environment``,
    by variable name.
    """
    spec: dict[str, Any] = {
        "bindAddr": config.bind_addr,
        "transport": [
            {"protocol": item.protocol.value, "port": item.port, "bindAddr": item.bind_addr}
            | ({"proxyProtocol": True} if item.proxy_protocol else {})
            for item in config.transports
        ],
        "methods": list(config.methods),
        "processor": {"addr": config.processor.addr, "timeout": config.processor.timeout},
        "externalAddrs": list(config.external_addrs),
        "localnets": list(config.localnets),
        "unknownMethodAction": config.unknown_method_action.value,
    }
    security = config.security_context
    if security is not None:
        spec["securityContext"] = {
            "keyStore": security.key_store,
            "keyStorePassword": _mask(security.key_store_password),
            "keyStoreType": security.key_store_type,
            "trustStore": security.trust_store,
            "trustStorePassword": _mask(security.trust_store_password),
            "client": {
                "protocols": list(security.client_protocols),
                "authType": security.client_auth_type.value,
                "useSystemTrustStore": security.client_use_system_trust_store,
            },
        }
    spec["connections"] = {
        "idleTimeout": config.connections.idle_timeout,
        "max": config.connections.max_connections,
        "webSocketPingInterval": config.connections.web_socket_ping_interval,
    }
    spec["websocket"] = {"allowedOrigins": list(config.websocket.allowed_origins)}
    if config.proxy_protocol.trusted_proxies:
        spec["proxyProtocol"] = {"trustedProxies": list(config.proxy_protocol.trusted_proxies)}
    spec["accessControl"] = {
        "allow": list(config.access_control.allow),
        "deny": list(config.access_control.deny),
    }
    protection = config.protection
    spec["protection"] = {
        "flood": {
            "enabled": protection.flood.enabled,
            "requests": protection.flood.requests,
            "window": protection.flood.window,
            "banTime": protection.flood.ban_time,
            "maxTracked": protection.flood.max_tracked,
            "trusted": list(protection.flood.trusted),
        },
        "scanners": list(protection.scanners),
        "maxConnectionsPerSource": protection.max_connections_per_source,
        "handshakeTimeout": protection.handshake_timeout,
        "firstMessageTimeout": protection.first_message_timeout,
    }
    spec["maxInFlight"] = config.max_in_flight
    large = config.large_requests_over_tcp
    spec["largeRequestsOverTcp"] = large if large is not None else False
    spec["limits"] = {"memory": config.limits.memory}
    spec["shutdownTimeout"] = config.shutdown_timeout
    spec["workers"] = config.workers
    if config.hep is not None:
        hep: dict[str, Any] = {"addr": config.hep.addr, "agentId": config.hep.agent_id}
        if config.hep.password:
            hep["password"] = _mask(config.hep.password)
        spec["capture"] = {"hep": hep}
    builtin: dict[str, Any] = {}
    if config.builtin.relay_to is not None:
        builtin["relayTo"] = list(config.builtin.relay_to)
    if config.builtin.peers is not None:
        builtin["peers"] = config.builtin.peers
    if builtin:
        spec["builtin"] = builtin
    spec["dns"] = {
        "servers": list(config.dns.servers),  # empty: /etc/resolv.conf
        "timeout": config.dns.timeout,
        "failoverTimeout": config.dns.failover_timeout,
        "avoidFor": config.dns.avoid_for,
        "cache": {"maxEntries": config.dns.cache.max_entries},
    }
    spec["reload"] = {"watchInterval": config.reload.watch_interval}
    described: dict[str, Any] = {"kind": KIND, "apiVersion": config.api_version, "ref": config.ref}
    if config.region is not None:
        described["metadata"] = {"region": config.region}
    described["spec"] = spec
    described["environment"] = {
        "CONSOLE_PUBLISHER_ENABLED": config.publishers.console_enabled,
        "NATS_PUBLISHER_ENABLED": config.publishers.nats_enabled,
        "NATS_PUBLISHER_URL": config.publishers.nats_url,
        "NATS_PUBLISHER_SUBJECT": config.publishers.nats_subject,
        "ENABLE_HEALTHCHECKS": config.health.enabled,
        "HEALTHCHECK_PORT": config.health.port,
        "HEALTHCHECK_BIND_ADDR": config.health.bind_addr or "",  # empty: spec.bindAddr
        "STRIP_SESSION_PROGRESS_SDP": config.strip_session_progress_sdp,
    }
    return described


def _mask(secret: str) -> str:
    return PASSWORD_MASK if secret else ""
