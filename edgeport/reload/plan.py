"""What a reload can apply to a running edgeport, and what waits for a restart.

Sans-IO: :func:`restart_keys` compares two effective configurations (the
running one and the one just loaded) and names, by their key path in the
file, the settings that differ and cannot change while edgeport runs: the
listeners (``spec.transport``, ``spec.bindAddr``), the processes
(``spec.workers``), what sizes tables and task pools (``spec.maxInFlight``,
``spec.connections``, ``spec.limits``), and a few more. Everything else is
applied live (:data:`LIVE`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Final

from edgeport.config.model import BUILTIN_PROCESSOR

if TYPE_CHECKING:
    from edgeport.config.model import EdgePortConfig

# EdgePortConfig fields a reload applies to the running parts.
LIVE: Final = frozenset(
    {
        "ref",
        "api_version",
        "external_addrs",
        "localnets",
        "methods",
        "unknown_method_action",
        "security_context",
        "websocket",
        "proxy_protocol",
        "access_control",
        "protection",
        "processor",  # except a move to or from the built-in processor
        "hep",  # except turning the capture on or off
        "reload",
    }
)

# Where each field that needs a restart is written (the file's key, or the variable).
_KEY_PATHS: Final = {
    "transports": "spec.transport",
    "bind_addr": "spec.bindAddr",
    "region": "metadata.region",
    "connections": "spec.connections",
    "max_in_flight": "spec.maxInFlight",
    "shutdown_timeout": "spec.shutdownTimeout",
    "workers": "spec.workers",
    "limits": "spec.limits",
    "builtin": "spec.builtin",
    "hep": "spec.capture.hep",
    "processor": "spec.processor.addr",
    "health": "HEALTHCHECK_*",
    "publishers": "*_PUBLISHER_*",
    "strip_session_progress_sdp": "STRIP_SESSION_PROGRESS_SDP",
}
_RENAMES: Final = {"max_connections": "max"}


def restart_keys(running: EdgePortConfig, loaded: EdgePortConfig) -> list[str]:
    """The key paths whose new value needs a restart, in the model's field order
    (empty: everything in ``loaded`` can be applied live)."""
    keys: list[str] = []
    for name in _waiting_fields(running, loaded):
        if name in {"processor", "hep"}:  # the whole key: its fields are all live
            keys.append(_KEY_PATHS[name])
        else:
            keys.extend(_differing(_KEY_PATHS[name], getattr(running, name), getattr(loaded, name)))
    return keys


def after_reload(running: EdgePortConfig, loaded: EdgePortConfig) -> EdgePortConfig:
    """What runs once ``loaded`` is applied: its live settings, and the running
    values of those that wait for a restart (so the next reload still names them)."""
    kept = {name: getattr(running, name) for name in _waiting_fields(running, loaded)}
    return dataclasses.replace(loaded, **kept)


def _waiting_fields(running: EdgePortConfig, loaded: EdgePortConfig) -> list[str]:
    """The fields whose new value waits for a restart, in the model's field order."""
    names: list[str] = []
    for item in dataclasses.fields(running):
        name = item.name
        old, new = getattr(running, name), getattr(loaded, name)
        if old == new:
            continue
        if name == "processor":  # a new address is live; built-in <-> gRPC is not
            waits = (old.addr == BUILTIN_PROCESSOR) != (new.addr == BUILTIN_PROCESSOR)
        elif name == "hep":  # a new collector is live; capture on <-> off is not
            waits = (old is None) != (new is None)
        else:
            waits = name not in LIVE
        if waits:
            names.append(name)
    return names


def _differing(path: str, old: Any, new: Any) -> list[str]:
    """``path``, or the paths of the fields of a section that differ."""
    if not (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)):
        return [path]
    if type(old) is not type(new):
        return [path]
    found = []
    for item in dataclasses.fields(old):
        a, b = getattr(old, item.name), getattr(new, item.name)
        if a != b:
            found.extend(_differing(f"{path}.{_camel(item.name)}", a, b))
    return found or [path]


def _camel(name: str) -> str:
    name = _RENAMES.get(name, name)
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
