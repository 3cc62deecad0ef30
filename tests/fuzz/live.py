"""Fuzzing running edgeport processes with everything on, over real sockets.

Two ``edgeport --workers 2`` processes (:mod:`tests.fuzz.edges`): one with UDP,
TCP, TLS, WS and WSS, one with PROXY protocol listeners for TCP, TLS, WS and
WSS; both with HEP capture to a real UDP collector here, the flood limit on,
and a processor here that answers requests 200 (or forwards them) and judges
each request's Call-ID (:mod:`tests.fuzz.observers`, :mod:`tests.fuzz.verdicts`). The saved
reproducers (:mod:`tests.fuzz.reproducers`) go first; then the generator's
mutated SIP, resized into the size classes of :mod:`tests.fuzz.sizes` (0 bytes
to past 1 MiB on streams, up to the UDP maximum in datagrams), from many
127.x.y.z sources, behind valid, invalid and mutated PROXY headers on the PROXY
listeners (:mod:`tests.fuzz.senders`). A share of the UDP inputs are STUN
datagrams (:mod:`tests.fuzz.stun`), a share of the stream inputs CRLF or
WebSocket Ping bursts; the processor forwards a share of the requests to a next
hop here, named by IP and in DNS (:mod:`tests.fuzz.nexthop`); each process gets
SIGHUPs while the inputs flow (:mod:`tests.fuzz.reloads`); silent WebSockets
wait for edgeport's Pings (:mod:`tests.fuzz.keepalives`).

A run passes when: no supervisor or worker ended, every PID of the start is the
same at the end and the supervisors counted no worker restart; every listener
answers each of :data:`~tests.fuzz.probes.PROBES_PER_LISTENER` OPTIONS probes
after the run; no request reached the processor with a Call-ID only ever sent
malformed (or never sent); edgeport closed every connection it must refuse;
edgeport logged no ERROR and no traceback and dropped nothing on an internal
error; every HEP packet the collector got is framed right; the edgeport
processes' RSS grew less than :data:`~tests.fuzz.report.MAX_EDGE_RSS_GROWTH_MIB`;
every input was sent within the time limit with the fuzzer itself under
:data:`MAX_FUZZER_RSS_MIB`; and each supervisor exits 0 on SIGTERM. For the
newer paths: every STUN answer is right (only to a Binding request the fuzzer
sent, back to the socket it came from, a success of at most 44 bytes naming the
sender, a 420 no larger than the request); a ping burst gets 1 to n pongs and
breaks nothing; a WebSocket never gets more Pongs than it sent Pings; a silent
WebSocket that answers edgeport's Pings stays open and one that does not is
closed; no forwarded request over 1,300 bytes reaches the next hop over UDP;
every SIGHUP is applied by both workers (``edgeport_config_reloads_total``
counts SIGHUPs x workers) and every listener answers while each reload runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import trio

from tests.fuzz.edges import (
    IDLE_TIMEOUT,
    REPO_ROOT,
    WS_PING_INTERVAL,
    EdgeProcess,
    Features,
    FloodSettings,
    edge_config,
    proxied_config,
    rss_kib,
    start_edge,
    stop_edge,
    write_certificates,
)
from tests.fuzz.keepalives import (
    BURST_SIZES,
    CRLF_PING,
    QuietWebSockets,
    check_burst,
    ping_payloads,
)
from tests.fuzz.listeners import WEIGHTS, Listener
from tests.fuzz.logscan import scan_log
from tests.fuzz.mutate import OPTIONS, generate, with_call_id
from tests.fuzz.nexthop import (
    LARGE_REQUEST_BYTES,
    Forwarding,
    NextHopSink,
    SilentResolver,
    dnsmasq_hosts,
    dnsmasq_lines,
)
from tests.fuzz.observers import FuzzProcessor, HepSink
from tests.fuzz.probes import (
    CONNECTION_ERRORS,
    PROBE_TIMEOUT,
    PROBES_PER_LISTENER,
    exchange,
    probe_all,
)
from tests.fuzz.reloads import Reloads, reload_findings
from tests.fuzz.report import MAX_EDGE_RSS_GROWTH_MIB, LiveReport, SentInput
from tests.fuzz.reproducers import REPRODUCERS, Reproducer
from tests.fuzz.senders import Datagrams, Streams, mark, pick_source
from tests.fuzz.sizes import (
    DATAGRAM_WEIGHTS,
    MAX_UDP_PAYLOAD_BYTES,
    STREAM_WEIGHTS,
    pick_class,
    pick_size,
    resize,
)
from tests.fuzz.stun import generate as generate_stun
from tests.fuzz.verdicts import MALFORMED, Judgement, Verdicts
from tests.fuzz.watch import (
    CHECK_EVERY,
    ProcessWatch,
    compare_pids,
    process_pids,
    read_metrics,
    rss_by_process,
)
from tests.support.dnsmasq import run_dnsmasq
from tests.support.grpc_processor import start_processor
from tests.support.hep_collector import Collector

DRAIN_TIME: Final = 3.0  # seconds for in-flight messages to be handled after the last input
REPLAY_SETTLE: Final = 1.0  # seconds after the reproducers before looking at the processes
PRE_RUN_PROBE_ROUNDS: Final = 3  # rounds of probes before the run, until every one answers
PRE_RUN_PROBE_PAUSE: Final = 1.0  # seconds between two such rounds
PACE_EVERY: Final = 20  # inputs between two short pauses that let edgeport keep up
PACE_PAUSE: Final = 0.005  # seconds
RSS_EVERY: Final = 2_000  # inputs between samples of the RSS
PROGRESS_EVERY: Final = 100_000  # inputs between two progress lines
MAX_FUZZER_RSS_MIB: Final = 1_500  # past it the run stops: the fuzzer's memory is bounded
STUN_SHARE: Final = 0.15  # of the UDP inputs: STUN datagrams instead of SIP
BURST_SHARE: Final = 0.03  # of the stream inputs: a CRLF or WebSocket Ping burst instead
INPUTS_PER_RELOAD: Final = 5_000  # by default one SIGHUP to each process per this many inputs
MAX_RELOADS: Final = 20

Hook = Callable[[int, Sequence[EdgeProcess]], Awaitable[None]]
Progress = Callable[[str], None]


def fuzzer_rss_mib() -> float:
    return rss_kib(os.getpid()) / 1024


async def run_live(
    seed: int,
    count: int,
    *,
    workdir: Path,
    time_limit: float,
    flood: FloodSettings | None = None,
    hook: Hook | None = None,
    tree: Path = REPO_ROOT,
    replay: Sequence[Reproducer] = REPRODUCERS,
    max_input_bytes: int | None = None,
    progress: Progress | None = None,
    reloads: int | None = None,
) -> LiveReport:
    """Send ``count`` inputs into fresh edgeport processes (run from the checkout
    ``tree``, their files in ``workdir``); the figures and findings.

    ``time_limit``: seconds to send the inputs. ``hook`` is awaited before each
    input. ``max_input_bytes`` cuts every input to that size (for a run that must
    not meet the defects large inputs find). ``progress`` gets a line of figures every
    :data:`PROGRESS_EVERY` inputs. ``reloads``: SIGHUPs to each process during the
    run (default one per :data:`INPUTS_PER_RELOAD` inputs, at least 2)."""
    started = time.perf_counter()
    report = LiveReport(count=count)
    fuzzer_before = fuzzer_rss_mib()
    verdicts = Verdicts(seed, count)
    next_hop = NextHopSink()
    edges: list[EdgeProcess] = []
    if reloads is None:
        reloads = min(MAX_RELOADS, max(2, count // INPUTS_PER_RELOAD))
    dnsmasq = contextlib.ExitStack()  # started and stopped in a thread: it blocks
    try:
        async with trio.open_nursery() as nursery:
            sink = HepSink(await Collector.open())
            nursery.start_soon(sink.serve)
            sink_port = await nursery.start(next_hop.serve)
            forwarding = Forwarding(sink_port)
            processor = FuzzProcessor(verdicts, forwarding)
            silent = SilentResolver()
            silent_port = await nursery.start(silent.serve)
            dns = await trio.to_thread.run_sync(
                dnsmasq.enter_context,
                run_dnsmasq(workdir, dnsmasq_lines(sink_port), hosts=dnsmasq_hosts()),
            )
            features = Features(edge_dns=dns.server, proxied_dns=f"127.0.0.1:{silent_port}")
            running = await start_processor(nursery, processor)
            certs = write_certificates(workdir)
            settings = flood or FloodSettings()
            collector = sink.collector.addr
            configs = {
                "edge": edge_config(workdir, certs, running.addr, collector, settings, features),
                "proxied": proxied_config(
                    workdir, certs, running.addr, collector, settings, features
                ),
            }
            try:

                async def start(name: str) -> None:
                    config, listeners = configs[name]
                    edges.append(await start_edge(name, config, listeners, workdir, tree))

                async with trio.open_nursery() as starting:
                    for name in configs:
                        starting.start_soon(start, name)
                edges.sort(key=lambda edge: list(configs).index(edge.name))
                client_tls = ssl.create_default_context()
                certs.ca.configure_trust(client_tls)
                reload_at = [count * (k + 1) // (reloads + 1) for k in range(reloads)]
                run = LiveRun(
                    seed,
                    edges,
                    client_tls,
                    verdicts,
                    report,
                    max_input_bytes,
                    progress,
                    Reloads(edges, client_tls, reload_at, random.Random(f"reload-{seed}")),
                )
                await run.check_listeners_answer()
                await run.check_bursts()
                quiet = QuietWebSockets(WS_PING_INTERVAL, IDLE_TIMEOUT)
                await quiet.open(nursery, run.ports, client_tls)
                pids_before = process_pids(edges)
                report.rss_before_kib = rss_by_process(edges)
                send_started = time.perf_counter()
                await run.replay(replay)
                await run.send_all(count, time_limit, hook)
                report.send_time = time.perf_counter() - send_started
                await trio.sleep(DRAIN_TIME)
                await quiet.wait_closed()
                report.findings.extend(quiet.findings())
                report.quiet_websockets = [
                    f"{q.listener.value} {'answering' if q.answers else 'silent'}: "
                    f"{q.ws.pings_received} Pings, "
                    + (
                        "open"
                        if q.closed_at is None
                        else f"closed after {q.closed_at - q.opened:.1f} s"
                    )
                    for q in quiet.sockets
                ]
                report.listeners_answering = await probe_all(run.ports, client_tls, n=1)
                report.rss_after_kib = rss_by_process(edges)
                compare_pids(pids_before, process_pids(edges), report)
                for edge in edges:
                    await read_metrics(edge, report)
                    if edge.name in report.metrics:
                        report.findings.extend(
                            reload_findings(
                                edge.name, run.reloads.sighups[edge.name], report.metrics[edge.name]
                            )
                        )
            finally:
                for edge in edges:
                    await stop_edge(edge)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(dnsmasq.close)
    _judge(report, edges, processor, sink)
    _judge_next_hop(report, next_hop, forwarding, silent)
    report.fuzzer_rss_mib = (fuzzer_before, fuzzer_rss_mib())
    report.elapsed = time.perf_counter() - started
    return report


def _judge(
    report: LiveReport, edges: Sequence[EdgeProcess], processor: FuzzProcessor, sink: HepSink
) -> None:
    """The findings of what was observed once the processes stopped."""
    for edge in edges:
        report.exit_codes[edge.name] = edge.exit_code
        if edge.exit_code != 0:
            report.findings.append(f"{edge.name}: supervisor exited {edge.exit_code} on SIGTERM")
        for pid in edge.stray_workers_killed:
            report.findings.append(f"{edge.name}: worker {pid} outlived its supervisor")
        scan = scan_log(edge.log)
        if scan.errors or scan.tracebacks:
            report.findings.append(
                f"{edge.name}: {scan.errors} ERROR lines and {scan.tracebacks} tracebacks in "
                f"its log ({edge.log}):"
            )
            report.findings.extend(f"  {line}" for line in scan.lines)
    report.judged = {judgement.value: n for judgement, n in processor.judged.items()}
    if processor.unexpected:
        report.findings.append(
            f"{processor.judged[Judgement.UNEXPECTED]} requests reached the processor with a "
            "Call-ID only sent malformed (or never sent):"
        )
        report.findings.extend(f"  {line}" for line in processor.unexpected)
    report.hep_received, report.hep_largest = sink.packets, sink.largest
    if sink.bad_count:
        report.findings.append(f"{sink.bad_count} malformed HEP packets at the collector:")
        report.findings.extend(f"  {line}" for line in sink.bad)
    for listener, answered in report.listeners_answering.items():
        if answered != f"{PROBES_PER_LISTENER}/{PROBES_PER_LISTENER}":
            report.findings.append(f"listener {listener} answered {answered} probes after the run")
    if report.rss_after_kib and report.rss_growth_mib > MAX_EDGE_RSS_GROWTH_MIB:
        report.findings.append(
            f"edgeport RSS grew {report.rss_growth_mib:.0f} MiB (bound {MAX_EDGE_RSS_GROWTH_MIB})"
        )


def _judge_next_hop(
    report: LiveReport, next_hop: NextHopSink, forwarding: Forwarding, silent: SilentResolver
) -> None:
    """RFC 3261 §18.1.1: no forwarded request over LARGE_REQUEST_BYTES came as a
    datagram (the sink takes TCP, so no fallback to UDP was due)."""
    report.forwarded = dict(forwarding.forwarded)
    report.next_hop = {
        "datagrams": next_hop.datagrams,
        "largest datagram": next_hop.largest_datagram,
        "tcp connections": next_hop.connections,
        "tcp bytes": next_hop.stream_bytes,
        "queries to the silent resolver": silent.queries,
    }
    if next_hop.large_datagram_count:
        report.findings.append(
            f"{next_hop.large_datagram_count} forwarded requests over {LARGE_REQUEST_BYTES} "
            f"bytes came over UDP, not TCP; sizes: {next_hop.large_datagrams}"
        )


class LiveRun:
    """The sending side of a run: what goes where, and what the sockets saw.

    What is sent (bytes, listener, size) depends only on the seed and the input's
    index; where from (sources, PROXY headers, connections) on a second generator,
    since connections close when edgeport closes them.
    """

    def __init__(
        self,
        seed: int,
        edges: Sequence[EdgeProcess],
        client_tls: ssl.SSLContext,
        verdicts: Verdicts,
        report: LiveReport,
        max_input_bytes: int | None,
        progress: Progress | None = None,
        reloads: Reloads | None = None,
    ) -> None:
        self.seed = seed
        self.reloads = reloads or Reloads(edges, client_tls, (), random.Random(seed))
        self.progress = progress
        self.edges = edges
        self.ports = {listener: port for edge in edges for listener, port in edge.listeners.items()}
        self.client_tls = client_tls
        self.verdicts = verdicts
        self.report = report
        self.max_input_bytes = max_input_bytes
        self.watch = ProcessWatch(edges, report)
        self._rng = random.Random(seed)
        self._net = random.Random(seed + 1)

    async def check_listeners_answer(self) -> None:
        # Before the run this only says the processes are ready: on a loaded
        # machine a worker may still be starting, so a short round is asked again.
        everyone = f"{PROBES_PER_LISTENER}/{PROBES_PER_LISTENER}"
        for round_ in range(PRE_RUN_PROBE_ROUNDS):
            answered = await probe_all(self.ports, self.client_tls, n=-1 - round_)
            if all(ok == everyone for ok in answered.values()):
                return
            await trio.sleep(PRE_RUN_PROBE_PAUSE)
        raise RuntimeError(f"a listener does not answer before the run: {answered}")

    async def check_bursts(self) -> None:
        """A ping burst on a fresh connection to each stream listener (see
        :func:`~tests.fuzz.keepalives.check_burst`)."""
        rng = random.Random(f"bursts-{self.seed}")
        for listener, port in self.ports.items():
            if listener is Listener.UDP:
                continue
            count = rng.choice(BURST_SIZES)
            problem = await check_burst(listener, port, self.client_tls, count, rng)
            self.report.burst_checks += 1
            if problem is not None:
                self.report.findings.append(problem)

    async def replay(self, reproducers: Sequence[Reproducer]) -> None:
        """Each saved reproducer once, then a look at the processes."""
        sent: list[str] = []
        for reproducer in reproducers:
            port = self.ports.get(reproducer.listener)
            if port is None:
                continue
            mark(self.verdicts, reproducer.data)
            with trio.move_on_after(PROBE_TIMEOUT), contextlib.suppress(*CONNECTION_ERRORS):
                await exchange(reproducer.listener, port, self.client_tls, reproducer.data)
            sent.append(reproducer.name)
        self.report.replayed = len(sent)
        if sent:
            await trio.sleep(REPLAY_SETTLE)
            self.watch.look(0, after="the saved reproducers: " + "; ".join(sent))

    async def send_all(self, count: int, time_limit: float, hook: Hook | None) -> None:
        report = self.report
        listeners = [listener for listener in WEIGHTS if listener in self.ports]
        weights = [WEIGHTS[listener] for listener in listeners]
        deadline = trio.current_time() + time_limit
        async with trio.open_nursery() as nursery:
            datagrams = Datagrams(nursery)
            streams = Streams(nursery, self.ports, self.client_tls)
            for index in range(count):
                if hook is not None:
                    await hook(index, self.edges)
                if self.reloads.due(index):
                    nursery.start_soon(self.reloads.run_one)
                if index % CHECK_EVERY == 0:
                    self.watch.look(index)
                    stop = self._stop_reason(deadline, time_limit)
                    if stop:
                        report.findings.append(f"{stop}: {index:,} of {count:,} inputs sent")
                        break
                if index % RSS_EVERY == 0:
                    self._sample_rss(index)
                if index and index % PROGRESS_EVERY == 0 and self.progress is not None:
                    self.progress(self._progress_line(index))
                listener = self._rng.choices(listeners, weights)[0]
                call_id = f"fz-{self.seed}-{index}"
                if listener is Listener.UDP and self._rng.random() < STUN_SHARE:
                    await self._send_stun(datagrams, call_id)
                elif listener is not Listener.UDP and self._rng.random() < BURST_SHARE:
                    await self._send_burst(streams, listener, call_id)
                else:
                    data, sent = self._next_input(index, listener)
                    self.watch.sent(sent)
                    if listener is Listener.UDP:
                        await self._send_datagram(datagrams, data)
                    else:
                        await self._send_on_stream(streams, listener, data, call_id)
                if index % PACE_EVERY == PACE_EVERY - 1:
                    await trio.sleep(PACE_PAUSE)
            await self.reloads.wait_idle()
            self.watch.look(count)
            report.connections = dict(streams.opened)
            report.connections_refused = dict(streams.open_failed)
            report.proxy_headers = dict(streams.headers)
            report.open_timeouts = dict(streams.open_timeouts)
            report.refused = dict(streams.refused)
            for why, n in streams.not_refused.items():
                report.findings.append(
                    f"{n} connections left open although edgeport must close them: {why}"
                )
            streams.close()
            datagrams.close()
            nursery.cancel_scope.cancel()
        # Once every connection's task has ended: the keep-alive figures and the STUN
        # answers.
        report.ws_keepalives = dict(streams.keepalives)
        report.findings.extend(
            f"more Pongs than Pings on a WebSocket: {line}" for line in streams.too_many_pongs
        )
        ledger = datagrams.stun
        report.stun_sent = dict(ledger.kinds)
        report.stun_answers = dict(ledger.answers)
        if ledger.wrong:
            report.findings.append(f"{ledger.answers['judged wrong']} wrong STUN answers:")
            report.findings.extend(f"  {line}" for line in ledger.wrong)
        reloads = self.reloads
        report.reloads = {
            name: f"{n} SIGHUPs, {reloads.applied[name]} applied by every worker"
            for name, n in reloads.sighups.items()
        }
        report.reload_probes = dict(reloads.probes)
        report.burst_checks += reloads.bursts
        report.findings.extend(reloads.findings)

    def _stop_reason(self, deadline: float, time_limit: float) -> str:
        if trio.current_time() > deadline:
            return f"time limit ({time_limit:,.0f} s) reached"
        if fuzzer_rss_mib() > MAX_FUZZER_RSS_MIB:
            return f"the fuzzer reached its memory bound ({MAX_FUZZER_RSS_MIB} MiB)"
        return ""

    def _progress_line(self, index: int) -> str:
        _, edge_mib, fuzzer_mib = self.report.rss_series[-1]
        return (
            f"  {index:,} inputs, {self.report.bytes_sent / 2**20:,.0f} MiB sent, edgeport "
            f"{edge_mib} MiB, fuzzer {fuzzer_mib} MiB, {len(self.report.findings)} findings"
        )

    def _sample_rss(self, index: int) -> None:
        edge_kib = sum(kib for _, kib in rss_by_process(self.edges).values())
        self.report.rss_peak_kib = max(self.report.rss_peak_kib, edge_kib)
        self.report.rss_series.append((index, edge_kib // 1024, int(fuzzer_rss_mib())))

    def _next_input(self, index: int, listener: Listener) -> tuple[bytes, SentInput]:
        rng = self._rng
        data = generate(rng, f"fz-{self.seed}-{index}")
        datagram = listener is Listener.UDP
        size_class = pick_class(rng, DATAGRAM_WEIGHTS if datagram else STREAM_WEIGHTS)
        size = pick_size(rng, size_class, datagram)
        if size is not None:
            data = resize(rng, data, size)
        elif datagram:
            data = data[:MAX_UDP_PAYLOAD_BYTES]
        if self.max_input_bytes is not None:
            data = data[: self.max_input_bytes]
        report = self.report
        report.sent[listener.value] += 1
        report.inputs_by_kind["sip"] += 1
        report.sizes[f"{'datagram' if datagram else 'stream'} {size_class.value}"] += 1
        if datagram:
            report.largest_datagram = max(report.largest_datagram, len(data))
        else:
            report.largest_stream = max(report.largest_stream, len(data))
        return data, SentInput(index, listener, len(data), size_class)

    async def _send_stun(self, datagrams: Datagrams, call_id: str) -> None:
        """A STUN (or STUN-looking) datagram; the SIP some carry must not reach the
        processor unless it comes after no STUN header and parses."""
        kind, data = generate_stun(self._rng, with_call_id(OPTIONS, call_id))
        if kind == "stun-then-sip":
            self.verdicts.mark(call_id, MALFORMED)
        else:
            mark(self.verdicts, data)
        self.report.sent[Listener.UDP.value] += 1
        self.report.inputs_by_kind["stun"] += 1
        if await datagrams.send(pick_source(self._net), data, self.ports[Listener.UDP], kind):
            self.report.bytes_sent += len(data)
        else:
            self.report.not_delivered[Listener.UDP.value] += 1

    async def _send_burst(self, streams: Streams, listener: Listener, call_id: str) -> None:
        """A burst of keep-alive pings on one of the open connections: CRLF pings, or
        WebSocket Ping frames (the WebSocket Pongs are counted per connection)."""
        count = self._rng.choice(BURST_SIZES)
        self.report.sent[listener.value] += 1
        if not listener.websocket:
            self.report.inputs_by_kind["crlf burst"] += 1
            await self._send_on_stream(streams, listener, CRLF_PING * count, call_id)
            return
        self.report.inputs_by_kind["ws ping burst"] += 1
        payloads = ping_payloads(self._rng, count)
        conn = await streams.connection(listener, self._net)
        if conn is None:
            self.report.not_delivered[listener.value] += 1
            return
        outcome = await conn.send_pings(payloads)
        if outcome == "timeout":
            self.report.send_timeouts[listener.value] += 1
        elif outcome != "sent":
            self.report.not_delivered[listener.value] += 1
            conn.close()

    async def _send_datagram(self, datagrams: Datagrams, data: bytes) -> None:
        mark(self.verdicts, data)
        if await datagrams.send(pick_source(self._net), data, self.ports[Listener.UDP]):
            self.report.bytes_sent += len(data)
        else:
            self.report.not_delivered[Listener.UDP.value] += 1

    async def _send_on_stream(
        self, streams: Streams, listener: Listener, data: bytes, call_id: str
    ) -> None:
        report = self.report
        conn = await streams.connection(listener, self._net)
        if conn is None:
            report.not_delivered[listener.value] += 1
            return
        # Marked before the bytes leave: the processor may see them at once.
        units, breaks = conn.units(data)
        if conn.forced is not None:
            self.verdicts.mark(call_id, conn.forced)
        for unit in units:
            mark(self.verdicts, unit, conn.forced)
        outcome = await conn.send(data, self._net)
        if outcome == "sent":
            report.bytes_sent += len(data)
        elif outcome == "timeout":
            report.send_timeouts[listener.value] += 1
        else:
            report.not_delivered[listener.value] += 1
        if breaks or outcome != "sent" or conn.forced == MALFORMED:
            conn.close()
