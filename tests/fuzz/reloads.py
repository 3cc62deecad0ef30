"""Reloading the configuration while the inputs flow: SIGHUP to each supervisor.

A supervisor answers SIGHUP by asking each of its workers to read the
configuration file again (``edgeport.workers.supervisor``). The file the
fuzzer wrote stays valid and unchanged, so every reload is applied by both
workers. ``edgeport_config_reloads_total`` is counted by each worker; the
supervisor's ``/metrics`` shows every worker's samples with ``worker="<i>"``
added and has no such counter of its own, so the ``result="applied"``
samples summed are the SIGHUPs sent times :data:`~tests.fuzz.edges.WORKERS`,
with no ``partial`` nor ``failed`` one (:func:`reload_findings`).

trio may merge a signal that arrives while the one before is still pending,
so a SIGHUP is sent only once the one before has been applied: every
worker's ``configGeneration`` in the supervisor's ``/healthz`` went up by
one. While a reload runs, each listener of that process is probed and each
of its stream listeners gets a ping burst: none may stop answering across a
reload.
"""

from __future__ import annotations

import json
import random
import signal
import ssl
from collections import Counter
from collections.abc import Sequence
from typing import Final

import trio

from tests.fuzz.edges import WORKERS, EdgeProcess
from tests.fuzz.keepalives import BURST_SIZES, check_burst
from tests.fuzz.listeners import Listener
from tests.fuzz.probes import PROBES_PER_LISTENER, probe_all

RELOAD_TIMEOUT: Final = 30.0  # seconds for every worker of a process to apply a reload
POLL_INTERVAL: Final = 0.1  # seconds between two looks at /healthz


async def generations(edge: EdgeProcess) -> dict[str, int | None]:
    """Worker index -> the configuration generation it runs, from ``/healthz``."""
    _, body = await edge.get("/healthz")
    try:
        workers = json.loads(body).get("workers", {})
    except (ValueError, AttributeError):
        return {}
    return {
        index: entry.get("configGeneration") if isinstance(entry, dict) else None
        for index, entry in workers.items()
    }


class Reloads:
    """SIGHUPs at chosen input indices, one process and one reload at a time."""

    def __init__(
        self,
        edges: Sequence[EdgeProcess],
        client_tls: ssl.SSLContext,
        at: Sequence[int],
        rng: random.Random,
    ) -> None:
        self.edges = edges
        self.client_tls = client_tls
        self.at = sorted(at)
        self.rng = rng
        self.sighups: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()  # reloads seen applied by every worker
        self.probes: Counter[str] = Counter()  # "answered" and "asked", during reloads
        self.bursts = 0
        self.findings: list[str] = []
        self.busy = False
        self._next = 0

    def due(self, index: int) -> bool:
        """Whether a reload should start at input ``index`` (none while one runs)."""
        if self.busy or self._next >= len(self.at) or index < self.at[self._next]:
            return False
        self._next += 1
        self.busy = True
        return True

    async def run_one(self) -> None:
        """Reload each process in turn; probe its listeners while it reloads."""
        try:
            for edge in self.edges:
                await self._reload(edge)
        finally:
            self.busy = False

    async def wait_idle(self) -> None:
        with trio.move_on_after(RELOAD_TIMEOUT * len(self.edges)):
            while self.busy:  # bounded by the move_on_after
                await trio.sleep(POLL_INTERVAL)

    async def _reload(self, edge: EdgeProcess) -> None:
        before = await generations(edge)
        if len(before) != WORKERS or any(g is None for g in before.values()):
            self.findings.append(f"{edge.name}: /healthz names no generation: {before}")
            return
        edge.process.send_signal(signal.SIGHUP)
        self.sighups[edge.name] += 1
        n = 1000 + self.sighups[edge.name]
        now = before
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._probe, edge, n)
            for listener, port in edge.listeners.items():
                if listener is Listener.UDP:
                    continue
                nursery.start_soon(self._burst, listener, port, self.rng.choice(BURST_SIZES))
            with trio.move_on_after(RELOAD_TIMEOUT) as waiting:
                while True:  # bounded by the move_on_after
                    now = await generations(edge)
                    if all(now.get(i) == (g or 0) + 1 for i, g in before.items()):
                        break
                    await trio.sleep(POLL_INTERVAL)
            if waiting.cancelled_caught:
                self.findings.append(
                    f"{edge.name}: reload {self.sighups[edge.name]} not applied by every worker "
                    f"in {RELOAD_TIMEOUT:g} s: generations {before} -> {now}"
                )
            else:
                self.applied[edge.name] += 1

    async def _probe(self, edge: EdgeProcess, n: int) -> None:
        ports = dict(edge.listeners)
        answered = await probe_all(ports, self.client_tls, n=n)
        for listener, ok in answered.items():
            self.probes["asked"] += PROBES_PER_LISTENER
            self.probes["answered"] += int(ok.split("/")[0])
            if ok != f"{PROBES_PER_LISTENER}/{PROBES_PER_LISTENER}":
                self.findings.append(
                    f"{edge.name}: listener {listener} answered {ok} probes during reload "
                    f"{self.sighups[edge.name]}"
                )

    async def _burst(self, listener: Listener, port: int, count: int) -> None:
        self.bursts += 1
        problem = await check_burst(listener, port, self.client_tls, count, self.rng)
        if problem is not None:
            self.findings.append(f"during a reload: {problem}")


def reload_findings(
    name: str, sighups: int, metrics: dict[str, float], workers: int = WORKERS
) -> list[str]:
    """The reload counters of ``name``'s merged ``/metrics`` against the SIGHUPs sent."""
    found = []
    if metrics.get("reloads_applied") != sighups * workers:
        found.append(
            f"{name}: {metrics.get('reloads_applied', 0):.0f} reloads applied counted for "
            f"{sighups} SIGHUPs to {workers} workers (expected {sighups * workers})"
        )
    for result in ("partial", "failed"):
        if metrics.get(f"reloads_{result}"):
            found.append(f"{name}: {metrics[f'reloads_{result}']:.0f} reloads {result}")
    return found
