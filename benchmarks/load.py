"""Load: the REGISTER and call rates edgeport carries, and what its hop costs over a bare call.

Everything runs as real processes on 127.0.0.1: the built-in processor
(``python -m edgeport builtin-processor``), edgeport (``python -m edgeport
--config FILE``, UDP and TCP on one port) and SIPp with the scenarios in
``benchmarks/load_scenarios/``. In order:

1. REGISTER ramp: ``register.xml`` (one REGISTER, its 200) at rates growing
   geometrically, a few seconds a step, until a rate fails twice in a row.
   A step passes when under 1% of its transactions (calls) failed and the
   last one finished within ``DRAIN_GRACE`` seconds of the step's end (the
   proxy kept up instead of queueing).
2. Latency added by edgeport, at half the highest passing REGISTER rate: a
   paced UDP client in this process sends REGISTERs through edgeport,
   untimed for ``PROBE_WARMUP`` seconds (until edgeport's transaction table
   is what it is at that rate in steady state), then times each
   REGISTER -> 200. (SIPp's own response times come in 4 ms ticks here, too
   coarse for this; they serve the ramp's table and chart.)
3. Call ramp: a SIPp UAS registered as ``callee`` (the REGISTER is sent from
   its port before it starts) and a SIPp UAC placing INVITE / 180 / 200 /
   ACK / BYE / 200 calls through edgeport, ramped the same way.
4. edgeport's resident set (VmRSS, VmHWM), then SIGINT (it drains and exits).
5. The bare hop: edgeport's gRPC client (``open_processor_client``, grpcio
   futures woken through the trio token) sends the MessageRequests edgeport would send for the
   REGISTER and for the six messages of a call straight to the same
   processor, as fast as it can at the concurrency edgeport had at its
   highest REGISTER rate (Little's law: rate x SIPp's mean response time),
   then the REGISTER paced at the rate of step 2. A call is 6 processor
   calls, a REGISTER 1; the ratio compares processor calls per second
   through edgeport with processor calls per second bare, and the added
   latency is the through-edgeport percentile minus the bare one.

With ``taskset`` present, edgeport (and the bare client, which stands in for
it) runs on CPU 0; the processor, SIPp and the latency probe on CPU 1.

Run: ``python -m benchmarks load``. Options come from ``main(argv)`` or, when
it is called without arguments, from ``EDGEPORT_LOAD_ARGS`` (shell words),
e.g. ``EDGEPORT_LOAD_ARGS="--profile /tmp/edgeport.prof"`` (edgeport then
runs under cProfile; SIGINT makes it write the file). Each ramp has its share
of ``TIME_LIMIT``; every child is stopped by its PID in ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import math
import os
import platform
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from edgeport._proto import common_pb2, processor_pb2
from edgeport.convert import to_message_request
from edgeport.sip.parser import parse_message

HERE: Final = Path(__file__).resolve().parent
SCENARIOS: Final = HERE / "load_scenarios"
RESULTS: Final = HERE / "results"

TIME_LIMIT: Final = 400.0  # seconds for the whole run (the budget is 8 minutes)
REGISTER_SHARE: Final = 0.40  # of TIME_LIMIT, from the start, for the REGISTER ramp
CALL_SHARE: Final = 0.80  # of TIME_LIMIT, from the start, until the call ramp ends
STEP_SECONDS: Final = 4.0  # of offered load per ramp step
GROWTH: Final = 1.25  # each step offers this many times the previous rate
REGISTER_START_RATE: Final = 100.0  # REGISTER/s
CALL_START_RATE: Final = 20.0  # calls/s
MAX_STEPS: Final = 24  # per ramp
MAX_FAILED_FRACTION: Final = 0.01
DRAIN_GRACE: Final = 2.0  # seconds after the step's end for its last transaction
RECV_TIMEOUT_MS: Final = 2_000  # SIPp fails a call that waits longer for a message
COOLDOWN: Final = 3.0  # seconds between a failed step and its retry
SETTLE: Final = 5.0  # seconds before the latency probe: queued processor calls time out (3 s)
DRAIN_WAIT: Final = 5.0  # seconds edgeport gets to drain after SIGINT before a second one
PROBE_SECONDS: Final = 15.0  # timed latency probing through edgeport (catches full GCs)
# REGISTERs at the probe rate before timing starts: a UDP non-INVITE server
# transaction lingers 64*T1 = 32 s (Timer J), so after this the table holds what
# it holds at that rate in steady state, and the ramp's leftovers are gone.
PROBE_WARMUP: Final = 34.0  # seconds
BARE_SECONDS: Final = 4.0  # per bare throughput run
MAX_BARE_CONCURRENCY: Final = 64
REGISTER_USERS: Final = 1_000  # distinct AORs the REGISTER load refreshes
CALL_MESSAGES: Final = 6  # INVITE, 180, 200, ACK, BYE, 200: each one processor call
START_TIMEOUT: Final = 15.0  # seconds for a child to come up
STOP_TIMEOUT: Final = 10.0  # seconds for a child to exit after its signal
EDGEPORT_CPU: Final = 0
LOAD_CPU: Final = 1

METHODS: Final = ("REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE")


# -- options ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    step_seconds: float = STEP_SECONDS
    growth: float = GROWTH
    register_start: float = REGISTER_START_RATE
    call_start: float = CALL_START_RATE
    max_steps: int = MAX_STEPS
    probe_seconds: float = PROBE_SECONDS
    probe_warmup: float = PROBE_WARMUP
    bare_seconds: float = BARE_SECONDS
    time_limit: float = TIME_LIMIT
    out_dir: Path = RESULTS
    pin: bool = True
    profile: Path | None = None
    in_process: bool = False


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__)
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS)
    parser.add_argument("--growth", type=float, default=GROWTH)
    parser.add_argument("--register-start", type=float, default=REGISTER_START_RATE)
    parser.add_argument("--call-start", type=float, default=CALL_START_RATE)
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--probe-seconds", type=float, default=PROBE_SECONDS)
    parser.add_argument("--probe-warmup", type=float, default=PROBE_WARMUP)
    parser.add_argument("--bare-seconds", type=float, default=BARE_SECONDS)
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--profile", type=Path, help="run edgeport under cProfile, write the stats here"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="edgeport calls its built-in processor in process (processor.addr: builtin); "
        "the standalone processor still serves the bare hop",
    )
    args = parser.parse_args(list(argv))
    if args.growth <= 1.0 or args.step_seconds <= 0 or not 1 <= args.max_steps <= MAX_STEPS:
        parser.error("--growth must be > 1, --step-seconds > 0, --max-steps 1..24")
    return Options(
        step_seconds=args.step_seconds,
        growth=args.growth,
        register_start=args.register_start,
        call_start=args.call_start,
        max_steps=args.max_steps,
        probe_seconds=args.probe_seconds,
        probe_warmup=args.probe_warmup,
        bare_seconds=args.bare_seconds,
        time_limit=min(args.time_limit, TIME_LIMIT),
        out_dir=args.out_dir,
        pin=not args.no_pin,
        profile=args.profile,
        in_process=args.in_process,
    )


# -- small helpers --------------------------------------------------------------


def free_port(kinds: Sequence[int] = (socket.SOCK_DGRAM, socket.SOCK_STREAM)) -> int:
    """A port free for every socket kind given (bounded attempts)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kinds[0]) as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            try:
                for kind in kinds[1:]:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def crlf(text: str) -> bytes:
    """Literal SIP text written with newlines -> wire bytes with CRLF."""
    return text.replace("\n", "\r\n").encode()


class Pinning:
    """``taskset`` prefixes and this process's own affinity, or nothing when unpinned."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and shutil.which("taskset") is not None and os.cpu_count() != 1
        self._own = os.sched_getaffinity(0)

    def prefix(self, cpu: int) -> list[str]:
        return ["taskset", "-c", str(cpu)] if self.enabled else []

    @contextlib.contextmanager
    def this_process_on(self, cpu: int) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        os.sched_setaffinity(0, {cpu})
        try:
            yield
        finally:
            os.sched_setaffinity(0, self._own)

    def describe(self) -> str:
        if not self.enabled:
            return "not pinned"
        return (
            f"pinned with taskset: edgeport and the bare client on CPU {EDGEPORT_CPU}; "
            f"processor, SIPp and the latency probe on CPU {LOAD_CPU}"
        )


class Children:
    """The child processes of one run; each is stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in the work directory (``env``: its whole environment)."""
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the child
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        finally:
            log.close()  # the child holds its own descriptor
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        """Signal one child, wait for it, kill it when it does not exit; its exit code."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        return proc.returncode

    def stop_gracefully(self, proc: subprocess.Popen[bytes], sig: int) -> str:
        """``sig``, up to ``DRAIN_WAIT`` s to exit, then ``sig`` again (stop at once), then kill."""
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout=DRAIN_WAIT)
        except subprocess.TimeoutExpired:
            code = self.stop(proc, sig)
            return f"still draining {DRAIN_WAIT:g} s after SIGINT; exit {code} after a second one"
        self.stop(proc)
        return f"exit {code} within {DRAIN_WAIT:g} s of SIGINT"

    def stop_all(self) -> None:
        for _, proc in reversed(list(self._procs)):
            self.stop(proc)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- the system under test --------------------------------------------------------


@dataclass
class Stack:
    edge_port: int
    processor_port: int
    edgeport: subprocess.Popen[bytes]
    processor: subprocess.Popen[bytes]

    @property
    def processor_addr(self) -> str:
        return f"127.0.0.1:{self.processor_port}"


def write_config(path: Path, edge_port: int, processor_addr: str) -> None:
    methods = ", ".join(METHODS)
    path.write_text(
        "kind: EdgePort\n"
        "apiVersion: v2beta1\n"
        "ref: bench\n"
        "spec:\n"
        "  bindAddr: 127.0.0.1\n"
        "  transport:\n"
        f"    - protocol: udp\n      port: {edge_port}\n"
        f"    - protocol: tcp\n      port: {edge_port}\n"
        f"  methods: [{methods}]\n"
        "  processor:\n"
        f"    addr: {processor_addr}\n"
    )


def wait_tcp(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"processor exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on TCP {port}")


def sip_exchange(sock: socket.socket, port: int, message: bytes, deadline: float) -> bytes | None:
    """Send one UDP message to edgeport and return the first reply (None at the deadline)."""
    sock.sendto(message, ("127.0.0.1", port))
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(min(left, 0.5))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None
    return None


def wait_edgeport(edge_port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Ask OPTIONS until edgeport answers (through the processor) or the deadline passes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        attempt = 0
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"edgeport exited with {proc.returncode}")
            attempt += 1
            options = crlf(
                f"OPTIONS sip:127.0.0.1:{edge_port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-ready{attempt};rport\n"
                "Max-Forwards: 70\n"
                f"From: <sip:bench@127.0.0.1>;tag=ready{attempt}\n"
                f"To: <sip:127.0.0.1:{edge_port}>\n"
                f"Call-ID: ready-{attempt}@127.0.0.1\n"
                "CSeq: 1 OPTIONS\n"
                "Content-Length: 0\n\n"
            )
            reply = sip_exchange(sock, edge_port, options, min(deadline, time.monotonic() + 0.5))
            if reply is not None and reply.startswith(b"SIP/2.0 200"):
                return
            time.sleep(0.1)
    raise RuntimeError("edgeport did not answer OPTIONS with 200")


def start_processor(
    children: Children,
    pinning: Pinning,
    deadline: float,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> tuple[int, subprocess.Popen[bytes]]:
    """The built-in processor alone on a free port (on LOAD_CPU), once it accepts connections."""
    port = free_port((socket.SOCK_STREAM,))
    processor = children.start(
        "processor",
        [
            *pinning.prefix(LOAD_CPU),
            *(python, "-m", "edgeport", "--log-level", "warning"),
            *("builtin-processor", "--bind", f"127.0.0.1:{port}"),
        ],
        env=env,
    )
    wait_tcp(port, processor, deadline)
    return port, processor


def start_stack(children: Children, pinning: Pinning, workdir: Path, opts: Options) -> Stack:
    edge_port = free_port()
    deadline = time.monotonic() + START_TIMEOUT
    processor_port, processor = start_processor(children, pinning, deadline)
    config = workdir / "edgeport.yaml"
    write_config(config, edge_port, "builtin" if opts.in_process else f"127.0.0.1:{processor_port}")
    profiler: list[str] = []
    if opts.profile is not None:
        profiler = ["-m", "cProfile", "-o", str(opts.profile.resolve())]
    edgeport = children.start(
        "edgeport",
        [
            *pinning.prefix(EDGEPORT_CPU),
            sys.executable,
            *profiler,
            "-m",
            "edgeport",
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
    )
    wait_edgeport(edge_port, edgeport, deadline)
    return Stack(edge_port, processor_port, edgeport, processor)


def register_from(port: int, user: str, edge_port: int) -> None:
    """REGISTER ``user`` with Contact 127.0.0.1:port, sent from that port (so no NAT Route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        register = crlf(
            f"REGISTER sip:127.0.0.1:{edge_port} SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{user}-reg;rport\n"
            "Max-Forwards: 70\n"
            f"From: <sip:{user}@127.0.0.1>;tag={user}-reg\n"
            f"To: <sip:{user}@127.0.0.1>\n"
            f"Call-ID: {user}-reg@127.0.0.1\n"
            "CSeq: 1 REGISTER\n"
            f"Contact: <sip:{user}@127.0.0.1:{port}>\n"
            "Expires: 3600\n"
            "Content-Length: 0\n\n"
        )
        reply = sip_exchange(sock, edge_port, register, time.monotonic() + 5.0)
    if reply is None or not reply.startswith(b"SIP/2.0 200"):
        raise RuntimeError(f"REGISTER of {user} failed: {reply[:40] if reply else 'no reply'!r}")


# -- SIPp steps ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "register" or "call"
    rate: float  # offered, per second
    attempted: int
    succeeded: int
    failed: int
    seconds: float  # from SIPp's start to its exit
    p50_ms: float | None  # SIPp response time 1 (REGISTER -> 200, INVITE -> 200)
    p99_ms: float | None
    mean_ms: float | None
    edgeport_cpu: float  # share of one CPU during the step
    processor_cpu: float
    passed: bool

    @property
    def failed_fraction(self) -> float:
        return self.failed / self.attempted if self.attempted else 1.0


def read_stat(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as stat:
        rows = list(csv.reader(stat, delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def read_rtt(workdir: Path, scenario: str, pid: int) -> list[float]:
    """Response time 1 of every call, ms (SIPp writes ``<scenario>_<pid>_rtt.csv``)."""
    path = workdir / f"{scenario}_{pid}_rtt.csv"
    if not path.exists():
        return []
    values: list[float] = []
    with path.open(newline="") as rtt:
        for row in csv.reader(rtt, delimiter=";"):
            if len(row) >= 3 and row[2].strip() == "1":
                with contextlib.suppress(ValueError):
                    values.append(float(row[1]))
    path.unlink()
    return values


@dataclass
class Load:
    """Runs SIPp UAC steps against one edgeport."""

    children: Children
    pinning: Pinning
    workdir: Path
    stack: Stack
    opts: Options
    steps: list[Step] = field(default_factory=list)

    def users_file(self) -> Path:
        path = self.workdir / "users.csv"
        if not path.exists():
            lines = ["SEQUENTIAL"] + [f"bench{n}" for n in range(REGISTER_USERS)]
            path.write_text("\n".join(lines) + "\n")
        return path

    def run(self, kind: str, rate: float) -> Step:
        seconds = self.opts.step_seconds
        calls = max(1, round(rate * seconds))
        scenario = "register" if kind == "register" else "uac_call"
        stat = self.workdir / f"{kind}_{rate:.0f}_stat.csv"
        stat.unlink(missing_ok=True)
        hard_limit = seconds + DRAIN_GRACE + RECV_TIMEOUT_MS / 1000 + 3
        command = [
            *self.pinning.prefix(LOAD_CPU),
            "sipp",
            f"127.0.0.1:{self.stack.edge_port}",
            "-sf",
            str(SCENARIOS / f"{scenario}.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port((socket.SOCK_DGRAM,))),
            "-r",
            f"{rate:.2f}",
            "-m",
            str(calls),
            "-l",
            "20000",
            "-nd",  # no default BYE/CANCEL for a failed call: it would add load
            "-nostdin",
            "-recv_timeout",
            str(RECV_TIMEOUT_MS),
            "-timeout",
            f"{math.ceil(hard_limit)}s",
            "-trace_stat",
            "-fd",
            "1",
            "-stf",
            str(stat),
            "-trace_rtt",
            "-rtt_freq",
            "1",
        ]
        if kind == "register":
            command += ["-inf", str(self.users_file())]
        else:
            command += ["-s", "callee"]
        pids = (self.stack.edgeport.pid, self.stack.processor.pid)
        cpu_before = [cpu_seconds(pid) for pid in pids]
        started = time.monotonic()
        proc = self.children.start(f"sipp_{kind}", command)
        try:
            proc.wait(timeout=hard_limit + 5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.children.stop(proc)
        elapsed = time.monotonic() - started
        cpu = [
            (cpu_seconds(pid) - before) / elapsed
            for pid, before in zip(pids, cpu_before, strict=True)
        ]
        values = read_stat(stat)
        attempted = int(values.get("TotalCallCreated", "0") or 0)
        succeeded = int(values.get("SuccessfulCall(C)", "0") or 0)
        failed = max(calls, attempted) - succeeded  # calls never placed count as failed
        rtts = sorted(read_rtt(self.workdir, scenario, proc.pid))
        step = Step(
            kind=kind,
            rate=rate,
            attempted=max(calls, attempted),
            succeeded=succeeded,
            failed=failed,
            seconds=elapsed,
            p50_ms=percentile(rtts, 0.50) if rtts else None,
            p99_ms=percentile(rtts, 0.99) if rtts else None,
            mean_ms=statistics.fmean(rtts) if rtts else None,
            edgeport_cpu=cpu[0],
            processor_cpu=cpu[1],
            passed=False,
        )
        passed = (
            step.failed_fraction < MAX_FAILED_FRACTION and elapsed <= seconds + DRAIN_GRACE + 0.5
        )
        step = dataclasses.replace(step, passed=passed)
        self.steps.append(step)
        mark = "ok" if passed else "FAIL"
        p50 = f"{step.p50_ms:.0f}" if step.p50_ms is not None else "-"
        p99 = f"{step.p99_ms:.0f}" if step.p99_ms is not None else "-"
        print(
            f"   {kind:8} {rate:7.1f}/s  {succeeded:6}/{step.attempted:<6} ok  "
            f"{100 * step.failed_fraction:5.1f}% failed  {elapsed:5.1f} s  "
            f"rtt p50 {p50} ms p99 {p99} ms  cpu edgeport {100 * step.edgeport_cpu:3.0f}% "
            f"processor {100 * step.processor_cpu:3.0f}%  {mark}",
            flush=True,
        )
        return step

    def ramp(self, kind: str, start: float, until: float) -> Step | None:
        """The highest passing step, growing the rate until a step fails twice in a row.

        No step starts unless it and a retry can end before ``until`` (monotonic).
        """
        best: Step | None = None
        rate = start
        per_step = self.opts.step_seconds + DRAIN_GRACE + RECV_TIMEOUT_MS / 1000 + 2
        for _ in range(self.opts.max_steps):
            if time.monotonic() + 2 * per_step + COOLDOWN > until:
                print(f"   {kind}: time budget reached, ramp stopped")
                break
            step = self.run(kind, rate)
            if not step.passed:
                time.sleep(COOLDOWN)  # let queued work and retransmissions drain
                step = self.run(kind, rate)
                if not step.passed:
                    break
            best = step
            rate *= self.opts.growth
        return best


# -- latency probe through edgeport ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    rate: float
    sent: int
    samples: list[float]  # seconds, sorted
    lost: int

    def p(self, fraction: float) -> float:
        return percentile(self.samples, fraction) if self.samples else math.nan


def probe_register_latency(edge_port: int, rate: float, seconds: float, warmup: float) -> Latency:
    """REGISTERs paced at ``rate`` through edgeport; the time from send to its 200.

    Only those sent after ``warmup`` seconds are timed (and counted as lost
    when no 200 comes back).
    """
    sent_at: dict[bytes, int] = {}
    samples: list[float] = []
    sent = 0
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        selectors.DefaultSelector() as sel,
    ):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        local = sock.getsockname()[1]
        sel.register(sock, selectors.EVENT_READ)
        interval = 1.0 / rate
        start = time.perf_counter()
        timed_from = start + warmup
        end = timed_from + seconds
        next_send = start
        n = 0
        last_reply = end + 2.0

        def drain() -> None:
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    return
                now = time.perf_counter_ns()
                if not data.startswith(b"SIP/2.0 200"):
                    continue
                marker = data.find(b"Call-ID: ")
                call_id = data[marker + 9 : data.find(b"\r\n", marker)]
                began = sent_at.pop(call_id, None)
                if began is not None:
                    samples.append((now - began) / 1e9)

        while (now := time.perf_counter()) < last_reply:
            if now < end and now >= next_send:
                user = f"probe{n % 100}"
                call_id = f"probe-{n}@127.0.0.1"
                n += 1
                message = crlf(
                    f"REGISTER sip:127.0.0.1:{edge_port} SIP/2.0\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-probe{n};rport\n"
                    "Max-Forwards: 70\n"
                    f"From: <sip:{user}@127.0.0.1>;tag=probe{n}\n"
                    f"To: <sip:{user}@127.0.0.1>\n"
                    f"Call-ID: {call_id}\n"
                    "CSeq: 1 REGISTER\n"
                    f"Contact: <sip:{user}@127.0.0.1:{local}>\n"
                    "Expires: 3600\n"
                    "Content-Length: 0\n\n"
                )
                if now >= timed_from:
                    sent_at[call_id.encode()] = time.perf_counter_ns()
                    sent += 1
                sock.sendto(message, ("127.0.0.1", edge_port))
                next_send += interval
                continue
            if now >= end and not sent_at:
                break
            wait = (next_send if now < end else last_reply) - now
            if sel.select(max(0.0, min(wait, 0.05))):
                drain()
    samples.sort()
    return Latency(rate, sent, samples, lost=len(sent_at))


# -- the bare processor hop ---------------------------------------------------------


def bare_messages(
    edge_port: int,
) -> tuple[processor_pb2.MessageRequest, list[processor_pb2.MessageRequest]]:
    """The REGISTER and the six messages of a call, as edgeport would send them.

    Literal SIP text as it reaches edgeport from the SIPp caller (port 5071)
    and callee (port 5072), converted with edgeport's own parser and
    conversion, with edgeport's listening points (so the processor sees
    itself addressed and routes exactly as under load).
    """
    uac, uas = 5071, 5072
    sdp = "v=0\no=x 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0\n"
    sdp_bytes = len(crlf(sdp))
    edge_via = f"Via: SIP/2.0/UDP 127.0.0.1:{edge_port};branch=z9hG4bKbare0edge;rport\n"
    uac_via = (
        f"Via: SIP/2.0/UDP 127.0.0.1:{uac};branch=z9hG4bK-bare-{{}};rport={uac};"
        "received=127.0.0.1\n"
    )
    record_route = f"Record-Route: <sip:127.0.0.1:{edge_port};transport=udp;lr>\n"
    dialog = (
        f"From: <sip:caller@127.0.0.1:{uac}>;tag=bare-uac\n"
        f"To: <sip:callee@127.0.0.1:{edge_port}>{{}}\n"
        "Call-ID: bare-call@127.0.0.1\n"
    )
    texts = {
        "register": (
            f"REGISTER sip:127.0.0.1:{edge_port} SIP/2.0\n"
            f"{uac_via.format('reg')}"
            "Max-Forwards: 70\n"
            "From: <sip:bench0@127.0.0.1>;tag=bare-reg\n"
            "To: <sip:bench0@127.0.0.1>\n"
            "Call-ID: bare-reg@127.0.0.1\n"
            "CSeq: 1 REGISTER\n"
            f"Contact: <sip:bench0@127.0.0.1:{uac}>\n"
            "Expires: 3600\n"
            "Content-Length: 0\n\n"
        ),
        "invite": (
            f"INVITE sip:callee@127.0.0.1:{edge_port} SIP/2.0\n"
            f"{uac_via.format('inv')}"
            "Max-Forwards: 70\n"
            f"{dialog.format('')}"
            "CSeq: 1 INVITE\n"
            f"Contact: <sip:caller@127.0.0.1:{uac}>\n"
            "Content-Type: application/sdp\n"
            f"Content-Length: {sdp_bytes}\n\n{sdp}"
        ),
        "180": (
            "SIP/2.0 180 Ringing\n"
            f"{edge_via}{uac_via.format('inv')}{record_route}"
            f"{dialog.format(';tag=bare-uas')}"
            "CSeq: 1 INVITE\n"
            f"Contact: <sip:callee@127.0.0.1:{uas}>\n"
            "Content-Length: 0\n\n"
        ),
        "200-invite": (
            "SIP/2.0 200 OK\n"
            f"{edge_via}{uac_via.format('inv')}{record_route}"
            f"{dialog.format(';tag=bare-uas')}"
            "CSeq: 1 INVITE\n"
            f"Contact: <sip:callee@127.0.0.1:{uas}>\n"
            "Content-Type: application/sdp\n"
            f"Content-Length: {sdp_bytes}\n\n{sdp}"
        ),
        "ack": (
            f"ACK sip:callee@127.0.0.1:{uas} SIP/2.0\n"
            f"{uac_via.format('ack')}"
            "Max-Forwards: 70\n"
            f"Route: <sip:127.0.0.1:{edge_port};transport=udp;lr>\n"
            f"{dialog.format(';tag=bare-uas')}"
            "CSeq: 1 ACK\n"
            f"Contact: <sip:caller@127.0.0.1:{uac}>\n"
            "Content-Length: 0\n\n"
        ),
        "bye": (
            f"BYE sip:callee@127.0.0.1:{uas} SIP/2.0\n"
            f"{uac_via.format('bye')}"
            "Max-Forwards: 70\n"
            f"Route: <sip:127.0.0.1:{edge_port};transport=udp;lr>\n"
            f"{dialog.format(';tag=bare-uas')}"
            "CSeq: 2 BYE\n"
            f"Contact: <sip:caller@127.0.0.1:{uac}>\n"
            "Content-Length: 0\n\n"
        ),
        "200-bye": (
            "SIP/2.0 200 OK\n"
            f"{edge_via}{uac_via.format('bye')}"
            f"{dialog.format(';tag=bare-uas')}"
            "CSeq: 2 BYE\n"
            "Content-Length: 0\n\n"
        ),
    }
    listening_points = [
        processor_pb2.NetInterface(host="127.0.0.1", port=edge_port, transport=common_pb2.UDP),
        processor_pb2.NetInterface(host="127.0.0.1", port=edge_port, transport=common_pb2.TCP),
    ]

    def convert(name: str) -> processor_pb2.MessageRequest:
        peer = uas if name in ("180", "200-invite", "200-bye") else uac
        sender = processor_pb2.NetInterface(host="127.0.0.1", port=peer, transport=common_pb2.UDP)
        return to_message_request(
            parse_message(crlf(texts[name])),
            sender=sender,
            edge_port_ref="bench",
            listening_points=listening_points,
            external_addrs=[],
            localnets=["127.0.0.0/8"],  # as edgeport sends them: the call stays inside
        )

    call = [convert(name) for name in ("invite", "180", "200-invite", "ack", "bye", "200-bye")]
    return convert("register"), call


@dataclass(frozen=True, slots=True)
class BareRun:
    calls: int
    errors: int
    seconds: float
    samples: list[float]  # seconds, sorted

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def run_bare(
    addr: str,
    register: processor_pb2.MessageRequest,
    call: list[processor_pb2.MessageRequest],
    *,
    concurrency: int,
    seconds: float,
    paced_rate: float,
) -> tuple[BareRun, BareRun, BareRun]:
    """(REGISTER flat out, call messages flat out, REGISTER paced at ``paced_rate``)."""
    import trio

    from edgeport.processor import GrpcProcessorClient, ProcessorError, open_processor_client

    async def flat_out(
        client: GrpcProcessorClient, requests: list[processor_pb2.MessageRequest]
    ) -> BareRun:
        samples: list[float] = []
        errors = 0
        start = time.perf_counter()
        end = start + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            n = offset
            while time.perf_counter() < end:
                began = time.perf_counter()
                try:
                    await client.process(requests[n % len(requests)])
                except ProcessorError:
                    errors += 1
                samples.append(time.perf_counter() - began)
                n += 1

        async with trio.open_nursery() as nursery:
            for offset in range(concurrency):
                nursery.start_soon(worker, offset)
        elapsed = time.perf_counter() - start
        samples.sort()
        return BareRun(len(samples) - errors, errors, elapsed, samples)

    async def paced(client: GrpcProcessorClient) -> BareRun:
        samples: list[float] = []
        errors = 0
        limiter = trio.CapacityLimiter(MAX_BARE_CONCURRENCY * 4)

        async def one() -> None:
            nonlocal errors
            async with limiter:
                began = time.perf_counter()
                try:
                    await client.process(register)
                except ProcessorError:
                    errors += 1
                    return
                samples.append(time.perf_counter() - began)

        total = max(1, round(paced_rate * seconds))
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for n in range(total):
                await trio.sleep_until(start + n / paced_rate)
                nursery.start_soon(one)
        samples.sort()
        return BareRun(len(samples), errors, trio.current_time() - start, samples)

    async def measure() -> tuple[BareRun, BareRun, BareRun]:
        async with open_processor_client(addr) as client:
            checks = [await client.process(register)] + [await client.process(m) for m in call]
            kinds = [reply.message.WhichOneof("message_type") for reply in checks]
            # REGISTER answered 200; INVITE, ACK and BYE forwarded; responses passed on.
            expected = ["response_type", "request_uri", "response_type"]
            expected += ["response_type", "request_uri", "request_uri", "response_type"]
            if kinds != expected or checks[0].message.response_type != _ok_type():
                raise RuntimeError(f"bare processor replies are not the routed ones: {kinds}")
            for _ in range(200):  # warm up the channel and both interpreters
                await client.process(register)
            flat_register = await flat_out(client, [register])
            flat_call = await flat_out(client, call)
            latency = await paced(client)
            return flat_register, flat_call, latency

    return trio.run(measure)


def _ok_type() -> int:
    from edgeport._proto import sipmessage_pb2

    return int(sipmessage_pb2.ResponseType.OK)


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    max_register: Step | None
    max_call: Step | None
    bare_register: BareRun | None
    bare_call: BareRun | None
    bare_latency: BareRun | None
    probe: Latency | None
    concurrency: int
    rss_kib: int
    hwm_kib: int
    edgeport_stop: str
    pinning: str
    steps: list[Step]
    wall_seconds: float


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.2f}"


def table_rows(s: Summary) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    reg = s.max_register.rate if s.max_register else None
    calls = s.max_call.rate if s.max_call else None
    rows.append(("max REGISTER/s through edgeport (<1% failed)", f"{reg:.0f}" if reg else "-"))
    rows.append(("max calls/s through edgeport (<1% failed)", f"{calls:.0f}" if calls else "-"))
    if calls:
        rows.append(
            ("  = processor calls/s for calls (6 per call)", f"{calls * CALL_MESSAGES:.0f}")
        )
    if s.bare_register:
        rows.append(
            (
                f"bare processor calls/s, REGISTER (concurrency {s.concurrency})",
                f"{s.bare_register.per_second:.0f}",
            )
        )
    if s.bare_call:
        rows.append(
            (
                f"bare processor calls/s, call messages (concurrency {s.concurrency})",
                f"{s.bare_call.per_second:.0f}",
            )
        )
    if reg and s.bare_register:
        rows.append(("ratio edgeport / bare, REGISTER", f"{reg / s.bare_register.per_second:.2f}"))
    if calls and s.bare_call:
        ratio = calls * CALL_MESSAGES / s.bare_call.per_second
        rows.append(("ratio edgeport / bare, calls (6 messages each)", f"{ratio:.2f}"))
    if s.probe and s.bare_latency and s.probe.samples and s.bare_latency.samples:
        bare = s.bare_latency.samples
        for label, q in (("p50", 0.50), ("p99", 0.99)):
            through = s.probe.p(q)
            direct = percentile(bare, q)
            rows.append(
                (
                    f"REGISTER {label} at {s.probe.rate:.0f}/s: through edgeport / bare call, ms",
                    f"{fmt_ms(through)} / {fmt_ms(direct)}",
                )
            )
            rows.append((f"latency added by edgeport, {label}, ms", fmt_ms(through - direct)))
        rows.append(("latency probe: REGISTERs lost", f"{s.probe.lost} of {s.probe.sent}"))
    for label, step in (("REGISTER", s.max_register), ("call", s.max_call)):
        if step is not None:
            rows.append(
                (
                    f"CPU at the max {label} step: edgeport / processor (one core = 100%)",
                    f"{100 * step.edgeport_cpu:.0f}% / {100 * step.processor_cpu:.0f}%",
                )
            )
    rows.append(("edgeport stop", s.edgeport_stop))
    rows.append(
        (
            "edgeport VmRSS at the end (peak VmHWM), MiB",
            f"{s.rss_kib / 1024:.1f} ({s.hwm_kib / 1024:.1f})",
        )
    )
    return rows


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
    sipp_version = next((ln.strip() for ln in sipp.stdout.splitlines() if "SIPp" in ln), "?")
    return [
        f"nproc: {os.cpu_count()}",
        f"CPU: {model}",
        f"Python: {platform.python_version()} ({sys.implementation.name})",
        f"SIPp: {sipp_version}",
        f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def method_notes(opts: Options) -> list[str]:
    where = (
        "edgeport called the built-in processor in process (processor.addr: builtin)"
        if opts.in_process
        else "edgeport called the built-in processor over gRPC, in its own process"
    )
    return [
        f"Processor: {where}.",
        f"Ramp: SIPp offers a fixed rate for {opts.step_seconds:g} s per step, "
        f"x{opts.growth:g} per step; a step passes with under 1% failed transactions "
        "(REGISTER) or calls (INVITE/180/200/ACK/BYE/200) and its last one finished within "
        f"{DRAIN_GRACE:g} s of the step's end. A failed step is retried once after "
        f"{COOLDOWN:g} s; the ramp stops at the second failure. Response times in the step "
        "table and chart are SIPp's (REGISTER -> 200, INVITE -> 200), in 4 ms ticks (0 = "
        "under one tick); CPU is "
        "the share of one core each process used during the step (/proc/<pid>/stat).",
        "Bare: edgeport's grpcio client (edgeport.processor.open_processor_client) "
        "sends the MessageRequests edgeport would send (literal SIP converted with "
        "edgeport.convert.to_message_request) to the same built-in processor, flat out, at the "
        "concurrency edgeport had at its max REGISTER rate (rate x SIPp mean response time, "
        "Little's law). Ratio = processor calls/s through edgeport (REGISTER: 1 each; call: "
        "6 each) / bare processor calls/s.",
        "Added latency: after the REGISTER ramp (and a "
        f"{SETTLE:g} s pause), a paced UDP client in the benchmark process sends REGISTERs "
        f"through edgeport at half the max REGISTER rate, {opts.probe_warmup:g} s untimed (so "
        "edgeport holds the 32 s of lingering UDP transactions it holds at that rate in steady "
        f"state), then times REGISTER -> 200 for {opts.probe_seconds:g} s (SIPp's 4 ms ticks "
        "are too coarse for this); later the bare client sends the REGISTER MessageRequest "
        "straight to the "
        "processor paced at the same rate. Added = percentile through edgeport - the same "
        "percentile bare (a difference of percentiles, not a percentile of differences).",
    ]


def render_table(s: Summary) -> str:
    rows = table_rows(s)
    width = max(len(label) for label, _ in rows)
    lines = [f"{'measure':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def render_markdown(s: Summary, opts: Options) -> str:
    out = ["# edgeport load benchmark", "", "`python -m benchmarks load`", ""]
    out += ["| measure | value |", "|---|---|"]
    out += [f"| {label.strip()} | {value} |" for label, value in table_rows(s)]
    out += ["", "## Machine", ""]
    out += [f"- {line}" for line in machine()]
    out += [f"- {s.pinning}", f"- run took {s.wall_seconds:.0f} s", ""]
    out += ["## Method", ""]
    out += [f"- {note}" for note in method_notes(opts)]
    out += ["", "## Steps", ""]
    out += [
        "| load | offered/s | ok | failed | p50 ms | p99 ms | CPU edgeport | CPU processor | pass |"
    ]
    out += ["|---|---|---|---|---|---|---|---|---|"]
    for st in s.steps:
        p50 = f"{st.p50_ms:.0f}" if st.p50_ms is not None else "-"
        p99 = f"{st.p99_ms:.0f}" if st.p99_ms is not None else "-"
        out.append(
            f"| {st.kind} | {st.rate:.1f} | {st.succeeded} | {st.failed} "
            f"({100 * st.failed_fraction:.1f}%) | {p50} | {p99} | {100 * st.edgeport_cpu:.0f}% "
            f"| {100 * st.processor_cpu:.0f}% | {'yes' if st.passed else 'no'} |"
        )
    out += ["", "![rate vs latency](chart.svg)", ""]
    return "\n".join(out)


FLOOR_MS: Final = 1.0  # SIPp reports under one tick as 0; a log scale draws it here


def render_svg(steps: Sequence[Step]) -> str:
    """Two panels (REGISTER, calls): offered rate vs SIPp p50 / p99 response time, log scales."""
    width, height = 900, 380
    panel_w, panel_h = 360, 260
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="450" y="22" text-anchor="middle" font-size="14">'
        "edgeport: offered rate vs SIPp response time (log-log; hollow = failed step; "
        "0 ms ticks drawn at 1 ms)</text>",
    ]
    panels = (
        ("register", "REGISTER/s", "REGISTER -&gt; 200, ms", 70),
        ("call", "calls/s", "INVITE -&gt; 200, ms", 520),
    )
    for kind, x_label, y_label, left in panels:
        # A retried rate is drawn once, with its last attempt.
        last = {s.rate: s for s in steps if s.kind == kind and s.p50_ms is not None}
        points = [last[rate] for rate in sorted(last)]
        top = 50
        parts.append(
            f'<rect x="{left}" y="{top}" width="{panel_w}" height="{panel_h}" '
            'fill="none" stroke="#444"/>'
        )
        parts.append(
            f'<text x="{left + panel_w / 2}" y="{top + panel_h + 38}" '
            f'text-anchor="middle">{x_label} (offered)</text>'
        )
        parts.append(
            f'<text x="{left - 48}" y="{top + panel_h / 2}" text-anchor="middle" '
            f'transform="rotate(-90 {left - 48} {top + panel_h / 2})">{y_label}</text>'
        )
        if not points:
            parts.append(f'<text x="{left + 20}" y="{top + 30}">no data</text>')
            continue
        rates = [s.rate for s in points]
        ys = [max(v or 0.0, FLOOR_MS) for s in points for v in (s.p50_ms, s.p99_ms)]
        x_lo, x_hi = math.log10(min(rates)) - 0.05, math.log10(max(rates)) + 0.05
        y_lo = math.floor(math.log10(min(ys)))
        y_hi = max(math.ceil(math.log10(max(ys))), y_lo + 1)

        def x_of(rate: float, lo: float = x_lo, hi: float = x_hi, at: int = left) -> float:
            return at + (math.log10(rate) - lo) / (hi - lo) * panel_w

        def y_of(ms: float, lo: int = y_lo, hi: int = y_hi, at: int = top) -> float:
            return at + panel_h - (math.log10(max(ms, FLOOR_MS)) - lo) / (hi - lo) * panel_h

        for decade in range(y_lo, y_hi + 1):
            y = y_of(10.0**decade)
            parts.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{left + panel_w}" y2="{y:.1f}" stroke="#ddd"/>'
            )
            parts.append(
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{10.0**decade:g}</text>'
            )
        for rate in sorted(set(rates))[:: max(1, len(set(rates)) // 6)]:
            x = x_of(rate)
            parts.append(
                f'<line x1="{x:.1f}" y1="{top + panel_h}" x2="{x:.1f}" '
                f'y2="{top + panel_h + 5}" stroke="#444"/>'
            )
            parts.append(
                f'<text x="{x:.1f}" y="{top + panel_h + 18}" text-anchor="middle">{rate:.0f}</text>'
            )
        for label, colour in (("p50", "#1f77b4"), ("p99", "#d62728")):
            values = [s.p50_ms if label == "p50" else s.p99_ms for s in points]
            coords = [
                (x_of(s.rate), y_of(v or FLOOR_MS), s.passed)
                for s, v in zip(points, values, strict=True)
            ]
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            parts.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
            for x, y, passed in coords:
                fill = colour if passed else "white"
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" stroke="{colour}"/>'
                )
            offset = 16 if label == "p50" else 32
            parts.append(f'<text x="{left + 10}" y="{top + offset}" fill="{colour}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- the run -------------------------------------------------------------------------


def start_uas(
    children: Children, pinning: Pinning, edge_port: int, opts: Options
) -> subprocess.Popen[bytes]:
    """Register ``callee`` from a free port, then start the SIPp UAS on that port."""
    uas_port = free_port((socket.SOCK_DGRAM,))
    register_from(uas_port, "callee", edge_port)
    uas = children.start(
        "sipp_uas",
        [
            *pinning.prefix(LOAD_CPU),
            "sipp",
            "-sf",
            str(SCENARIOS / "uas_call.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(uas_port),
            "-nd",
            "-nostdin",
            "-timeout",
            f"{math.ceil(opts.time_limit)}s",
        ],
    )
    time.sleep(0.5)
    if uas.poll() is not None:
        raise RuntimeError("SIPp UAS exited:\n" + children.log_tail("sipp_uas"))
    return uas


def run(opts: Options) -> Summary:
    started = time.monotonic()
    pinning = Pinning(opts.pin)
    print(f"   {pinning.describe()}", flush=True)
    probe: Latency | None = None
    concurrency = 1
    with tempfile.TemporaryDirectory(prefix="edgeport-load-") as tmp:
        workdir = Path(tmp)
        children = Children(workdir)
        try:
            stack = start_stack(children, pinning, workdir, opts)
            load = Load(children, pinning, workdir, stack, opts)
            print("-- REGISTER ramp", flush=True)
            until = started + REGISTER_SHARE * opts.time_limit
            max_register = load.ramp("register", opts.register_start, until)

            if max_register is not None:
                mean_s = (max_register.mean_ms or 1.0) / 1000
                concurrency = max(
                    1, min(MAX_BARE_CONCURRENCY, math.ceil(max_register.rate * mean_s))
                )
                rate = max_register.rate / 2
                print(f"-- REGISTER latency through edgeport at {rate:.0f}/s", flush=True)
                time.sleep(SETTLE)  # the failed steps' queued work times out first
                with pinning.this_process_on(LOAD_CPU):
                    probe = probe_register_latency(
                        stack.edge_port, rate, opts.probe_seconds, opts.probe_warmup
                    )

            print("-- call ramp", flush=True)
            uas = start_uas(children, pinning, stack.edge_port, opts)
            until = started + CALL_SHARE * opts.time_limit
            max_call = load.ramp("call", opts.call_start, until)

            rss, hwm = rss_kib(stack.edgeport.pid)
            edgeport_stop = children.stop_gracefully(stack.edgeport, signal.SIGINT)
            print(f"   edgeport: {edgeport_stop}", flush=True)
            children.stop(uas)

            print(f"-- bare processor calls, concurrency {concurrency}", flush=True)
            register, call = bare_messages(stack.edge_port)
            paced_rate = probe.rate if probe else opts.register_start / 2
            with pinning.this_process_on(EDGEPORT_CPU):
                bare_register, bare_call, bare_latency = run_bare(
                    stack.processor_addr,
                    register,
                    call,
                    concurrency=concurrency,
                    seconds=opts.bare_seconds,
                    paced_rate=paced_rate,
                )
        finally:
            children.stop_all()
        return Summary(
            max_register=max_register,
            max_call=max_call,
            bare_register=bare_register,
            bare_call=bare_call,
            bare_latency=bare_latency,
            probe=probe,
            concurrency=concurrency,
            rss_kib=rss,
            hwm_kib=hwm,
            edgeport_stop=edgeport_stop,
            pinning=pinning.describe(),
            steps=load.steps,
            wall_seconds=time.monotonic() - started,
        )


def options_from(argv: Sequence[str] | None) -> Options:
    """``argv``, or when it is None the shell words of ``EDGEPORT_LOAD_ARGS``."""
    if argv is None:
        argv = shlex.split(os.environ.get("EDGEPORT_LOAD_ARGS", ""))
    return parse_options(argv)


def write_reports(summary: Summary, opts: Options) -> None:
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    (opts.out_dir / "results.md").write_text(render_markdown(summary, opts))
    (opts.out_dir / "chart.svg").write_text(render_svg(summary.steps))


def main(argv: list[str] | None = None) -> None:
    opts = options_from(argv)
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is not installed")
    summary = run(opts)
    print()
    print(render_table(summary))
    print()
    for note in method_notes(opts):
        print(f"* {note}")
    print(f"* {summary.pinning}; run took {summary.wall_seconds:.0f} s")
    write_reports(summary, opts)
    print(f"* wrote {opts.out_dir / 'results.md'} and {opts.out_dir / 'chart.svg'}")


if __name__ == "__main__":
    main(sys.argv[1:])
