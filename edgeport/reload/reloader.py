"""One reload: read the configuration again, validate it, apply it or keep the old one.

:class:`Reloader` owns the configuration a running edgeport runs with and its
generation (1 at start). :meth:`Reloader.reload` reads the file again with
the loader and the environment of the start (:class:`ConfigSource`), checks
it as the start does, builds the TLS contexts from the files named in
``spec.securityContext``, and then:

- invalid (a problem in the file, a keystore that cannot be opened): nothing
  changes; each problem is logged on its own line, as at the start, and
  counted ``edgeport_config_reloads_total{result="failed"}``;
- valid: every setting that can change live is handed to the running parts
  (:class:`Apply`), the generation goes up by one
  (``edgeport_config_generation``) and the reload is counted ``applied``, or
  ``partial`` when some changed keys need a restart: those keep their running
  value, and one log line names them (:func:`~.plan.restart_keys`).

Reloads run one at a time, whatever triggers them (SIGHUP, a request from
the supervisor, a change of the TLS files on disk).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import trio

from edgeport.config import ConfigError, load_config_with_warnings
from edgeport.keystore import KeystoreError
from edgeport.metrics import METRICS
from edgeport.reload.plan import after_reload, restart_keys
from edgeport.reload.watch import ConfigChanges

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from edgeport.config import EdgePortConfig
    from edgeport.metrics import EdgeportMetrics
    from edgeport.transports.tls import TlsSet

logger = logging.getLogger(__name__)

Result = Literal["applied", "partial", "failed"]


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where the running configuration came from, to read it again the same way.

    ``path`` None means ``CONFIG_PATH`` of ``env``, else the embedded default
    (as at the start); ``prepare`` turns the loaded configuration into the one
    this process runs (a worker's share, the supervisor's processor socket).
    """

    path: str | None
    env: Mapping[str, str]
    prepare: Callable[[EdgePortConfig], EdgePortConfig] | None = None

    def load(self) -> tuple[EdgePortConfig, list[str]]:
        """The configuration as this process would run it, and the warnings.
        Raises ConfigError."""
        config, warnings = load_config_with_warnings(self.path, self.env)
        if self.prepare is not None:
            config = self.prepare(config)
        return config, warnings


class Apply(Protocol):
    """The running parts, given a validated configuration and its TLS contexts."""

    def __call__(self, config: EdgePortConfig, tls: TlsSet | None) -> None: ...


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one reload did: the result, the generation now running, and the problems
    (why it failed) or the keys that wait for a restart."""

    result: Result
    generation: int
    problems: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "generation": self.generation,
            "problems": list(self.problems),
            "restartNeeded": list(self.restart),
        }


def build_tls_for(config: EdgePortConfig) -> TlsSet | None:
    """The TLS contexts of ``config``; raises ConfigError naming the key of a file
    that cannot be used."""
    security = config.security_context
    if security is None:
        return None
    from edgeport.transports.tls import build_tls

    try:
        return build_tls(security)
    except KeystoreError as error:
        key = "trustStore" if error.path == security.trust_store else "keyStore"
        raise ConfigError([f"spec.securityContext.{key}: {error}"]) from None
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError([f"spec.securityContext: {error}"]) from None


@dataclass(slots=True)
class Reloader:
    """The running configuration, its generation, and the reloads that replace it."""

    source: ConfigSource
    config: EdgePortConfig
    apply: Apply
    metrics: EdgeportMetrics = METRICS
    generation: int = 1
    last: ReloadResult | None = None
    changes: ConfigChanges = field(default_factory=ConfigChanges)  # told of each new config
    _lock: trio.Lock = field(default_factory=trio.Lock)

    def __post_init__(self) -> None:
        self.metrics.config_generation.set(float(self.generation))

    async def reload(self, trigger: str) -> ReloadResult:
        """Read, check and apply the configuration again (one reload at a time)."""
        async with self._lock:
            result = await self._reload(trigger)
        self.last = result
        self.metrics.config_reloads.labels(result=result.result).inc()
        return result

    async def _reload(self, trigger: str) -> ReloadResult:
        logger.info("reloading the configuration (%s)", trigger)
        try:
            loaded, warnings = await trio.to_thread.run_sync(self.source.load)
            tls = await trio.to_thread.run_sync(build_tls_for, loaded)
        except ConfigError as error:
            return self._failed(error.problems, error.warnings)
        for line in warnings:
            logger.warning("%s", line)
        restart = restart_keys(self.config, loaded)
        running = after_reload(self.config, loaded)
        try:
            self.apply(running, tls)
        except Exception as error:  # a defect: say so, keep serving
            logger.exception("applying the reloaded configuration failed")
            return self._failed([f"applying the configuration failed: {error!r}"], [])
        self.config = running
        self.changes.replaced()
        self.generation += 1
        self.metrics.config_generation.set(float(self.generation))
        if restart:
            logger.warning(
                "configuration generation %d applied; needs a restart to take effect: %s",
                self.generation,
                ", ".join(restart),
            )
            return ReloadResult("partial", self.generation, restart=tuple(restart))
        logger.info("configuration generation %d applied", self.generation)
        return ReloadResult("applied", self.generation)

    def _failed(self, problems: list[str], warnings: list[str]) -> ReloadResult:
        logger.error(
            "configuration reload failed, generation %d keeps running; the problems:",
            self.generation,
        )
        for line in problems:
            logger.error("%s", line)
        for line in warnings:
            logger.warning("%s", line)
        return ReloadResult("failed", self.generation, problems=tuple(problems))
