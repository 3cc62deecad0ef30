"""The EdgePort configuration: typed model, loading, environment overrides, validation.

One pass, as contract §6 describes: file (YAML or JSON) -> dict -> environment
overrides -> cattrs structuring -> cross-field checks. Every problem is
collected and reported at once, one line each, naming the key path or the
environment variable, in a :class:`ConfigError`.

- :func:`load_config` returns the :class:`EdgePortConfig` and logs each
  warning (an unknown key, a boolean variable that is neither true nor
  false); :func:`load_config_with_warnings` returns them instead.
- :func:`default_config` is what runs with no file at all.
- :func:`describe_config` gives the effective configuration back in the
  file's shape, passwords masked, for ``edgeport check-config``.

The file's shape is a set of private attrs classes structured by a cattrs
converter with detailed validation; the typed model below is what the rest
of edgeport reads.
"""

from __future__ import annotations

import copy
import difflib
import enum
import ipaddress
import json
import logging
import os
import re
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import attrs
import cattrs
import yaml
from cattrs.errors import ClassValidationError, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from edgeport.keystore import KEYSTORE_TYPES, KeystoreError, load_keystore, load_trust_store
from edgeport.localnets import detect_localnets
from edgeport.memory import DEFAULT_MEMORY_BYTES, MIN_MEMORY_BYTES, parse_byte_size
from edgeport.protection.flood import (
    DEFAULT_BAN_TIME,
    DEFAULT_MAX_TRACKED,
    DEFAULT_REQUESTS,
    DEFAULT_WINDOW,
)
from edgeport.protection.guard import (
    DEFAULT_FIRST_MESSAGE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
)
from edgeport.protection.scanners import DEFAULT_SCANNERS
from edgeport.sip.methods import SIP_METHODS
from edgeport.sip.transport import Transport

logger = logging.getLogger(__name__)

DEFAULT_PROCESSOR_TIMEOUT = 3.0  # seconds, edgeport extension spec.processor.timeout
DEFAULT_IDLE_TIMEOUT = 600.0  # seconds, edgeport extension spec.connections.idleTimeout
DEFAULT_MAX_CONNECTIONS = 10_000  # edgeport extension spec.connections.max
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


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per problem.

    ``warnings`` holds the warning lines found on the way (unknown keys...),
    which often explain a problem (a misspelled required key).
    """

    def __init__(self, problems: list[str], warnings: list[str] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.warnings = warnings or []


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
    client_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")
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
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS


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
    requests: int = DEFAULT_REQUESTS
    window: float = DEFAULT_WINDOW
    ban_time: float = DEFAULT_BAN_TIME
    max_tracked: int = DEFAULT_MAX_TRACKED
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

    @property
    def health_bind_addr(self) -> str:
        """Where the health server listens: HEALTHCHECK_BIND_ADDR, else spec.bindAddr."""
        return self.health.bind_addr or self.bind_addr


# ---------------------------------------------------------------------------
# Loading: file -> dict -> environment overrides -> cattrs -> cross-field checks
# ---------------------------------------------------------------------------

KIND: Final = "EdgePort"
API_VERSIONS: Final = ("v2beta1", "v2")
TLS_PROTOCOLS: Final = ("TLSv1.2", "TLSv1.3")
INSECURE_TLS_PROTOCOLS: Final = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
BUILTIN_PROCESSOR: Final = "builtin"
UNIX_PROCESSOR_PREFIX: Final = "unix:"
MAX_CONFIG_BYTES: Final = 1024 * 1024  # a configuration file is a few hundred bytes
PASSWORD_MASK: Final = "****"
_MAX_SHOWN_CHARS: Final = 60  # a bad value is quoted in the message up to this length

_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_NATS_SUBJECT_RE: Final = re.compile(r"[^\s*>.]+(\.[^\s*>.]+)*")
_NATS_SCHEMES: Final = ("nats", "tls", "ws", "wss")

_DEFAULT_DOCUMENT: Final[Mapping[str, Any]] = {
    "kind": KIND,
    "apiVersion": "v2beta1",
    "ref": "edgeport-01",
    "spec": {
        "bindAddr": "0.0.0.0",
        "transport": [
            {"protocol": "udp", "port": 5060},
            {"protocol": "tcp", "port": 5060},
            {"protocol": "ws", "port": 5062},
        ],
        "methods": list(SIP_METHODS),
        "processor": {"addr": BUILTIN_PROCESSOR},
    },
}


def load_config(path: str | Path | None, env: Mapping[str, str]) -> EdgePortConfig:
    """The effective configuration; each warning is logged on ``edgeport.config``.

    ``path`` None means ``CONFIG_PATH`` from ``env``, and with neither the
    embedded default (see :func:`default_config`), still with ``env`` applied.
    Raises :class:`ConfigError` listing every problem.
    """
    config, warnings = load_config_with_warnings(path, env)
    for line in warnings:
        logger.warning("%s", line)
    return config


def load_config_with_warnings(
    path: str | Path | None, env: Mapping[str, str]
) -> tuple[EdgePortConfig, list[str]]:
    """Like :func:`load_config`, returning the warning lines instead of logging them.

    A warning names a key edgeport ignores (unknown or misspelled) or an
    environment value it reads as false; it never stops the start.
    """
    if path is None and env.get("CONFIG_PATH"):
        path = env["CONFIG_PATH"]
    if path is None:
        document: Any = copy.deepcopy(dict(_DEFAULT_DOCUMENT))
    else:
        document = _read_document(Path(path))
    return _build(document, env)


def default_config() -> EdgePortConfig:
    """The configuration used when there is no file at all and no environment.

    Reference ``edgeport-01``; UDP and TCP on 5060 and WS on 5062 on 0.0.0.0;
    every SIP method; the embedded processor; localnets detected.
    """
    config, _ = _build(copy.deepcopy(dict(_DEFAULT_DOCUMENT)), {})
    return config


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


# --- reading the file -------------------------------------------------------


def _read_document(path: Path) -> Any:
    shown = str(path) if str(path).isprintable() else repr(str(path))  # one line, always
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read the file: {exc.strerror or exc}"]) from None
    except ValueError:  # a NUL character in the name
        raise ConfigError([f"{shown}: cannot read the file: not a valid file name"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{shown}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{shown}: not UTF-8 text (byte {exc.start})"]) from None
    suffix = path.suffix.lower()
    if suffix == ".json" or (
        suffix not in (".yaml", ".yml") and text.lstrip().startswith(("{", "["))
    ):
        document = _parse_json(shown, text)
    else:
        document = _parse_yaml(shown, text)
    if document is None:
        raise ConfigError([f"{shown}: the file is empty"])
    if not isinstance(document, dict):
        raise ConfigError([f"{shown}: expected a mapping at the top level, got {_show(document)}"])
    return document


def _parse_json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ConfigError([line]) from None


def _parse_yaml(path: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError([f"{path}: {where}{exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


# --- the file's shape, structured by cattrs ----------------------------------
#
# Field names are chosen so that their camelCase form is the key in the file.


@attrs.frozen
class _MetadataFile:
    region: str | None = None


@attrs.frozen
class _TransportFile:
    protocol: Transport
    port: int
    bind_addr: str | None = None
    proxy_protocol: bool = False


@attrs.frozen
class _ProcessorFile:
    addr: str
    timeout: float = DEFAULT_PROCESSOR_TIMEOUT


@attrs.frozen
class _ClientFile:
    protocols: tuple[str, ...] = TLS_PROTOCOLS
    auth_type: ClientAuthType = ClientAuthType.DISABLED
    use_system_trust_store: bool = True


@attrs.frozen
class _SecurityContextFile:
    key_store: str
    key_store_password: str = ""
    key_store_type: str = "pkcs12"
    trust_store: str | None = None
    trust_store_password: str = ""
    client: _ClientFile = _ClientFile()
    debugging: bool = False  # Routr's JSSE debug switch; accepted, has no effect here


@attrs.frozen
class _ConnectionsFile:
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max: int = DEFAULT_MAX_CONNECTIONS


@attrs.frozen
class _WebSocketFile:
    allowed_origins: tuple[str, ...] = ()


@attrs.frozen
class _ProxyProtocolFile:
    trusted_proxies: tuple[str, ...] = ()


@attrs.frozen
class _HepFile:
    addr: str
    agent_id: int = DEFAULT_HEP_AGENT_ID
    password: str | None = None


@attrs.frozen
class _CaptureFile:
    hep: _HepFile | None = None


@attrs.frozen
class _AccessControlFile:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@attrs.frozen
class _FloodFile:
    enabled: bool = True
    requests: int = DEFAULT_REQUESTS
    window: float = DEFAULT_WINDOW
    ban_time: float = DEFAULT_BAN_TIME
    max_tracked: int = DEFAULT_MAX_TRACKED
    trusted: tuple[str, ...] = ()


@attrs.frozen
class _ProtectionFile:
    flood: _FloodFile = _FloodFile()
    scanners: tuple[str, ...] = DEFAULT_SCANNERS
    max_connections_per_source: int = DEFAULT_MAX_CONNECTIONS_PER_SOURCE
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    first_message_timeout: float = DEFAULT_FIRST_MESSAGE_TIMEOUT


@attrs.frozen
class _LimitsFile:
    memory: int = DEFAULT_MEMORY_BYTES


@attrs.frozen
class _BuiltinFile:
    relay_to: tuple[str, ...] | None = None
    peers: str | None = None


@attrs.frozen
class _SpecFile:
    transport: tuple[_TransportFile, ...]
    methods: tuple[str, ...]
    processor: _ProcessorFile
    bind_addr: str = "0.0.0.0"
    external_addrs: tuple[str, ...] = ()
    localnets: tuple[str, ...] = ()
    unknown_method_action: UnknownMethodAction = UnknownMethodAction.DISCARD
    security_context: _SecurityContextFile | None = None
    connections: _ConnectionsFile = _ConnectionsFile()
    websocket: _WebSocketFile = _WebSocketFile()
    proxy_protocol: _ProxyProtocolFile = _ProxyProtocolFile()
    access_control: _AccessControlFile = _AccessControlFile()
    protection: _ProtectionFile = _ProtectionFile()
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    workers: int = 1
    capture: _CaptureFile = _CaptureFile()
    limits: _LimitsFile = _LimitsFile()
    builtin: _BuiltinFile = _BuiltinFile()


@attrs.frozen
class _DocumentFile:
    kind: str
    api_version: str
    ref: str
    spec: _SpecFile
    metadata: _MetadataFile = _MetadataFile()


class _Invalid(ValueError):
    """A value the file or environment got wrong: one message per problem, no path."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


_Hook = Callable[[Any, Any], Any]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def _one_of(values: Sequence[str]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def _string(value: Any, _: Any = None) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_show(value)}")
    return value


def _nonempty_string(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    if not text:
        raise _Invalid("must not be empty")
    return text


def _integer(value: Any, _: Any = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {_show(value)}")
    return value


def _number(value: Any, _: Any = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number of seconds, got {_show(value)}")
    return float(value)


def _boolean(value: Any, _: Any = None) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _port(value: Any, _: Any = None) -> int:
    port = _integer(value)
    if not 1 <= port <= 65535:
        raise _Invalid(f"expected a port from 1 to 65535, got {port}")
    return port


def _positive_integer(value: Any, _: Any = None) -> int:
    number = _integer(value)
    if number <= 0:
        raise _Invalid(f"expected a positive integer, got {number}")
    return number


def _memory_size(value: Any, _: Any = None) -> int:
    """``spec.limits.memory``: bytes, or a size such as ``256Mi`` or ``1Gi``."""
    try:
        size = parse_byte_size(value)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    if size < MIN_MEMORY_BYTES:
        raise _Invalid(f"{_show(value)} is below the minimum of {MIN_MEMORY_BYTES // 2**20}Mi")
    return size


def parse_workers(value: Any, _: Any = None) -> int:
    """``spec.workers``, ``WORKERS`` or ``--workers``: a count, or ``auto`` (one per core)."""
    if isinstance(value, str) and value.strip().lower() == WORKERS_AUTO:
        return len(os.sched_getaffinity(0))
    expected = f"expected {WORKERS_AUTO!r} or a count from 1 to {MAX_WORKERS}"
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise _Invalid(f"{expected}, got {value.strip()!r}")
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{expected}, got {_show(value)}")
    number = value
    if not 1 <= number <= MAX_WORKERS:
        raise _Invalid(f"{expected}, got {number}")
    return number


def _positive_seconds(value: Any, _: Any = None) -> float:
    seconds = _number(value)
    if not seconds > 0 or seconds == float("inf"):
        raise _Invalid(f"expected a positive number of seconds, got {_show(value)}")
    return seconds


def _non_negative_seconds(value: Any, _: Any = None) -> float:
    seconds = _number(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise _Invalid(f"expected zero or a positive number of seconds, got {_show(value)}")
    return seconds


def _kind(value: Any, _: Any = None) -> str:
    if value != KIND:
        raise _Invalid(f"expected {KIND!r}, got {_show(value)}")
    return KIND


def _api_version(value: Any, _: Any = None) -> str:
    if value not in API_VERSIONS:
        raise _Invalid(f"expected {_one_of(API_VERSIONS)}, got {_show(value)}")
    return str(value)


def _protocol(value: Any, _: Any = None) -> Transport:
    names = [item.value for item in Transport]
    text = _string(value)
    if text.lower() not in names:
        raise _Invalid(f"unknown protocol {text!r} (expected {_one_of(names)})")
    return Transport(text.lower())


def _method(value: Any, _: Any = None) -> str:
    name = _string(value).strip().upper()
    if name not in SIP_METHODS:
        raise _Invalid(f"unknown SIP method {value!r}")
    return name


def _ip_address(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Invalid(f"expected an IPv4 or IPv6 address, got {text!r}") from None


def _cidr(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    try:
        if "/" not in text:
            raise ValueError(text)
        ipaddress.ip_interface(text)
    except ValueError:
        raise _Invalid(f"expected a network like 10.0.0.0/8, got {text!r}") from None
    return text


def _network(value: Any, _: Any = None) -> str:
    """A network (10.0.0.0/8, 2001:db8::/32) or one address; host bits are dropped."""
    text = _string(value).strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise _Invalid(
            f"expected a network like 10.0.0.0/8 or an IP address, got {text!r}"
        ) from None


def _processor_addr(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    if text == BUILTIN_PROCESSOR:
        return text
    if text.startswith(UNIX_PROCESSOR_PREFIX) and len(text) > len(UNIX_PROCESSOR_PREFIX):
        return text  # gRPC over a Unix socket: unix:/path
    host, _sep, port = text.rpartition(":")
    valid_port = _PORT_RE.fullmatch(port) is not None and 1 <= int(port) <= 65535
    if host.startswith("[") and host.endswith("]"):
        try:
            valid_host = isinstance(ipaddress.ip_address(host[1:-1]), ipaddress.IPv6Address)
        except ValueError:
            valid_host = False
    else:
        valid_host = _HOSTNAME_RE.fullmatch(host) is not None
    if not (valid_host and valid_port):
        raise _Invalid(f"expected host:port or {BUILTIN_PROCESSOR!r}, got {text!r}")
    return text


def _hep_addr(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    if text == BUILTIN_PROCESSOR:
        raise _Invalid(f"expected host:port of a HEP collector, got {text!r}")
    try:
        return _processor_addr(text)
    except _Invalid:
        raise _Invalid(f"expected host:port of a HEP collector, got {text!r}") from None


def _agent_id(value: Any, _: Any = None) -> int:
    number = _integer(value)
    if not 0 <= number <= 0xFFFFFFFF:
        raise _Invalid(f"expected an integer from 0 to 4294967295, got {number}")
    return number


def _tls_protocol(value: Any, _: Any = None) -> str:
    text = _string(value).strip()
    if text in INSECURE_TLS_PROTOCOLS:
        raise _Invalid(f"{text} is insecure and not supported (use {_one_of(TLS_PROTOCOLS)})")
    if text not in TLS_PROTOCOLS:
        raise _Invalid(f"unknown TLS protocol {text!r} (expected {_one_of(TLS_PROTOCOLS)})")
    return text


def _store_type(value: Any, _: Any = None) -> str:
    text = _string(value).strip().lower()
    if text == "jks":
        raise _Invalid(
            "jks is not supported: convert the keystore to PKCS#12 "
            "(keytool -importkeystore -deststoretype pkcs12) or use pem"
        )
    if text not in KEYSTORE_TYPES:
        raise _Invalid(f"expected {_one_of(KEYSTORE_TYPES)}, got {value!r}")
    return text


def _enum(enum_type: type[enum.Enum]) -> _Hook:
    values = [str(item.value) for item in enum_type]

    def structure(value: Any, _: Any = None) -> enum.Enum:
        if not isinstance(value, str) or value not in values:
            raise _Invalid(f"expected {_one_of(values)}, got {_show(value)}")
        return enum_type(value)

    return structure


def _optional(hook: _Hook) -> _Hook:
    def structure(value: Any, type_: Any = None) -> Any:
        return None if value is None else hook(value, type_)

    return structure


def _list_of(
    item_hook: _Hook,
    *,
    unique: bool = True,
    non_empty: str | None = None,
    check: Callable[[tuple[Any, ...]], list[str]] | None = None,
) -> _Hook:
    """A list whose items go through ``item_hook``; every bad item is reported by index."""

    def structure(value: Any, type_: Any = None) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected a list, got {_show(value)}")
        items: list[Any] = []
        errors: list[Exception] = []
        for index, raw in enumerate(value):
            try:
                items.append(item_hook(raw, None))
            except Exception as exc:  # collected and reported with its index
                note = IterableValidationNote(f"Structuring item @ index {index}", index, None)
                exc.add_note(note)
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a list", errors, tuple)
        result = tuple(items)
        problems: list[str] = []
        if non_empty is not None and not result:
            problems.append(non_empty)
        if unique:
            seen: list[Any] = []
            repeated: list[Any] = []
            for item in result:
                if item in seen and item not in repeated:
                    shown = item.value if isinstance(item, enum.Enum) else item
                    problems.append(f"{shown!r} appears twice")
                    repeated.append(item)
                seen.append(item)
        if check is not None and not problems:
            problems.extend(check(result))
        if problems:
            raise _Invalid(*problems)
        return result

    return structure


def _check_transports(entries: tuple[_TransportFile, ...]) -> list[str]:
    problems: list[str] = []
    protocols = [entry.protocol for entry in entries]
    for protocol in dict.fromkeys(protocols):
        if protocols.count(protocol) > 1:
            problems.append(f"protocol {protocol.value!r} appears twice")
    plain_pair = {Transport.UDP, Transport.TCP}
    for i, first in enumerate(entries):
        for second in entries[i + 1 :]:
            if first.protocol is second.protocol or first.port != second.port:
                continue
            if {first.protocol, second.protocol} != plain_pair:
                problems.append(
                    f"port {first.port} is used by both {first.protocol.value} "
                    f"and {second.protocol.value} (only udp and tcp may share a port)"
                )
    return problems


for _cl in (
    _MetadataFile,
    _TransportFile,
    _ProcessorFile,
    _ClientFile,
    _SecurityContextFile,
    _ConnectionsFile,
    _WebSocketFile,
    _ProxyProtocolFile,
    _AccessControlFile,
    _FloodFile,
    _ProtectionFile,
    _LimitsFile,
    _BuiltinFile,
    _SpecFile,
    _DocumentFile,
):
    attrs.resolve_types(_cl, globals())


_converter: Final = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)


def _register(cl: type[Any], hooks: Mapping[str, _Hook]) -> _Hook:
    overrides: dict[str, Any] = {
        field.name: override(rename=_camel(field.name), struct_hook=hooks[field.name])
        for field in attrs.fields(cl)
    }
    generated = make_dict_structure_fn(cl, _converter, **overrides)

    def structure(value: Any, _: Any = None) -> Any:
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected a mapping, got {_show(value)}")
        return generated(value, cl)

    _converter.register_structure_hook(cl, structure)
    return structure


_structure_metadata: Final = _register(_MetadataFile, {"region": _optional(_string)})
_structure_transport: Final = _register(
    _TransportFile,
    {
        "protocol": _protocol,
        "port": _port,
        "bind_addr": _optional(_ip_address),
        "proxy_protocol": _boolean,
    },
)
_structure_processor: Final = _register(
    _ProcessorFile, {"addr": _processor_addr, "timeout": _positive_seconds}
)
_structure_client: Final = _register(
    _ClientFile,
    {
        "protocols": _list_of(_tls_protocol, non_empty="at least one protocol is required"),
        "auth_type": _enum(ClientAuthType),
        "use_system_trust_store": _boolean,
    },
)
_structure_security: Final = _register(
    _SecurityContextFile,
    {
        "key_store": _nonempty_string,
        "key_store_password": _string,
        "key_store_type": _store_type,
        "trust_store": _optional(_nonempty_string),
        "trust_store_password": _string,
        "client": _structure_client,
        "debugging": _boolean,
    },
)
_structure_connections: Final = _register(
    _ConnectionsFile, {"idle_timeout": _positive_seconds, "max": _positive_integer}
)
_structure_websocket: Final = _register(
    _WebSocketFile, {"allowed_origins": _list_of(_nonempty_string)}
)
_structure_proxy_protocol: Final = _register(
    _ProxyProtocolFile, {"trusted_proxies": _list_of(_network)}
)
_structure_hep: Final = _register(
    _HepFile,
    {"addr": _hep_addr, "agent_id": _agent_id, "password": _optional(_nonempty_string)},
)
_structure_capture: Final = _register(_CaptureFile, {"hep": _optional(_structure_hep)})
_structure_access_control: Final = _register(
    _AccessControlFile, {"allow": _list_of(_cidr), "deny": _list_of(_cidr)}
)
_structure_flood: Final = _register(
    _FloodFile,
    {
        "enabled": _boolean,
        "requests": _positive_integer,
        "window": _positive_seconds,
        "ban_time": _positive_seconds,
        "max_tracked": _positive_integer,
        "trusted": _list_of(_cidr),
    },
)
_structure_protection: Final = _register(
    _ProtectionFile,
    {
        "flood": _structure_flood,
        "scanners": _list_of(_nonempty_string),
        "max_connections_per_source": _positive_integer,
        "handshake_timeout": _positive_seconds,
        "first_message_timeout": _positive_seconds,
    },
)
_structure_limits: Final = _register(_LimitsFile, {"memory": _memory_size})
_structure_builtin: Final = _register(
    _BuiltinFile,
    {"relay_to": _optional(_list_of(_network)), "peers": _optional(_nonempty_string)},
)
_structure_spec: Final = _register(
    _SpecFile,
    {
        "transport": _list_of(
            _structure_transport,
            unique=False,
            non_empty="at least one transport is required",
            check=_check_transports,
        ),
        "methods": _list_of(_method, non_empty="at least one method is required"),
        "processor": _structure_processor,
        "bind_addr": _ip_address,
        "external_addrs": _list_of(_nonempty_string),
        "localnets": _list_of(_cidr),
        "unknown_method_action": _enum(UnknownMethodAction),
        "security_context": _optional(_structure_security),
        "connections": _structure_connections,
        "websocket": _structure_websocket,
        "proxy_protocol": _structure_proxy_protocol,
        "access_control": _structure_access_control,
        "protection": _structure_protection,
        "max_in_flight": _positive_integer,
        "shutdown_timeout": _non_negative_seconds,
        "workers": parse_workers,
        "capture": _structure_capture,
        "limits": _structure_limits,
        "builtin": _structure_builtin,
    },
)
_structure_document: Final = _register(
    _DocumentFile,
    {
        "kind": _kind,
        "api_version": _api_version,
        "ref": _nonempty_string,
        "spec": _structure_spec,
        "metadata": _structure_metadata,
    },
)


def _problem_lines(exc: BaseException, path: str) -> list[str]:
    """One line per problem in a cattrs error tree, each with its key path."""
    lines: list[str] = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            key = _camel(note.name)
            lines.extend(_problem_lines(sub, f"{path}.{key}" if path else key))
        for sub in without:
            lines.extend(_problem_lines(sub, path))
    elif isinstance(exc, IterableValidationError):
        item_notes, others = exc.group_exceptions()
        for sub, item_note in item_notes:
            lines.extend(_problem_lines(sub, f"{path}[{item_note.index}]"))
        for sub in others:
            lines.extend(_problem_lines(sub, path))
    elif isinstance(exc, _Invalid):
        lines.extend(f"{path}: {message}" for message in exc.messages)
    elif isinstance(exc, KeyError):
        lines.append(f"{path}: required key missing")
    else:
        lines.append(f"{path}: {exc}")
    return lines


def _unknown_keys(value: Any, cl: type[Any], path: str) -> list[str]:
    """A warning for each key in ``value`` that ``cl`` (and what it nests) does not know."""
    if not isinstance(value, Mapping):
        return []
    fields = {_camel(field.name): field for field in attrs.fields(cl)}
    warnings: list[str] = []
    for key, item in value.items():
        name = str(key) if str(key).isprintable() else repr(key)
        where = f"{path}.{name}" if path else name
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"{where}: unknown key, ignored{hint}")
            continue
        nested, is_list = _nested_class(field.type)
        if nested is None:
            continue
        if is_list and isinstance(item, list):
            for index, element in enumerate(item):
                warnings.extend(_unknown_keys(element, nested, f"{where}[{index}]"))
        elif not is_list:
            warnings.extend(_unknown_keys(item, nested, where))
    return warnings


def _nested_class(field_type: Any) -> tuple[type[Any] | None, bool]:
    candidates = typing.get_args(field_type) or (field_type,)
    is_list = typing.get_origin(field_type) is tuple
    for candidate in candidates:
        if isinstance(candidate, type) and attrs.has(candidate):
            return candidate, is_list
    return None, False


# --- environment --------------------------------------------------------------

# Variables that override a key of the file, and that key's path.
_ENV_KEYS: Final = (
    ("HOSTNAME", "ref"),
    ("PROCESSOR_ADDR", "spec.processor.addr"),
    ("EXTERNAL_ADDRS", "spec.externalAddrs"),
    ("LOCALNETS", "spec.localnets"),
    ("WORKERS", "spec.workers"),
    ("HEP_ADDR", "spec.capture.hep.addr"),
)


def _env_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _apply_env_to_document(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Write the overriding variables into the document; returns key path -> variable."""
    applied: dict[str, str] = {}
    spec = document.get("spec")
    for variable, key_path in _ENV_KEYS:
        value = env.get(variable, "")
        if not value.strip():
            continue  # unset and empty are the same, as in Routr
        if key_path == "ref":
            document["ref"] = value.strip()
        elif not isinstance(spec, dict):
            continue  # spec itself is reported
        elif key_path == "spec.processor.addr":
            processor = spec.setdefault("processor", {})
            if not isinstance(processor, dict):
                continue
            processor["addr"] = value.strip()
        elif key_path == "spec.workers":
            spec["workers"] = value.strip()
        elif key_path == "spec.capture.hep.addr":
            capture = spec.setdefault("capture", {})
            hep = capture.setdefault("hep", {}) if isinstance(capture, dict) else None
            if not isinstance(hep, dict):
                continue
            hep["addr"] = value.strip()
        else:
            spec[key_path.rsplit(".", 1)[-1]] = _env_list(value)
        applied[key_path] = variable
    return applied


def _name_variables(lines: list[str], applied: Mapping[str, str]) -> list[str]:
    """Put the variable's name in front of a problem in a value it set."""
    named: list[str] = []
    for line in lines:
        key_path = line.split(": ", 1)[0]
        for overridden, variable in applied.items():
            if key_path == overridden or key_path.startswith((overridden + "[", overridden + ".")):
                line = f"{variable} ({line}"
                line = line.replace(": ", "): ", 1)
                break
        named.append(line)
    return named


@dataclass(slots=True)
class _EnvSettings:
    publishers: PublisherConfig
    health: HealthConfig
    strip_session_progress_sdp: bool
    ignore_loopback: bool


def _env_settings(env: Mapping[str, str], problems: list[str], warnings: list[str]) -> _EnvSettings:
    def flag(variable: str) -> bool:
        value = env.get(variable, "").strip()
        if value and value.lower() not in ("true", "false"):
            warnings.append(f"{variable}: {value!r} is not true or false; read as false")
        return value.lower() == "true"

    subject = env.get("NATS_PUBLISHER_SUBJECT", "").strip() or "routr"
    if _NATS_SUBJECT_RE.fullmatch(subject) is None:
        problems.append(f"NATS_PUBLISHER_SUBJECT: not a valid NATS subject: {subject!r}")
    url = env.get("NATS_PUBLISHER_URL", "").strip() or "nats://localhost:4222"
    for server in url.split(","):
        parts = urllib.parse.urlsplit(server.strip())
        try:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
            valid = parts.scheme in _NATS_SCHEMES and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            problems.append(
                f"NATS_PUBLISHER_URL: expected nats://host:port, got {server.strip()!r}"
            )
    port = DEFAULT_HEALTHCHECK_PORT
    port_text = env.get("HEALTHCHECK_PORT", "").strip()
    if port_text:
        if _PORT_RE.fullmatch(port_text) and 1 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            problems.append(f"HEALTHCHECK_PORT: expected a port from 1 to 65535, got {port_text!r}")
    health_bind_addr = None
    bind_text = env.get("HEALTHCHECK_BIND_ADDR", "").strip()
    if bind_text:
        try:
            health_bind_addr = _ip_address(bind_text)
        except _Invalid as exc:
            problems.append(f"HEALTHCHECK_BIND_ADDR: {exc}")
    return _EnvSettings(
        publishers=PublisherConfig(
            console_enabled=flag("CONSOLE_PUBLISHER_ENABLED"),
            nats_enabled=flag("NATS_PUBLISHER_ENABLED"),
            nats_url=url,
            nats_subject=subject,
        ),
        health=HealthConfig(
            enabled=flag("ENABLE_HEALTHCHECKS"), port=port, bind_addr=health_bind_addr
        ),
        strip_session_progress_sdp=flag("STRIP_SESSION_PROGRESS_SDP"),
        ignore_loopback=flag("IGNORE_LOOPBACK_FROM_LOCALNETS"),
    )


# --- the pass -------------------------------------------------------------------


def _build(document: dict[str, Any], env: Mapping[str, str]) -> tuple[EdgePortConfig, list[str]]:
    """The one pass: warnings, environment, structuring, cross-field checks."""
    warnings = _unknown_keys(document, _DocumentFile, "")
    applied = _apply_env_to_document(document, env)
    env_problems: list[str] = []
    settings = _env_settings(env, env_problems, warnings)
    problems: list[str] = []
    parsed: _DocumentFile | None = None
    try:
        parsed = _converter.structure(document, _DocumentFile)
    except Exception as exc:  # every structuring problem, as a tree of exceptions
        problems.extend(_name_variables(_problem_lines(exc, ""), applied))
    problems.extend(_cross_checks(document))
    problems.extend(env_problems)
    if problems or parsed is None:
        raise ConfigError(problems, warnings)
    return _to_config(parsed, settings), warnings


_SECURE_PROTOCOLS: Final = tuple(item.value for item in Transport if item.secure)


def _cross_checks(document: Mapping[str, Any]) -> list[str]:
    """Rules that join several keys, or look outside the file (the keystores).

    They read the document itself, so that they are reported even when an
    unrelated key failed to structure.
    """
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
            f"spec.securityContext: required key missing (spec.transport uses {_one_of(secure)})"
        )
    if raw_security is None:
        return problems
    try:
        security: _SecurityContextFile = _structure_security(raw_security, None)
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
    from edgeport.builtin.config import PeersConfigError, load_builtin_file

    try:
        load_builtin_file(path.strip())
    except PeersConfigError as exc:
        return [f"spec.builtin.peers: {line}" for line in exc.problems]
    return []


def _to_config(document: _DocumentFile, settings: _EnvSettings) -> EdgePortConfig:
    spec = document.spec
    security: SecurityContext | None = None
    if spec.security_context is not None:
        given = spec.security_context
        security = SecurityContext(
            key_store=given.key_store,
            key_store_password=given.key_store_password,
            key_store_type=given.key_store_type,
            trust_store=given.trust_store,
            trust_store_password=given.trust_store_password,
            client_protocols=given.client.protocols,
            client_auth_type=given.client.auth_type,
            client_use_system_trust_store=given.client.use_system_trust_store,
        )
    localnets = spec.localnets or detect_localnets(ignore_loopback=settings.ignore_loopback)
    return EdgePortConfig(
        ref=document.ref,
        api_version=document.api_version,
        transports=tuple(
            TransportConfig(
                protocol=entry.protocol,
                port=entry.port,
                bind_addr=entry.bind_addr or spec.bind_addr,
                proxy_protocol=entry.proxy_protocol,
            )
            for entry in spec.transport
        ),
        methods=spec.methods,
        processor=ProcessorConfig(addr=spec.processor.addr, timeout=spec.processor.timeout),
        region=document.metadata.region,
        bind_addr=spec.bind_addr,
        external_addrs=spec.external_addrs,
        localnets=localnets,
        unknown_method_action=spec.unknown_method_action,
        security_context=security,
        connections=ConnectionLimits(
            idle_timeout=spec.connections.idle_timeout,
            max_connections=spec.connections.max,
        ),
        websocket=WebSocketConfig(allowed_origins=spec.websocket.allowed_origins),
        proxy_protocol=ProxyProtocolConfig(trusted_proxies=spec.proxy_protocol.trusted_proxies),
        access_control=AccessControlConfig(
            allow=spec.access_control.allow, deny=spec.access_control.deny
        ),
        protection=ProtectionConfig(
            flood=FloodConfig(
                enabled=spec.protection.flood.enabled,
                requests=spec.protection.flood.requests,
                window=spec.protection.flood.window,
                ban_time=spec.protection.flood.ban_time,
                max_tracked=spec.protection.flood.max_tracked,
                trusted=spec.protection.flood.trusted,
            ),
            scanners=spec.protection.scanners,
            max_connections_per_source=spec.protection.max_connections_per_source,
            handshake_timeout=spec.protection.handshake_timeout,
            first_message_timeout=spec.protection.first_message_timeout,
        ),
        publishers=settings.publishers,
        health=settings.health,
        strip_session_progress_sdp=settings.strip_session_progress_sdp,
        max_in_flight=spec.max_in_flight,
        shutdown_timeout=spec.shutdown_timeout,
        workers=spec.workers,
        hep=_hep_config(spec.capture.hep),
        limits=LimitsConfig(memory=spec.limits.memory),
        builtin=BuiltinConfig(relay_to=spec.builtin.relay_to, peers=spec.builtin.peers),
    )


def _hep_config(given: _HepFile | None) -> HepConfig | None:
    if given is None:
        return None
    return HepConfig(addr=given.addr, agent_id=given.agent_id, password=given.password)
