"""The supervisor: N worker processes behind the same ports, one health endpoint for all.

:func:`supervise` starts ``edgeport worker --index i --count N`` processes
(spawned: a fresh interpreter each, never a fork of this one, which runs
gRPC threads), restarts one that dies (with a backoff that grows while it
keeps dying early), passes SIGTERM/SIGINT on to every worker for the
graceful drain and returns once they have all exited. With the built-in
processor it serves that processor over gRPC on a Unix socket, so every
worker talks to one registrar. On the health port it serves ``/healthz``
(every worker healthy), ``/readyz`` (every worker ready) and ``/metrics``
(every worker's metrics, labelled ``worker="<i>"``, plus its own).

Reloads: on SIGHUP, and when a file of ``spec.securityContext`` changes on
disk, the supervisor asks every worker to reload (``POST /reload`` on its
health socket): each worker reads and checks the configuration itself and
answers with its result, which the supervisor logs, one line per worker.
``/healthz`` shows the configuration generation each worker runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from edgeport.config import BUILTIN_PROCESSOR, ConfigError, load_config_with_warnings
from edgeport.health import HealthChecks, serve_health
from edgeport.metrics import Registry
from edgeport.reload.watch import ConfigChanges, watch_tls_files
from edgeport.workers.http_client import HttpError, get_unix, request_unix
from edgeport.workers.metrics_merge import merge_expositions
from edgeport.workers.worker import health_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from edgeport.config import EdgePortConfig

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_STARTUP: Final = 2  # a worker could not start (configuration, a port in use)
RESTART_BACKOFF_FIRST: Final = 0.5  # seconds before restarting a worker that died
RESTART_BACKOFF_MAX: Final = 10.0
STABLE_AFTER: Final = 30.0  # seconds of life after which a death starts the backoff afresh
QUERY_TIMEOUT: Final = 1.0  # seconds for a worker to answer a health or metrics query
KILL_AFTER: Final = 5.0  # seconds past the drain before a worker that did not exit is killed
RELOAD_TIMEOUT: Final = 30.0  # seconds for a worker to reload and answer


@dataclass(slots=True)
class WorkerSlot:
    """One worker index: its current process and what it last told the supervisor."""

    index: int
    process: trio.Process | None = None
    restarts: int = 0
    ever_healthy: bool = False
    healthy: bool = False
    ready: bool = False
    metrics: str = ""
    problems: list[str] = field(default_factory=list)
    generation: int | None = None  # the configuration it runs, from its /healthz

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """How to start worker ``i``: the same interpreter, configuration and logging."""

    config_path: str | None
    log_level: str
    log_format: str
    count: int
    rundir: str
    processor: str | None

    def argv(self, index: int) -> list[str]:
        argv = [sys.executable, "-m", "edgeport", "--log-level", self.log_level]
        argv += ["--log-format", self.log_format]
        if self.config_path is not None:
            argv += ["--config", self.config_path]
        argv += ["worker", "--index", str(index), "--count", str(self.count)]
        argv += ["--rundir", self.rundir]
        if self.processor is not None:
            argv += ["--processor", self.processor]
        return argv


class Supervisor:
    """The worker slots, their restarts, the drain, and the health view of all of them."""

    def __init__(self, config: EdgePortConfig, command: WorkerCommand) -> None:
        self.config = config
        self.config_changes = ConfigChanges()  # told when _reload_own replaces config
        self.command = command
        self.slots = [WorkerSlot(index) for index in range(command.count)]
        self.stopping = trio.Event()
        self.startup_failure: str | None = None
        self.registry = Registry()
        self._restarts = self.registry.counter(
            "edgeport_worker_restarts_total", "Worker processes restarted after dying.", ("worker",)
        )
        workers_running = self.registry.gauge(
            "edgeport_workers_running", "Worker processes running."
        )
        workers_running.set_function(lambda: float(sum(slot.running for slot in self.slots)))
        self.checks = HealthChecks()
        for slot in self.slots:
            self.checks.add_liveness(
                f"worker {slot.index}",
                functools.partial(self._healthy, slot),
                problem=f"worker {slot.index} is not running or not healthy",
            )
        self.checks.set_readiness(self._all_ready, problem="not every worker is ready")
        self.checks.set_details(self._generations)
        self._reloading = trio.Lock()

    # workers -------------------------------------------------------------

    async def keep_running(self, slot: WorkerSlot) -> None:
        """Run worker ``slot.index`` until the drain; restart it whenever it dies."""
        failures = 0
        while not self.stopping.is_set():
            argv = self.command.argv(slot.index)
            # A session of its own: a terminal's Ctrl-C reaches the supervisor only,
            # which passes one SIGTERM on (two would stop the worker at once).
            started = trio.current_time()
            try:
                process = await trio.lowlevel.open_process(argv, start_new_session=True)
            except OSError as error:  # out of processes or memory: try again after the backoff
                logger.error("worker %d could not be started: %s", slot.index, error)
                pid, code = None, None
            else:
                slot.process = process
                pid = process.pid
                logger.info("worker %d started (pid %d)", slot.index, pid)
                try:
                    code = await process.wait()
                finally:
                    if process.returncode is None:  # the supervisor itself is being cancelled
                        process.kill()
            slot.healthy = slot.ready = False
            slot.metrics = ""
            if self.stopping.is_set():
                logger.info("worker %d (pid %s) exited with %s", slot.index, pid, code)
                return
            if code == EXIT_STARTUP and not slot.ever_healthy:
                self.startup_failure = f"worker {slot.index} could not start (exit {code})"
                logger.error("%s: stopping", self.startup_failure)
                self.stop()
                return
            lived = trio.current_time() - started
            failures = failures + 1 if lived < STABLE_AFTER else 1
            delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_FIRST * 2 ** (failures - 1))
            slot.restarts += 1
            self._restarts.labels(worker=str(slot.index)).inc()
            logger.warning(
                "worker %d (pid %s) died (exit %s) after %.1f s: restart %d in %.1f s",
                slot.index,
                pid,
                code,
                lived,
                slot.restarts,
                delay,
            )
            with trio.move_on_after(delay):
                await self.stopping.wait()

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Start the drain: every worker gets ``signum``; none is restarted any more."""
        self.stopping.set()
        for slot in self.slots:
            if slot.running and slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    async def wait_stopped(self) -> None:
        """Return once no worker runs; kill those still running ``KILL_AFTER`` past the drain."""
        with trio.move_on_after(self.config.shutdown_timeout + KILL_AFTER):
            while any(slot.running for slot in self.slots):  # noqa: ASYNC110 - polled once a drain
                await trio.sleep(0.1)
        for slot in self.slots:
            if slot.running and slot.process is not None:
                logger.warning("worker %d did not stop: killing it", slot.index)
                slot.process.kill()

    # health --------------------------------------------------------------

    def _generations(self) -> dict[str, object]:
        return {
            "workers": {
                str(slot.index): {"configGeneration": slot.generation, "pid": slot.pid}
                for slot in self.slots
            }
        }

    # reloads ---------------------------------------------------------------

    async def reload_workers(self, trigger: str) -> dict[int, dict[str, object]]:
        """Ask every running worker to reload; log and return each one's result
        (one reload of all of them at a time)."""
        async with self._reloading:
            logger.info("reloading the configuration of every worker (%s)", trigger)
            await self._reload_own()
            results: dict[int, dict[str, object]] = {}
            async with trio.open_nursery() as nursery:
                for slot in self.slots:
                    if slot.running:
                        nursery.start_soon(self._reload_worker, slot, results)
            await self.refresh()
            return results

    async def _reload_own(self) -> None:
        """The supervisor's own copy (the files to watch, the drain's timeout); the
        workers report the problems of an invalid one."""
        try:
            config, _ = await trio.to_thread.run_sync(
                load_config_with_warnings, self.command.config_path, dict(os.environ)
            )
        except ConfigError:
            return
        self.config = config
        self.config_changes.replaced()

    async def _reload_worker(self, slot: WorkerSlot, results: dict[int, dict[str, object]]) -> None:
        path = health_path(self.command.rundir, slot.index)
        answer: dict[str, object] = {"result": "failed", "problems": ["no answer"]}
        with trio.move_on_after(RELOAD_TIMEOUT):
            try:
                status, body = await request_unix(path, "POST", "/reload")
                parsed = json.loads(body) if status == 200 else None
                if isinstance(parsed, dict):
                    answer = parsed
                else:
                    answer["problems"] = [f"answered {status}"]
            except (HttpError, ValueError) as error:
                answer["problems"] = [str(error)]
        results[slot.index] = answer
        result, generation = answer.get("result"), answer.get("generation")
        if result == "applied":
            logger.info("worker %d: configuration generation %s applied", slot.index, generation)
        elif result == "partial":
            logger.warning(
                "worker %d: configuration generation %s applied; needs a restart: %s",
                slot.index,
                generation,
                _listed(answer.get("restartNeeded"), ", "),
            )
        else:
            logger.error(
                "worker %d: reload failed, generation %s keeps running: %s",
                slot.index,
                generation,
                _listed(answer.get("problems"), "; "),
            )

    async def watch_tls_files(self) -> None:
        """Reload every worker when a file of ``spec.securityContext`` changes on disk."""
        await watch_tls_files(
            lambda: self.config, self._reload_unless_stopping, self.config_changes
        )

    async def _reload_unless_stopping(self, why: str) -> None:
        if not self.stopping.is_set():
            await self.reload_workers(why)

    def _healthy(self, slot: WorkerSlot) -> bool:
        return slot.running and slot.healthy

    def _all_ready(self) -> bool:
        return all(slot.running and slot.ready for slot in self.slots)

    async def refresh(self) -> None:
        """Ask every running worker for its health, readiness and metrics, concurrently."""
        async with trio.open_nursery() as nursery:
            for slot in self.slots:
                nursery.start_soon(self._query, slot)

    async def _query(self, slot: WorkerSlot) -> None:
        if not slot.running:
            slot.healthy = slot.ready = False
            slot.metrics = ""
            slot.generation = None
            return
        path = health_path(self.command.rundir, slot.index)
        healthy = ready = False
        metrics = ""
        with trio.move_on_after(QUERY_TIMEOUT):
            try:
                status, body = await get_unix(path, "/healthz")
                healthy = status == 200
                slot.generation = _generation(body)
                ready = (await get_unix(path, "/readyz"))[0] == 200
                status, body = await get_unix(path, "/metrics")
                metrics = body.decode("utf-8", "replace") if status == 200 else ""
            except HttpError as error:
                logger.debug("worker %d: %s", slot.index, error)
        slot.healthy, slot.ready, slot.metrics = healthy, ready, metrics
        if healthy:
            slot.ever_healthy = True

    def render_metrics(self) -> str:
        return merge_expositions(
            {str(slot.index): slot.metrics for slot in self.slots if slot.metrics},
            own=self.registry.render(),
        )

    async def watch_startup(self) -> None:
        """Mark workers healthy once they answer, so a later exit 2 counts as a death."""
        while not self.stopping.is_set():
            await self.refresh()
            if all(slot.ever_healthy for slot in self.slots):
                return
            await trio.sleep(0.2)


def _listed(items: object, separator: str) -> str:
    return separator.join(str(item) for item in items) if isinstance(items, list) else ""


def _generation(body: bytes) -> int | None:
    """The configGeneration of a worker's /healthz document, if it says one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("configGeneration") if isinstance(document, dict) else None
    return value if isinstance(value, int) else None


async def supervise(
    config: EdgePortConfig,
    *,
    config_path: str | None,
    workers: int,
    log_level: str = "INFO",
    log_format: str = "text",
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT and their drain; the exit code."""
    rundir = tempfile.mkdtemp(prefix="edgeport-")
    try:
        async with trio.open_nursery() as nursery:
            processor = None
            if config.processor.addr == BUILTIN_PROCESSOR:
                processor = f"unix:{Path(rundir) / 'processor.sock'}"
                await nursery.start(_serve_builtin, processor, config)
            command = WorkerCommand(config_path, log_level, log_format, workers, rundir, processor)
            supervisor = Supervisor(config, command)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                async with trio.open_nursery() as workers_nursery:
                    for slot in supervisor.slots:
                        workers_nursery.start_soon(supervisor.keep_running, slot)
                    nursery.start_soon(supervisor.watch_startup)
                    nursery.start_soon(supervisor.watch_tls_files)
                    if config.health.enabled:
                        port = await nursery.start(
                            functools.partial(
                                serve_health,
                                config.health.port,
                                host=config.health_bind_addr,
                                checks=supervisor.checks,
                                render_metrics=supervisor.render_metrics,
                                refresh=supervisor.refresh,
                            )
                        )
                        logger.info("health and metrics of %d workers on :%d", workers, port)
                    nursery.start_soon(_forward_signals, signals, supervisor, workers_nursery)
                    task_status.started(supervisor)
                    await supervisor.stopping.wait()
                    await supervisor.wait_stopped()
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    if supervisor.startup_failure is not None:
        return EXIT_STARTUP
    logger.info("every worker stopped")
    return EXIT_OK


async def _forward_signals(
    signals: AsyncIterator[int],
    supervisor: Supervisor,
    workers_nursery: trio.Nursery,
) -> None:
    """SIGHUP reloads every worker. The first SIGTERM or SIGINT drains every worker; a
    second one is passed on (they stop at once)."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            if not supervisor.stopping.is_set():
                workers_nursery.start_soon(supervisor.reload_workers, name)
            continue
        if not supervisor.stopping.is_set():
            logger.info("%s: draining %d workers", name, len(supervisor.slots))
            supervisor.stop(signal.SIGTERM)
        else:
            logger.warning("second signal: workers stop now")
            supervisor.stop(signal.SIGTERM)


async def _serve_builtin(
    target: str, config: EdgePortConfig, *, task_status: trio.TaskStatus[int]
) -> None:
    from edgeport.builtin.service import builtin_processor_for, serve_processor_service

    logger.info("built-in processor for every worker on %s", target)
    await serve_processor_service(
        builtin_processor_for(config), "", 0, target=target, task_status=task_status
    )
