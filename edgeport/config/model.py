"""The configuration model: the typed, effective configuration edgeport runs with.

A leaf: it imports nothing of edgeport's runtime, only the plain facts it is
written in (:class:`~edgeport.sip.transport.Transport`, the memory budget's
default from :mod:`edgeport.memory`). ``tests/test_config_model_imports.py``
holds it to that.

Every default lives here, the protection defaults included; the runtime
modules that apply a setting (:mod:`edgeport.protection.guard`,
:mod:`~edgeport.protection.flood`...) read their defaults from this module,
never the other way round.

The classes are frozen and slotted. Most of them are also the shape of their
section of the file: :mod:`edgeport.config.schema` structures the file's
mapping straight into them. Where the file says it differently
(``spec.transport[*].bindAddr`` left to ``spec.bindAddr``, the
``securityContext.client`` section, localnets detected, the settings only the
environment gives), :mod:`edgeport.config.load` builds the effective value in
one explicit step.

The annotations are evaluated (no ``from __future__ import annotations``):
cattrs reads them to structure the file.
"""

import enum
from dataclasses import dataclass, field
from typing import Final

from edgeport.memory import DEFAULT_MEMORY_BYTES
from edgeport.sip.transport import Transport

# --- the document ------------------------------------------------------------------

KIND: Final = "EdgePort"
API_VERSIONS: Final = ("v2beta1", "v2")
TLS_PROTOCOLS: Final = ("TLSv1.2", "TLSv1.3")
BUILTIN_PROCESSOR: Final = "builtin"  # spec.processor.addr of the embedded processor
UNIX_PROCESSOR_PREFIX: Final = "unix:"  # spec.processor.addr: gRPC over a Unix socket

# --- defaults ------------------------------------------------------------------------

DEFAULT_PROCESSOR_TIMEOUT = 3.0  # seconds, edgeport extension spec.processor.timeout
DEFAULT_IDLE_TIMEOUT = 600.0  # seconds, edgeport extension spec.connections.idleTimeout
DEFAULT_MAX_CONNECTIONS = 10_000  # edgeport extension spec.connections.max
# edgeport extension spec.connections.webSocketPingInterval: seconds between
# WebSocket Pings to a silent WS/WSS peer. Browsers send no Pings of their own
# and SIP.js and JsSIP no keepalives by default, while load balancers and NATs
# drop a connection idle for 60 s (AWS ALB, nginx's proxy_read_timeout) or
# less: without Pings a registered browser there loses its connection, and
# its incoming calls, within a minute. 25 s stays under those with room for a
# lost Pong. 0 turns it off.
DEFAULT_WEBSOCKET_PING_INTERVAL = 25.0
MIN_WEBSOCKET_PING_INTERVAL: Final = 1.0  # seconds; below it Pings are traffic, not keepalives
# edgeport extension spec.largeRequestsOverTcp: RFC 3261 §18.1.1's bytes over
# which a request for a UDP next hop goes over TCP (path MTU unknown).
DEFAULT_LARGE_REQUEST_BYTES: Final = 1300
MIN_LARGE_REQUEST_BYTES: Final = 200  # smaller would send about every request over TCP
MAX_LARGE_REQUEST_BYTES: Final = 65_507  # the largest UDP payload over IPv4
# edgeport extension spec.maxInFlight: new requests being routed at once. More
# than the processor serves at its latency only queues in the processor, where
# calls time out (3 s) after costing work on both sides: under overload edgeport
# then answered a fifth of what it could. 100 allows 33,000/s at 3 ms.
DEFAULT_MAX_IN_FLIGHT = 100
WORKERS_AUTO: Final = "auto"
MAX_WORKERS: Final = 256
DEFAULT_SHUTDOWN_TIMEOUT = 32.0  # seconds, edgeport extension spec.shutdownTimeout
DEFAULT_HEALTHCHECK_PORT = 8080
DEFAULT_HEP_AGENT_ID = 1  # spec.capture.hep.agentId
# edgeport extension spec.reload.watchInterval: how often the securityContext
# files are looked at for a change that reloads the configuration; 0 turns it off.
DEFAULT_RELOAD_WATCH_INTERVAL: Final = 5.0  # seconds
MIN_RELOAD_WATCH_INTERVAL: Final = 0.1  # seconds
MAX_RELOAD_WATCH_INTERVAL: Final = 86_400.0  # seconds

# edgeport extension spec.protection.flood (edgeport.protection.flood): requests
# per source per window, and the bans of the sources over it.
DEFAULT_FLOOD_REQUESTS: Final = 300
DEFAULT_FLOOD_WINDOW: Final = 10.0  # seconds
DEFAULT_FLOOD_BAN_TIME: Final = 60.0  # seconds
DEFAULT_FLOOD_MAX_TRACKED: Final = 20_000  # sources counted, and bans held
# edgeport extension spec.protection.scanners (edgeport.protection.scanners):
# User-Agent substrings of widely used scanning and cracking tools (SIPVicious
# and its forks, sipcli, sip-scan, sundayddr, iWar, SIVuS, SIPBomber, and the
# strings seen in brute-force floods). Tools that are also used legitimately
# for testing and monitoring (sipsak, SIPp) are left out: an operator adds
# them when they see abuse.
DEFAULT_SCANNERS: Final[tuple[str, ...]] = (
    "friendly-scanner",  # SIPVicious svmap/svwar/svcrack default
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sundayddr",
    "iwar",
    "sivus",
    "sipbomber",
    "vaxsipuseragent",
    "pplsip",
)
# edgeport extension spec.protection (edgeport.protection.guard): stream
# connections open at once from one source, and the deadlines for a new
# connection's handshakes (TLS, WebSocket upgrade) and its first SIP message.
DEFAULT_MAX_CONNECTIONS_PER_SOURCE: Final = 256
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0  # seconds
DEFAULT_FIRST_MESSAGE_TIMEOUT: Final = 30.0  # seconds
# edgeport extension spec.dns (edgeport.dns): RFC 3263 next-hop resolution.
DEFAULT_DNS_PORT: Final = 53
DEFAULT_DNS_TIMEOUT: Final = 5.0  # seconds to resolve one next hop, all its queries
# A target that has not answered at all after this long is given up for the
# next one of its list (RFC 3263 §4.3); Timer B (32 s) would leave the caller
# ringing into nothing.
DEFAULT_DNS_FAILOVER_TIMEOUT: Final = 4.0  # seconds
DEFAULT_DNS_AVOID_FOR: Final = 30.0  # seconds a failed target goes to the end of its lists
DEFAULT_DNS_CACHE_MAX_ENTRIES: Final = 10_000  # answers (positive and negative) kept


# --- the model -----------------------------------------------------------------------


class UnknownMethodAction(enum.Enum):
    DISCARD = "Discard"
    RESPOND = "Respond"


class ClientAuthType(enum.Enum):
    DISABLED = "Disabled"
    DISABLED_ALL = "DisabledAll"
    REQUIRED = "Required"
    WANTED = "Wanted"


@dataclass(frozen=True, slots=True)
class TransportConfig:
    protocol: Transport
    port: int
    bind_addr: str  # the effective address: entry bindAddr, else spec.bindAddr, else 0.0.0.0
    # edgeport extension transport[*].proxyProtocol: a PROXY protocol header
    # (v1 or v2) opens every connection, from spec.proxyProtocol.trustedProxies.
    proxy_protocol: bool = False


@dataclass(frozen=True, slots=True)
class SecurityContext:
    key_store: str
    key_store_password: str = ""
    key_store_type: str = "pkcs12"  # "pkcs12" or edgeport's "pem"
    trust_store: str | None = None
    trust_store_password: str = ""
    client_protocols: tuple[str, ...] = TLS_PROTOCOLS
    client_auth_type: ClientAuthType = ClientAuthType.DISABLED
    # edgeport extension client.useSystemTrustStore: outbound TLS also trusts
    # the operating system's CA certificates, besides trust_store.
    client_use_system_trust_store: bool = True


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    addr: str  # "host:port", or "builtin" for the embedded processor
    timeout: float = DEFAULT_PROCESSOR_TIMEOUT


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """spec.connections; ``max_connections`` is the file's ``max``."""

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    web_socket_ping_interval: float = DEFAULT_WEBSOCKET_PING_INTERVAL  # 0: off


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    allowed_origins: tuple[str, ...] = ()  # empty: any Origin


@dataclass(frozen=True, slots=True)
class ProxyProtocolConfig:
    """edgeport extension spec.proxyProtocol: who may send PROXY protocol headers."""

    trusted_proxies: tuple[str, ...] = ()  # networks, e.g. 10.0.0.0/8, 2001:db8::/32


@dataclass(frozen=True, slots=True)
class HepConfig:
    """edgeport extension spec.capture.hep: where to send HEP v3 copies of SIP messages."""

    addr: str  # host:port of the Homer / heplify collector (UDP)
    agent_id: int = DEFAULT_HEP_AGENT_ID
    password: str | None = None


@dataclass(frozen=True, slots=True)
class AccessControlConfig:
    """edgeport extension spec.accessControl: source networks; deny wins, empty allow
    allows all."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FloodConfig:
    """edgeport extension spec.protection.flood: requests per source per window."""

    enabled: bool = True
    requests: int = DEFAULT_FLOOD_REQUESTS
    window: float = DEFAULT_FLOOD_WINDOW
    ban_time: float = DEFAULT_FLOOD_BAN_TIME
    max_tracked: int = DEFAULT_FLOOD_MAX_TRACKED
    trusted: tuple[str, ...] = ()  # never limited, with spec.localnets and the processor


@dataclass(frozen=True, slots=True)
class ProtectionConfig:
    """edgeport extension spec.protection."""

    flood: FloodConfig = field(default_factory=FloodConfig)
    scanners: tuple[str, ...] = DEFAULT_SCANNERS  # User-Agent substrings; empty: off
    max_connections_per_source: int = DEFAULT_MAX_CONNECTIONS_PER_SOURCE
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    first_message_timeout: float = DEFAULT_FIRST_MESSAGE_TIMEOUT


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """edgeport extension spec.limits: the memory budget (edgeport.memory), in bytes."""

    memory: int = DEFAULT_MEMORY_BYTES


@dataclass(frozen=True, slots=True)
class BuiltinConfig:
    """edgeport extension spec.builtin: the in-process built-in processor."""

    relay_to: tuple[str, ...] | None = None  # networks it relays to; None: the localnets
    peers: str | None = None  # its static peers file (peers, and relayTo when not set here)


@dataclass(frozen=True, slots=True)
class DnsCacheConfig:
    """edgeport extension spec.dns.cache."""

    max_entries: int = DEFAULT_DNS_CACHE_MAX_ENTRIES


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """edgeport extension spec.dns: how next hops named in DNS are resolved (RFC 3263)."""

    servers: tuple[str, ...] = ()  # "ip" or "ip:port"; empty: /etc/resolv.conf
    timeout: float = DEFAULT_DNS_TIMEOUT
    failover_timeout: float = DEFAULT_DNS_FAILOVER_TIMEOUT
    avoid_for: float = DEFAULT_DNS_AVOID_FOR
    cache: DnsCacheConfig = field(default_factory=DnsCacheConfig)


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """edgeport extension spec.reload: reloading the configuration while running."""

    watch_interval: float = DEFAULT_RELOAD_WATCH_INTERVAL  # seconds; 0: no file watch


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    console_enabled: bool = False
    nats_enabled: bool = False
    nats_url: str = "nats://localhost:4222"
    nats_subject: str = "routr"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    enabled: bool = False
    port: int = DEFAULT_HEALTHCHECK_PORT
    # edgeport: HEALTHCHECK_BIND_ADDR; None means spec.bindAddr (see
    # EdgePortConfig.health_bind_addr).
    bind_addr: str | None = None


@dataclass(frozen=True, slots=True)
class EdgePortConfig:
    """The effective configuration: file, then environment overrides, validated."""

    ref: str
    api_version: str
    transports: tuple[TransportConfig, ...]
    methods: tuple[str, ...]
    processor: ProcessorConfig
    region: str | None = None
    bind_addr: str = "0.0.0.0"
    external_addrs: tuple[str, ...] = ()
    localnets: tuple[str, ...] = ()  # after auto-detection when the config had none
    unknown_method_action: UnknownMethodAction = UnknownMethodAction.DISCARD
    security_context: SecurityContext | None = None
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    proxy_protocol: ProxyProtocolConfig = field(default_factory=ProxyProtocolConfig)
    access_control: AccessControlConfig = field(default_factory=AccessControlConfig)
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    publishers: PublisherConfig = field(default_factory=PublisherConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    strip_session_progress_sdp: bool = False
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    workers: int = 1  # edgeport extension spec.workers: processes sharing the ports
    hep: HepConfig | None = None  # spec.capture.hep, or HEP_ADDR
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # spec.limits
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)  # spec.builtin
    dns: DnsConfig = field(default_factory=DnsConfig)  # spec.dns
    reload: ReloadConfig = field(default_factory=ReloadConfig)  # spec.reload
    # spec.largeRequestsOverTcp, bytes; None (the file's false): large requests stay on UDP
    large_requests_over_tcp: int | None = DEFAULT_LARGE_REQUEST_BYTES

    @property
    def health_bind_addr(self) -> str:
        """Where the health server listens: HEALTHCHECK_BIND_ADDR, else spec.bindAddr."""
        return self.health.bind_addr or self.bind_addr
