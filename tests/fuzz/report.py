"""The figures and findings of a live run, and their text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from tests.fuzz.listeners import Listener
from tests.fuzz.sizes import SizeClass

MAX_EDGE_RSS_GROWTH_MIB: Final = 400  # all edgeport processes together, before to after


@dataclass
class LiveReport:
    count: int
    replayed: int = 0  # saved reproducers sent before the generated inputs
    sent: Counter[str] = field(default_factory=Counter)  # inputs per listener
    not_delivered: Counter[str] = field(default_factory=Counter)  # connection refused/closed
    send_timeouts: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)  # "stream 65,529 +/- 256" -> inputs
    bytes_sent: int = 0
    largest_stream: int = 0
    largest_datagram: int = 0
    connections: dict[str, int] = field(default_factory=dict)
    connections_refused: dict[str, int] = field(default_factory=dict)
    proxy_headers: dict[str, int] = field(default_factory=dict)
    open_timeouts: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # invalid header or proxy: closed
    judged: dict[str, int] = field(default_factory=dict)
    hep_received: int = 0
    hep_largest: int = 0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # edge -> figure -> value
    listeners_answering: dict[str, str] = field(default_factory=dict)  # "4/4"
    # "edge worker 0" -> (pid, VmRSS KiB), after the start and after the run
    rss_before_kib: dict[str, tuple[int, int]] = field(default_factory=dict)
    rss_after_kib: dict[str, tuple[int, int]] = field(default_factory=dict)
    rss_peak_kib: int = 0  # the largest sum sampled during the run
    # (input index, edgeport processes MiB, fuzzer MiB), every RSS_EVERY inputs
    rss_series: list[tuple[int, int, int]] = field(default_factory=list)
    fuzzer_rss_mib: tuple[float, float] = (0.0, 0.0)  # before, after
    elapsed: float = 0.0
    send_time: float = 0.0
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    # "sip", "stun", "crlf burst", "ws ping burst" -> inputs
    inputs_by_kind: Counter[str] = field(default_factory=Counter)
    stun_sent: dict[str, int] = field(default_factory=dict)  # STUN datagrams by kind
    stun_answers: dict[str, int] = field(default_factory=dict)  # "success", "420", ...
    ws_keepalives: dict[str, int] = field(default_factory=dict)  # Pings, Pongs
    burst_checks: int = 0  # ping bursts on fresh connections, each then probed
    quiet_websockets: list[str] = field(default_factory=list)  # what each one saw
    reloads: dict[str, str] = field(default_factory=dict)  # edge -> SIGHUPs, applied
    reload_probes: dict[str, int] = field(default_factory=dict)  # "asked", "answered"
    forwarded: dict[str, int] = field(default_factory=dict)  # target host -> requests
    next_hop: dict[str, int] = field(default_factory=dict)  # what the sink received
    findings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def rss_growth_mib(self) -> float:
        return (_rss_sum(self.rss_after_kib) - _rss_sum(self.rss_before_kib)) / 1024


def _rss_sum(rss: dict[str, tuple[int, int]]) -> int:
    return sum(kib for _, kib in rss.values())


def format_live(live: LiveReport) -> list[str]:
    """The report as lines of text."""
    sent = sum(live.sent.values())
    lines = [
        f"live: {sent:,} of {live.count:,} inputs in {live.send_time:.1f} s "
        f"({sent / max(live.send_time, 1e-9):,.0f}/s; {live.elapsed:.1f} s with start-up, "
        f"probes and stop), {live.bytes_sent / 2**20:,.1f} MiB taken by edgeport",
        f"  saved reproducers replayed first: {live.replayed}",
    ]
    for listener, n in sorted(live.sent.items()):
        lines.append(
            f"  {listener:10} {n:9,} inputs, {live.not_delivered[listener]:7,} not delivered "
            f"(refused or closed), {live.send_timeouts[listener]:3} send timeouts, "
            f"{live.connections.get(listener, 0):7,} connections, "
            f"{live.connections_refused.get(listener, 0):6,} refused at opening"
        )
    lines.append(
        f"  largest stream input {live.largest_stream:,} B, largest datagram "
        f"{live.largest_datagram:,} B; inputs by size class:"
    )
    lines += [f"    {size_class:32} {n:9,}" for size_class, n in sorted(live.sizes.items())]
    lines.append("  inputs by kind: " + _pairs(live.inputs_by_kind))
    lines.append("  STUN datagrams sent by kind: " + _pairs(live.stun_sent))
    lines.append("  STUN answers received (judged): " + _pairs(live.stun_answers))
    lines.append(
        f"  WebSocket keep-alives on the fuzzer's connections: {_pairs(live.ws_keepalives)}; "
        f"ping bursts on fresh connections, then an OPTIONS: {live.burst_checks}"
    )
    lines.append("  quiet WebSockets: " + ("; ".join(live.quiet_websockets) or "none"))
    lines.append(
        "  reloads: "
        + ("; ".join(f"{k}: {v}" for k, v in live.reloads.items()) or "none")
        + "; probes during reloads: "
        + _pairs(live.reload_probes)
    )
    lines.append("  requests forwarded by target: " + _pairs(live.forwarded))
    lines.append("  the next hop got: " + _pairs(live.next_hop))
    lines.append("  PROXY headers sent: " + _pairs(live.proxy_headers))
    lines.append(
        "  connections edgeport closed as it must (invalid PROXY header or untrusted proxy, "
        "no SIP sent): " + _pairs(live.refused)
    )
    if live.open_timeouts:
        lines.append("  connections that timed out opening: " + _pairs(live.open_timeouts))
    lines.append("  processor got: " + _pairs(live.judged))
    lines.append(
        f"  HEP collector got {live.hep_received:,} packets (largest {live.hep_largest:,} B)"
    )
    for name, figures in live.metrics.items():
        lines.append(f"  {name} metrics: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()))
    lines.append(
        "  listeners answering probes after the run: "
        + ", ".join(f"{k} {v}" for k, v in live.listeners_answering.items())
    )
    lines.append("  RSS of the edgeport processes (VmRSS), before -> after:")
    for name, (pid, before) in live.rss_before_kib.items():
        after_pid, after = live.rss_after_kib.get(name, (0, 0))
        moved = "" if after_pid == pid else f" (now pid {after_pid})"
        lines.append(f"    {name:20} pid {pid:<8} {before:9,} KiB -> {after:9,} KiB{moved}")
    lines.append(
        f"    sum {_rss_sum(live.rss_before_kib) / 1024:,.0f} MiB -> "
        f"{_rss_sum(live.rss_after_kib) / 1024:,.0f} MiB "
        f"({live.rss_growth_mib:+,.0f} MiB; bound {MAX_EDGE_RSS_GROWTH_MIB}); "
        f"peak sampled {live.rss_peak_kib / 1024:,.0f} MiB"
    )
    series = live.rss_series[:: max(1, len(live.rss_series) // 12)]
    lines.append(
        "  RSS during the run (input: edgeport MiB / fuzzer MiB): "
        + ", ".join(f"{i:,}: {e}/{f}" for i, e, f in series)
    )
    lines.append(
        f"  fuzzer RSS {live.fuzzer_rss_mib[0]:,.0f} -> {live.fuzzer_rss_mib[1]:,.0f} MiB; "
        f"supervisor exit codes on SIGTERM: {live.exit_codes}"
    )
    lines.append(f"  findings: {len(live.findings)}")
    lines += [f"  {line}" for line in live.findings]
    return lines


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


@dataclass(frozen=True)
class SentInput:
    index: int
    listener: Listener
    size: int
    size_class: SizeClass
