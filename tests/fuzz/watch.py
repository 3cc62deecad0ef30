"""Watching the edgeport processes during a live run: PIDs, RSS and metrics.

Every :data:`CHECK_EVERY` inputs the run looks at each supervisor and worker it
saw alive the last time: one gone since (a worker died, whether or not its
supervisor restarted it; a supervisor dead) is a finding that names the large
stream inputs sent since the last look. At the end the PIDs are compared with
those at the start, and each supervisor's ``/metrics`` is read for worker
restarts and messages lost to an internal error.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Final

from tests.fuzz.edges import WORKERS, EdgeProcess, alive, rss_kib
from tests.fuzz.listeners import Listener
from tests.fuzz.report import LiveReport, SentInput

CHECK_EVERY: Final = 50  # inputs between looks at the PIDs
RECENT_INPUTS: Final = 400  # inputs remembered to name suspects when a process dies
SUSPECT_BYTES: Final = 60_000  # stream inputs at least this large are named as suspects
MAX_SUSPECTS: Final = 20
PROXY_EVENTS: Final = (
    "proxy_protocol_invalid",
    "proxy_protocol_untrusted",
    "proxy_protocol_timeout",
)
KEEPALIVE_EVENTS: Final = ("stun_answered", "stun_dropped", "ws_ping_timeouts")


def process_pids(edges: Sequence[EdgeProcess]) -> dict[str, int]:
    """ "edge supervisor" / "edge worker 0" -> its PID now."""
    found: dict[str, int] = {}
    for edge in edges:
        found[f"{edge.name} supervisor"] = edge.pid
        for index, pids in sorted(edge.worker_pids().items()):
            found[f"{edge.name} worker {index}"] = pids[-1]
    return found


def rss_by_process(edges: Sequence[EdgeProcess]) -> dict[str, tuple[int, int]]:
    """ "edge worker 0" -> (its PID now, its VmRSS in KiB)."""
    return {name: (pid, rss_kib(pid)) for name, pid in process_pids(edges).items()}


class ProcessWatch:
    def __init__(self, edges: Sequence[EdgeProcess], report: LiveReport) -> None:
        self.edges = edges
        self.report = report
        self.watched = process_pids(edges)
        self.recent: deque[SentInput] = deque(maxlen=RECENT_INPUTS)

    def sent(self, sent: SentInput) -> None:
        self.recent.append(sent)

    def look(self, index: int, after: str = "") -> None:
        """A finding for each process gone since the last look, then watch those alive.
        ``after`` names what was sent instead of generated inputs (the reproducers)."""
        ended: set[int] = set()
        for name, pid in self.watched.items():
            if alive(pid):
                continue
            ended.add(pid)
            if after:
                self.report.findings.append(f"{name} (pid {pid}) ended after {after}")
                continue
            suspects = [
                f"#{sent.index} {sent.listener.value} {sent.size:,} B ({sent.size_class.value})"
                for sent in self.recent
                if sent.size >= SUSPECT_BYTES and sent.listener is not Listener.UDP
            ][-MAX_SUSPECTS:]
            first = self.recent[0].index if self.recent else index
            self.report.findings.append(
                f"{name} (pid {pid}) ended between inputs #{first} and #{index}; "
                f"large stream inputs in that window: {', '.join(suspects) or 'none'}"
            )
        # A process that ends between the look above and this one stays watched,
        # so that the next look reports it.
        self.watched = {
            name: pid
            for name, pid in process_pids(self.edges).items()
            if pid not in ended and (alive(pid) or self.watched.get(name) == pid)
        }
        self.recent.clear()


def compare_pids(before: dict[str, int], after: dict[str, int], report: LiveReport) -> None:
    """Every process of the start is the same process at the end."""
    for name, pid in before.items():
        if after.get(name) != pid:
            report.findings.append(f"{name} runs as pid {after.get(name)} now, not {pid}")
        elif not alive(pid):
            report.findings.append(f"{name} (pid {pid}) is gone")


async def read_metrics(edge: EdgeProcess, report: LiveReport) -> None:
    """The supervisor's merged ``/metrics``: figures for the report, findings for worker
    restarts and messages dropped on an internal error."""
    status, exposition = await edge.get("/metrics")
    if status != 200:
        report.findings.append(f"{edge.name}: /metrics answered {status}")
        return
    figures = {
        "restarts": total(exposition, "edgeport_worker_restarts_total"),
        "hep_sent": total(exposition, "edgeport_hep_sent_total"),
        "hep_dropped": total(exposition, "edgeport_hep_dropped_total"),
        "bans": total(exposition, "edgeport_bans_total"),
        "internal_errors": total(
            exposition, "edgeport_dropped_messages_total", 'reason="internal_error"'
        ),
        "received": total(exposition, "edgeport_messages_received_total"),
        "transactions_now": total(exposition, "edgeport_active_transactions"),
        "connections_now": total(exposition, "edgeport_active_connections"),
    }
    for worker in range(WORKERS):
        figures[f"received_worker_{worker}"] = total(
            exposition, "edgeport_messages_received_total", f'worker="{worker}"'
        )
    for event in PROXY_EVENTS + KEEPALIVE_EVENTS:
        figures[event] = total(exposition, "edgeport_transport_events_total", f'event="{event}"')
    for result in ("applied", "partial", "failed"):
        figures[f"reloads_{result}"] = total(
            exposition, "edgeport_config_reloads_total", f'result="{result}"'
        )
    for result in ("tcp", "udp_fallback"):
        figures[f"large_requests_{result}"] = total(
            exposition, "edgeport_large_requests_total", f'result="{result}"'
        )
    for result in ("answer", "negative", "failure", "cached"):
        figures[f"dns_{result}"] = total(
            exposition, "edgeport_dns_lookups_total", f'result="{result}"'
        )
    report.metrics[edge.name] = figures
    if figures["restarts"]:
        report.findings.append(f"{edge.name}: {figures['restarts']:.0f} worker restarts")
    if figures["internal_errors"]:
        report.findings.append(
            f"{edge.name}: {figures['internal_errors']:.0f} messages dropped on an internal error"
        )


def samples(exposition: str, name: str) -> dict[str, float]:
    """``name``'s samples in a Prometheus exposition: label text -> value."""
    found: dict[str, float] = {}
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def total(exposition: str, name: str, having: str = "") -> float:
    """The sum of ``name``'s samples whose labels contain ``having``."""
    return sum(value for labels, value in samples(exposition, name).items() if having in labels)
