"""The file's shape, and the cattrs converter that structures a document into it.

One schema: the sections that read the same in the file and in the effective
configuration (``spec.processor``, ``spec.protection``, ``spec.capture.hep``,
``spec.limits``...) are structured straight into the model's classes
(:mod:`edgeport.config.model`). Only where the file says it differently is
there a class of its own here: the document around ``spec``
(:class:`DocumentFile`, :class:`MetadataFile`, :class:`SpecFile`), a transport
whose ``bindAddr`` may be left to ``spec.bindAddr`` (:class:`TransportFile`),
the ``securityContext`` with its ``client`` section
(:class:`SecurityContextFile`, :class:`ClientFile`) and ``spec.capture``
(:class:`CaptureFile`). :mod:`edgeport.config.load` turns those into the
model.

A key of the file is its field's name in camelCase (:data:`RENAMES` lists
the exceptions); each field's value goes through its check in
:mod:`edgeport.config.values`. :func:`problem_lines` turns cattrs' tree of
errors into one line per problem with its key path, and
:func:`unknown_keys` names every key the schema does not know.

The annotations are evaluated (no ``from __future__ import annotations``):
cattrs reads them.
"""

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Final

import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, override

import edgeport.config.values as values
from edgeport.config.errors import Invalid
from edgeport.config.model import (
    DEFAULT_LARGE_REQUEST_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    TLS_PROTOCOLS,
    AccessControlConfig,
    BuiltinConfig,
    ClientAuthType,
    ConnectionLimits,
    DnsCacheConfig,
    DnsConfig,
    FloodConfig,
    HepConfig,
    LimitsConfig,
    ProcessorConfig,
    ProtectionConfig,
    ProxyProtocolConfig,
    ReloadConfig,
    UnknownMethodAction,
    WebSocketConfig,
)
from edgeport.sip.transport import Transport

# --- the classes only the file has ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetadataFile:
    region: str | None = None


@dataclass(frozen=True, slots=True)
class TransportFile:
    """spec.transport[*] as written; ``bind_addr`` None is spec.bindAddr's."""

    protocol: Transport
    port: int
    bind_addr: str | None = None
    proxy_protocol: bool = False


@dataclass(frozen=True, slots=True)
class ClientFile:
    protocols: tuple[str, ...] = TLS_PROTOCOLS
    auth_type: ClientAuthType = ClientAuthType.DISABLED
    use_system_trust_store: bool = True


@dataclass(frozen=True, slots=True)
class SecurityContextFile:
    key_store: str
    key_store_password: str = ""
    key_store_type: str = "pkcs12"
    trust_store: str | None = None
    trust_store_password: str = ""
    client: ClientFile = field(default_factory=ClientFile)
    debugging: bool = False  # Routr's JSSE debug switch; accepted, has no effect here


@dataclass(frozen=True, slots=True)
class CaptureFile:
    hep: HepConfig | None = None


@dataclass(frozen=True, slots=True)
class SpecFile:
    transport: tuple[TransportFile, ...]
    methods: tuple[str, ...]
    processor: ProcessorConfig
    bind_addr: str = "0.0.0.0"
    external_addrs: tuple[str, ...] = ()
    localnets: tuple[str, ...] = ()
    unknown_method_action: UnknownMethodAction = UnknownMethodAction.DISCARD
    security_context: SecurityContextFile | None = None
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    proxy_protocol: ProxyProtocolConfig = field(default_factory=ProxyProtocolConfig)
    access_control: AccessControlConfig = field(default_factory=AccessControlConfig)
    protection: ProtectionConfig = field(default_factory=ProtectionConfig)
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    workers: int = 1
    capture: CaptureFile = field(default_factory=CaptureFile)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    reload: ReloadConfig = field(default_factory=ReloadConfig)
    large_requests_over_tcp: int | None = DEFAULT_LARGE_REQUEST_BYTES


@dataclass(frozen=True, slots=True)
class DocumentFile:
    kind: str
    api_version: str
    ref: str
    spec: SpecFile
    metadata: MetadataFile = field(default_factory=MetadataFile)


# Field names whose key in the file is not their camelCase form.
RENAMES: Final[Mapping[type[Any], Mapping[str, str]]] = {
    ConnectionLimits: {"max_connections": "max"},
}


def key_of(cl: type[Any], name: str) -> str:
    """The file's key for field ``name`` of ``cl``."""
    return RENAMES.get(cl, {}).get(name) or values.camel(name)


# --- the converter ----------------------------------------------------------------------

_converter: Final = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)


def _register(cl: type[Any], hooks: Mapping[str, values.Hook]) -> values.Hook:
    """Structure ``cl`` from a mapping: each field from its key, through its hook."""
    overrides: dict[str, Any] = {
        item.name: override(rename=key_of(cl, item.name), struct_hook=hooks[item.name])
        for item in fields(cl)
    }
    generated = make_dict_structure_fn(cl, _converter, **overrides)

    def structure(value: Any, _: Any = None) -> Any:
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping, got {values.show(value)}")
        return generated(value, cl)

    _converter.register_structure_hook(cl, structure)
    return structure


def _check_transports(entries: tuple[TransportFile, ...]) -> list[str]:
    """One listener per protocol; a port shared only by udp and tcp."""
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


_structure_metadata: Final = _register(MetadataFile, {"region": values.optional(values.string)})
_structure_transport: Final = _register(
    TransportFile,
    {
        "protocol": values.protocol,
        "port": values.port,
        "bind_addr": values.optional(values.ip_address),
        "proxy_protocol": values.boolean,
    },
)
_structure_processor: Final = _register(
    ProcessorConfig, {"addr": values.processor_addr, "timeout": values.positive_seconds}
)
_structure_client: Final = _register(
    ClientFile,
    {
        "protocols": values.list_of(
            values.tls_protocol, non_empty="at least one protocol is required"
        ),
        "auth_type": values.enum_of(ClientAuthType),
        "use_system_trust_store": values.boolean,
    },
)
_structure_security: Final = _register(
    SecurityContextFile,
    {
        "key_store": values.nonempty_string,
        "key_store_password": values.string,
        "key_store_type": values.store_type,
        "trust_store": values.optional(values.nonempty_string),
        "trust_store_password": values.string,
        "client": _structure_client,
        "debugging": values.boolean,
    },
)
_structure_connections: Final = _register(
    ConnectionLimits,
    {
        "idle_timeout": values.positive_seconds,
        "max_connections": values.positive_integer,
        "web_socket_ping_interval": values.ping_interval,
    },
)
_structure_websocket: Final = _register(
    WebSocketConfig, {"allowed_origins": values.list_of(values.nonempty_string)}
)
_structure_proxy_protocol: Final = _register(
    ProxyProtocolConfig, {"trusted_proxies": values.list_of(values.network)}
)
_structure_hep: Final = _register(
    HepConfig,
    {
        "addr": values.hep_addr,
        "agent_id": values.agent_id,
        "password": values.optional(values.nonempty_string),
    },
)
_structure_capture: Final = _register(CaptureFile, {"hep": values.optional(_structure_hep)})
_structure_access_control: Final = _register(
    AccessControlConfig, {"allow": values.list_of(values.cidr), "deny": values.list_of(values.cidr)}
)
_structure_flood: Final = _register(
    FloodConfig,
    {
        "enabled": values.boolean,
        "requests": values.positive_integer,
        "window": values.positive_seconds,
        "ban_time": values.positive_seconds,
        "max_tracked": values.positive_integer,
        "trusted": values.list_of(values.cidr),
    },
)
_structure_protection: Final = _register(
    ProtectionConfig,
    {
        "flood": _structure_flood,
        "scanners": values.list_of(values.nonempty_string),
        "max_connections_per_source": values.positive_integer,
        "handshake_timeout": values.positive_seconds,
        "first_message_timeout": values.positive_seconds,
    },
)
_structure_limits: Final = _register(LimitsConfig, {"memory": values.memory_size})
_structure_builtin: Final = _register(
    BuiltinConfig,
    {
        "relay_to": values.optional(values.list_of(values.network)),
        "peers": values.optional(values.nonempty_string),
    },
)
_structure_dns_cache: Final = _register(DnsCacheConfig, {"max_entries": values.positive_integer})
_structure_dns: Final = _register(
    DnsConfig,
    {
        "servers": values.list_of(values.dns_server),
        "timeout": values.positive_seconds,
        "failover_timeout": values.positive_seconds,
        "avoid_for": values.non_negative_seconds,
        "cache": _structure_dns_cache,
    },
)
_structure_reload: Final = _register(ReloadConfig, {"watch_interval": values.watch_interval})
_structure_spec: Final = _register(
    SpecFile,
    {
        "transport": values.list_of(
            _structure_transport,
            unique=False,
            non_empty="at least one transport is required",
            check=_check_transports,
        ),
        "methods": values.list_of(values.method, non_empty="at least one method is required"),
        "processor": _structure_processor,
        "bind_addr": values.ip_address,
        "external_addrs": values.list_of(values.nonempty_string),
        "localnets": values.list_of(values.cidr),
        "unknown_method_action": values.enum_of(UnknownMethodAction),
        "security_context": values.optional(_structure_security),
        "connections": _structure_connections,
        "websocket": _structure_websocket,
        "proxy_protocol": _structure_proxy_protocol,
        "access_control": _structure_access_control,
        "protection": _structure_protection,
        "max_in_flight": values.positive_integer,
        "shutdown_timeout": values.non_negative_seconds,
        "workers": values.parse_workers,
        "capture": _structure_capture,
        "limits": _structure_limits,
        "builtin": _structure_builtin,
        "dns": _structure_dns,
        "reload": _structure_reload,
        "large_requests_over_tcp": values.large_request_bytes,
    },
)
_structure_document: Final = _register(
    DocumentFile,
    {
        "kind": values.kind,
        "api_version": values.api_version,
        "ref": values.nonempty_string,
        "spec": _structure_spec,
        "metadata": _structure_metadata,
    },
)


def structure_document(document: Any) -> DocumentFile:
    """The whole document; raises cattrs' tree of errors (see :func:`problem_lines`)."""
    structured: DocumentFile = _structure_document(document, None)
    return structured


def structure_security_context(section: Any) -> SecurityContextFile:
    """``spec.securityContext`` alone, for the checks that open its keystores."""
    structured: SecurityContextFile = _structure_security(section, None)
    return structured


# --- reporting ----------------------------------------------------------------------------


def problem_lines(exc: BaseException, path: str) -> list[str]:
    """One line per problem in a cattrs error tree, each with its key path."""
    lines: list[str] = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            key = key_of(exc.cl, note.name)
            lines.extend(problem_lines(sub, f"{path}.{key}" if path else key))
        for sub in without:
            lines.extend(problem_lines(sub, path))
    elif isinstance(exc, IterableValidationError):
        item_notes, others = exc.group_exceptions()
        for sub, item_note in item_notes:
            lines.extend(problem_lines(sub, f"{path}[{item_note.index}]"))
        for sub in others:
            lines.extend(problem_lines(sub, path))
    elif isinstance(exc, Invalid):
        lines.extend(f"{path}: {message}" for message in exc.messages)
    elif isinstance(exc, KeyError):
        lines.append(f"{path}: required key missing")
    else:
        lines.append(f"{path}: {exc}")
    return lines


def unknown_keys(value: Any, cl: type[Any], path: str) -> list[str]:
    """A warning for each key in ``value`` that ``cl`` (and what it nests) does not know."""
    if not isinstance(value, Mapping):
        return []
    hints = typing.get_type_hints(cl)
    known = {key_of(cl, item.name): hints[item.name] for item in fields(cl)}
    warnings: list[str] = []
    for key, item in value.items():
        name = str(key) if str(key).isprintable() else repr(key)
        where = f"{path}.{name}" if path else name
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"{where}: unknown key, ignored{hint}")
            continue
        nested, is_list = _nested_class(known[key])
        if nested is None:
            continue
        if is_list and isinstance(item, list):
            for index, element in enumerate(item):
                warnings.extend(unknown_keys(element, nested, f"{where}[{index}]"))
        elif not is_list:
            warnings.extend(unknown_keys(item, nested, where))
    return warnings


def _nested_class(field_type: Any) -> tuple[type[Any] | None, bool]:
    """The section class a field holds (or holds a list of), if any."""
    candidates = typing.get_args(field_type) or (field_type,)
    is_list = typing.get_origin(field_type) is tuple
    for candidate in candidates:
        if isinstance(candidate, type) and is_dataclass(candidate):
            return candidate, is_list
    return None, False
