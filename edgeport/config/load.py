"""Loading the configuration: the one pass from a file and the environment to the model.

As contract §6 describes: file (YAML or JSON) -> dict -> environment
overrides (:mod:`.environment`) -> cattrs structuring (:mod:`.schema`) ->
cross-field checks (:mod:`.validate`) -> the effective
:class:`~edgeport.config.model.EdgePortConfig`. Every problem is collected
and reported at once, one line each, naming the key path or the environment
variable, in a :class:`~edgeport.config.errors.ConfigError`.

- :func:`load_config` returns the configuration and logs each warning (an
  unknown key, a boolean variable that is neither true nor false);
  :func:`load_config_with_warnings` returns them instead.
- :func:`default_config` is what runs with no file at all.

:func:`effective_config` is the one step where the file's shape and the
model differ: a transport's bindAddr falls back to spec.bindAddr, localnets
are detected when the file has none, the security context's ``client``
section is flattened, ``spec.capture.hep`` becomes ``hep``, and the settings
only the environment gives join in.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from edgeport.config.environment import apply_overrides, name_variables, read_settings
from edgeport.config.errors import ConfigError
from edgeport.config.model import (
    BUILTIN_PROCESSOR,
    KIND,
    EdgePortConfig,
    SecurityContext,
    TransportConfig,
)
from edgeport.config.schema import DocumentFile, problem_lines, structure_document, unknown_keys
from edgeport.config.validate import cross_checks
from edgeport.config.values import show
from edgeport.localnets import detect_localnets
from edgeport.sip.methods import SIP_METHODS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from edgeport.config.environment import EnvSettings

# The package's name, as before it was a package: operators filter on it.
logger = logging.getLogger("edgeport.config")

MAX_CONFIG_BYTES: Final = 1024 * 1024  # a configuration file is a few hundred bytes

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
        raise ConfigError([f"{shown}: expected a mapping at the top level, got {show(document)}"])
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


# --- the pass -------------------------------------------------------------------


def _build(document: dict[str, Any], env: Mapping[str, str]) -> tuple[EdgePortConfig, list[str]]:
    """The one pass: warnings, environment, structuring, cross-field checks."""
    warnings = unknown_keys(document, DocumentFile, "")
    applied = apply_overrides(document, env)
    env_problems: list[str] = []
    settings = read_settings(env, env_problems, warnings)
    problems: list[str] = []
    parsed: DocumentFile | None = None
    try:
        parsed = structure_document(document)
    except Exception as exc:  # every structuring problem, as a tree of exceptions
        problems.extend(name_variables(problem_lines(exc, ""), applied))
    problems.extend(cross_checks(document))
    problems.extend(env_problems)
    if problems or parsed is None:
        raise ConfigError(problems, warnings)
    return effective_config(parsed, settings), warnings


def effective_config(document: DocumentFile, settings: EnvSettings) -> EdgePortConfig:
    """The model from a structured document and the environment's settings."""
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
        processor=spec.processor,
        region=document.metadata.region,
        bind_addr=spec.bind_addr,
        external_addrs=spec.external_addrs,
        localnets=localnets,
        unknown_method_action=spec.unknown_method_action,
        security_context=security,
        connections=spec.connections,
        websocket=spec.websocket,
        proxy_protocol=spec.proxy_protocol,
        access_control=spec.access_control,
        protection=spec.protection,
        publishers=settings.publishers,
        health=settings.health,
        strip_session_progress_sdp=settings.strip_session_progress_sdp,
        max_in_flight=spec.max_in_flight,
        shutdown_timeout=spec.shutdown_timeout,
        workers=spec.workers,
        hep=spec.capture.hep,
        limits=spec.limits,
        builtin=spec.builtin,
        dns=spec.dns,
        reload=spec.reload,
        large_requests_over_tcp=spec.large_requests_over_tcp,
    )
