"""The environment's part of the configuration, as Routr's EdgePort reads it.

Two kinds of variable (contract §6):

- those that override a key of the file (``HOSTNAME`` is ``ref``,
  ``PROCESSOR_ADDR`` is ``spec.processor.addr``...): :func:`apply_overrides`
  writes them into the document before it is structured, so they are checked
  as the key is, and :func:`name_variables` puts the variable's name in front
  of a problem in a value it set;
- those only the environment sets (the publishers, the health checks, 183
  SDP stripping, loopback in detected localnets): :func:`read_settings`.

An unset variable and an empty one are the same, as in Routr.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from edgeport.config.errors import Invalid
from edgeport.config.model import DEFAULT_HEALTHCHECK_PORT, HealthConfig, PublisherConfig
from edgeport.config.values import PORT_RE, ip_address

if TYPE_CHECKING:
    from collections.abc import Mapping

# Variables that override a key of the file, and that key's path.
OVERRIDES: Final = (
    ("HOSTNAME", "ref"),
    ("PROCESSOR_ADDR", "spec.processor.addr"),
    ("EXTERNAL_ADDRS", "spec.externalAddrs"),
    ("LOCALNETS", "spec.localnets"),
    ("WORKERS", "spec.workers"),
    ("HEP_ADDR", "spec.capture.hep.addr"),
    ("DNS_SERVERS", "spec.dns.servers"),
)
_NATS_SUBJECT_RE: Final = re.compile(r"[^\s*>.]+(\.[^\s*>.]+)*")
_NATS_SCHEMES: Final = ("nats", "tls", "ws", "wss")


def _env_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def apply_overrides(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Write the overriding variables into the document; returns key path -> variable."""
    applied: dict[str, str] = {}
    spec = document.get("spec")
    for variable, key_path in OVERRIDES:
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
        elif key_path == "spec.dns.servers":
            dns = spec.setdefault("dns", {})
            if not isinstance(dns, dict):
                continue
            dns["servers"] = _env_list(value)
        else:
            spec[key_path.rsplit(".", 1)[-1]] = _env_list(value)
        applied[key_path] = variable
    return applied


def name_variables(lines: list[str], applied: Mapping[str, str]) -> list[str]:
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
class EnvSettings:
    """What only the environment sets, read and checked."""

    publishers: PublisherConfig
    health: HealthConfig
    strip_session_progress_sdp: bool
    ignore_loopback: bool  # IGNORE_LOOPBACK_FROM_LOCALNETS, for localnets detection


def read_settings(env: Mapping[str, str], problems: list[str], warnings: list[str]) -> EnvSettings:
    """The settings only the environment gives; appends each problem and warning found."""

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
        if PORT_RE.fullmatch(port_text) and 1 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            problems.append(f"HEALTHCHECK_PORT: expected a port from 1 to 65535, got {port_text!r}")
    health_bind_addr = None
    bind_text = env.get("HEALTHCHECK_BIND_ADDR", "").strip()
    if bind_text:
        try:
            health_bind_addr = ip_address(bind_text)
        except Invalid as exc:
            problems.append(f"HEALTHCHECK_BIND_ADDR: {exc}")
    return EnvSettings(
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
