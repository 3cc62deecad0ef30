"""The EdgePort configuration: a typed model, and the one pass that loads it.

- :mod:`.model`: the effective configuration edgeport runs with, and every
  default (a leaf: it imports nothing of edgeport's runtime);
- :mod:`.load`: file (YAML or JSON) -> dict -> environment overrides ->
  cattrs structuring -> cross-field checks -> the model
  (:func:`load_config`, :func:`load_config_with_warnings`,
  :func:`default_config`);
- :mod:`.schema`: the file's shape and the cattrs converter; :mod:`.values`:
  the check of each value; :mod:`.environment`: the environment variables;
  :mod:`.validate`: the cross-field checks; :mod:`.errors`: :class:`ConfigError`;
- :mod:`.describe`: :func:`describe_config`, the effective configuration in
  the file's shape, for ``edgeport check-config``.

Every problem is reported at once, one line each with its key path or
environment variable; an unknown key is a warning.
"""

from edgeport.config.describe import PASSWORD_MASK, describe_config
from edgeport.config.errors import ConfigError
from edgeport.config.load import (
    MAX_CONFIG_BYTES,
    default_config,
    load_config,
    load_config_with_warnings,
)
from edgeport.config.model import (
    API_VERSIONS,
    BUILTIN_PROCESSOR,
    DEFAULT_FIRST_MESSAGE_TIMEOUT,
    DEFAULT_FLOOD_BAN_TIME,
    DEFAULT_FLOOD_MAX_TRACKED,
    DEFAULT_FLOOD_REQUESTS,
    DEFAULT_FLOOD_WINDOW,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HEALTHCHECK_PORT,
    DEFAULT_HEP_AGENT_ID,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PROCESSOR_TIMEOUT,
    DEFAULT_SCANNERS,
    DEFAULT_SHUTDOWN_TIMEOUT,
    KIND,
    MAX_WORKERS,
    TLS_PROTOCOLS,
    UNIX_PROCESSOR_PREFIX,
    WORKERS_AUTO,
    AccessControlConfig,
    BuiltinConfig,
    ClientAuthType,
    ConnectionLimits,
    DnsCacheConfig,
    DnsConfig,
    EdgePortConfig,
    FloodConfig,
    HealthConfig,
    HepConfig,
    LimitsConfig,
    ProcessorConfig,
    ProtectionConfig,
    ProxyProtocolConfig,
    PublisherConfig,
    ReloadConfig,
    SecurityContext,
    TransportConfig,
    UnknownMethodAction,
    WebSocketConfig,
)
from edgeport.config.values import INSECURE_TLS_PROTOCOLS, parse_workers
from edgeport.sip.methods import SIP_METHODS

__all__ = [
    "API_VERSIONS",
    "BUILTIN_PROCESSOR",
    "DEFAULT_FIRST_MESSAGE_TIMEOUT",
    "DEFAULT_FLOOD_BAN_TIME",
    "DEFAULT_FLOOD_MAX_TRACKED",
    "DEFAULT_FLOOD_REQUESTS",
    "DEFAULT_FLOOD_WINDOW",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_HEALTHCHECK_PORT",
    "DEFAULT_HEP_AGENT_ID",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_SOURCE",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_PROCESSOR_TIMEOUT",
    "DEFAULT_SCANNERS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "INSECURE_TLS_PROTOCOLS",
    "KIND",
    "MAX_CONFIG_BYTES",
    "MAX_WORKERS",
    "PASSWORD_MASK",
    "SIP_METHODS",
    "TLS_PROTOCOLS",
    "UNIX_PROCESSOR_PREFIX",
    "WORKERS_AUTO",
    "AccessControlConfig",
    "BuiltinConfig",
    "ClientAuthType",
    "ConfigError",
    "ConnectionLimits",
    "DnsCacheConfig",
    "DnsConfig",
    "EdgePortConfig",
    "FloodConfig",
    "HealthConfig",
    "HepConfig",
    "LimitsConfig",
    "ProcessorConfig",
    "ProtectionConfig",
    "ProxyProtocolConfig",
    "PublisherConfig",
    "ReloadConfig",
    "SecurityContext",
    "TransportConfig",
    "UnknownMethodAction",
    "WebSocketConfig",
    "default_config",
    "describe_config",
    "load_config",
    "load_config_with_warnings",
    "parse_workers",
]
