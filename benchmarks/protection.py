"""Protection: what a dropped message costs edgeport, against a processed REGISTER.

Real processes on 127.0.0.1, as in :mod:`benchmarks.load`: the built-in
processor and edgeport (``python -m edgeport --config FILE``), edgeport
pinned to CPU 0 with ``taskset``, the processor and the senders (this
process, SIPp) on CPU 1. edgeport's CPU time is read from
``/proc/<pid>/stat`` every ``SAMPLE_INTERVAL`` seconds; each phase's cost is
the CPU it used minus the idle rate times its length.

1. Idle: nothing sent, for the baseline CPU rate (timers, the loop).
2. REGISTER, processed: paced REGISTERs from 127.0.0.1 (the processor's
   address, so trusted), each answered 200 through the processor.
3. Dropped, in turn, at the same pace from their own loopback source:
   ``denied`` (127.0.0.3 is in ``spec.accessControl.deny``), ``banned``
   (127.0.0.4 floods until banned, then its REGISTERs are dropped), and
   ``scanner`` (an OPTIONS with ``User-Agent: friendly-scanner``).
   The figure is CPU per dropped message as a share of CPU per processed
   REGISTER (goal: at most 0.1).
4. Flood with legitimate traffic: one SIPp source (127.0.0.50, ``flood.xml``:
   REGISTERs sent without waiting for answers) sends at
   ``--flood-rate`` (default 10x the README's max REGISTER rate) while 20 SIPp
   instances, each on its own address (127.0.0.2 + i, ``-i``), register at
   ``--legit-rate`` in total (default half that max). The flooder is banned
   within its first window; the figure is the share of legitimate REGISTERs
   answered 200 (goal: at least 99%).

Run: ``python -m benchmarks protection`` (``nox -s bench -- protection``), or with
options ``python -m benchmarks.protection --rate 500 --no-flood``.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.load import (
    EDGEPORT_CPU,
    LOAD_CPU,
    SCENARIOS,
    START_TIMEOUT,
    Children,
    Pinning,
    cpu_seconds,
    crlf,
    free_port,
    read_stat,
    start_processor,
    wait_edgeport,
)

SAMPLE_INTERVAL: Final = 0.25  # seconds between CPU readings
SETTLE: Final = 3.0  # seconds for edgeport to finish work queued before a phase
IDLE_SECONDS: Final = 4.0
PHASE_SECONDS: Final = 6.0
RATE: Final = 300.0  # messages/s in every CPU phase (processed and dropped alike)
README_MAX_REGISTER_RATE: Final = 477.0  # REGISTER/s, README's Performance table
LEGIT_SOURCES: Final = 20
FLOOD_SECONDS: Final = 15.0
FLOOD_LIMIT: Final = 300  # requests per 10 s per source (the default)
BAN_TIME: Final = 600.0  # seconds: no source is unbanned during the run
DENIED_HOST: Final = "127.0.0.3"
BANNED_HOST: Final = "127.0.0.4"
SCANNER_HOST: Final = "127.0.0.5"
FLOOD_HOST: Final = "127.0.0.50"
LEGIT_FIRST: Final = 12  # legitimate sources are 127.0.0.12 .. 127.0.0.31


def write_config(path: Path, edge_port: int, processor_port: int, *, flood: bool = True) -> None:
    path.write_text(
        "kind: EdgePort\n"
        "apiVersion: v2beta1\n"
        "ref: bench-protection\n"
        "spec:\n"
        "  bindAddr: 127.0.0.1\n"
        "  transport:\n"
        f"    - {{protocol: udp, port: {edge_port}}}\n"
        "  methods: [REGISTER, OPTIONS, INVITE, ACK, BYE, CANCEL]\n"
        f"  processor: {{addr: '127.0.0.1:{processor_port}'}}\n"
        "  localnets: [10.99.0.0/16]\n"  # loopback senders are not trusted...
        f"  accessControl: {{deny: [{DENIED_HOST}/32]}}\n"
        "  protection:\n"
        f"    flood: {{enabled: {str(flood).lower()}, requests: {FLOOD_LIMIT}, window: 10, "
        f"banTime: {BAN_TIME:g}}}\n"
    )  # ...except 127.0.0.1, the processor's address


def register(host: str, port: int, edge_port: int, n: int, user_agent: str = "bench/1") -> bytes:
    return crlf(
        f"REGISTER sip:127.0.0.1:{edge_port} SIP/2.0\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-pb{n};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:u{n % 500}@127.0.0.1>;tag=pb{n}\n"
        f"To: <sip:u{n % 500}@127.0.0.1>\n"
        f"Call-ID: pb-{n}-{host}\n"
        "CSeq: 1 REGISTER\n"
        f"Contact: <sip:u{n % 500}@{host}:{port}>\n"
        f"User-Agent: {user_agent}\n"
        "Expires: 3600\n"
        "Content-Length: 0\n\n"
    )


def scanner_options(host: str, port: int, n: int) -> bytes:
    return crlf(
        "OPTIONS sip:100@127.0.0.1 SIP/2.0\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-sc{n};rport\n"
        "Max-Forwards: 70\n"
        'From: "sipvicious"<sip:100@1.1.1.1>;tag=sc' + str(n) + "\n"
        'To: "sipvicious"<sip:100@1.1.1.1>\n'
        "User-Agent: friendly-scanner\n"
        f"Call-ID: sc-{n}\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n\n"
    )


class CpuMeter:
    """Samples a process's CPU seconds at a fixed rate on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.samples.append((time.monotonic(), cpu_seconds(self.pid)))

    def start(self) -> None:
        self.samples.append((time.monotonic(), cpu_seconds(self.pid)))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def used(self, start: float, end: float) -> float:
        """CPU seconds between the samples nearest ``start`` and ``end``."""
        first = min(self.samples, key=lambda s: abs(s[0] - start))
        last = min(self.samples, key=lambda s: abs(s[0] - end))
        return last[1] - first[1]


@dataclass
class Phase:
    name: str
    messages: int
    answered: int
    seconds: float
    cpu: float  # edgeport CPU seconds, idle rate subtracted

    @property
    def cpu_per_message_us(self) -> float:
        return self.cpu / max(1, self.messages) * 1e6


def paced_send(
    host: str, edge_port: int, rate: float, seconds: float, make: object
) -> tuple[int, int, float, float]:
    """Send ``make(host, port, n)`` at ``rate`` for ``seconds``; (sent, 200s, start, end)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    answered = 0
    start = time.monotonic()
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        while (now := time.monotonic()) < due:
            answered += _drain(sock)
            time.sleep(min(0.001, due - now))
        sock.sendto(make(host, port, n), ("127.0.0.1", edge_port))  # type: ignore[operator]
    end = time.monotonic()
    settle = end + 1.0
    while time.monotonic() < settle:
        answered += _drain(sock)
        time.sleep(0.01)
    sock.close()
    return total, answered, start, end


def _drain(sock: socket.socket) -> int:
    count = 0
    for _ in range(1000):
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return count
        count += data.startswith(b"SIP/2.0 200")
    return count


def cpu_phases(edge_pid: int, edge_port: int, rate: float, seconds: float) -> list[Phase]:
    meter = CpuMeter(edge_pid)
    meter.start()
    try:
        idle_start = time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_rate = meter.used(idle_start, time.monotonic()) / IDLE_SECONDS
        phases: list[Phase] = []

        def run(name: str, host: str, make: object) -> None:
            sent, answered, start, end = paced_send(host, edge_port, rate, seconds, make)
            time.sleep(SAMPLE_INTERVAL * 2)
            cpu = meter.used(start, end + 0.5) - idle_rate * (end + 0.5 - start)
            phases.append(Phase(name, sent, answered, end - start, cpu))

        def reg(h: str, p: int, n: int) -> bytes:
            return register(h, p, edge_port, n)

        run("REGISTER processed", "127.0.0.1", reg)
        run("denied", DENIED_HOST, reg)
        # Get 127.0.0.4 banned first (the flood limit), then measure its drops.
        paced_send(BANNED_HOST, edge_port, 2000.0, (FLOOD_LIMIT + 50) / 2000.0, reg)
        time.sleep(SETTLE)  # the REGISTERs admitted before the ban are processed first
        run("banned", BANNED_HOST, reg)
        run("scanner", SCANNER_HOST, scanner_options)
    finally:
        meter.stop()
    return phases


def flood_with_legit(
    children: Children, pinning: Pinning, edge_port: int, flood_rate: float, legit_rate: float
) -> tuple[int, int, int]:
    """(legit REGISTERs sent, legit answered 200, flood messages sent)."""
    per_source = legit_rate / LEGIT_SOURCES
    users = Path(tempfile.mkdtemp(prefix="edgeport-prot-")) / "users.csv"
    users.write_text("SEQUENTIAL\n" + "".join(f"legit{i}\n" for i in range(100)))
    sipps = []
    for i in range(LEGIT_SOURCES):
        host = f"127.0.0.{LEGIT_FIRST + i}"
        sipps.append(
            children.start(
                f"sipp_legit{i}",
                [
                    *pinning.prefix(LOAD_CPU),
                    "sipp",
                    f"127.0.0.1:{edge_port}",
                    "-sf",
                    str(SCENARIOS / "register.xml"),
                    "-inf",
                    str(users),
                    "-i",
                    host,
                    "-p",
                    str(free_port((socket.SOCK_DGRAM,))),
                    "-r",
                    f"{per_source:g}",
                    "-m",
                    str(math.ceil(per_source * FLOOD_SECONDS)),
                    "-recv_timeout",
                    "2000",
                    "-trace_stat",
                    "-fd",
                    "1",
                    "-stf",
                    str(children.workdir / f"legit{i}_stat.csv"),
                    "-nd",
                    "-nostdin",
                    "-timeout",
                    f"{FLOOD_SECONDS + 20:g}s",
                ],
            )
        )

    flood = children.start(
        "sipp_flood",
        [
            *pinning.prefix(LOAD_CPU),
            "sipp",
            f"127.0.0.1:{edge_port}",
            "-sf",
            str(SCENARIOS / "flood.xml"),
            "-i",
            FLOOD_HOST,
            "-p",
            str(free_port((socket.SOCK_DGRAM,))),
            "-r",
            f"{flood_rate:g}",
            "-m",
            str(math.ceil(flood_rate * FLOOD_SECONDS)),
            "-trace_stat",
            "-fd",
            "1",
            "-stf",
            str(children.workdir / "flood_stat.csv"),
            "-nostdin",
            "-timeout",
            f"{FLOOD_SECONDS + 20:g}s",
        ],
    )
    deadline = time.monotonic() + FLOOD_SECONDS + 30
    for proc in [flood, *sipps]:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    flood_sent = int(read_stat(children.workdir / "flood_stat.csv").get("TotalCallCreated", 0))
    sent = answered = 0
    for i in range(LEGIT_SOURCES):
        stat = read_stat(children.workdir / f"legit{i}_stat.csv")
        sent += int(stat.get("TotalCallCreated", 0))
        answered += int(stat.get("SuccessfulCall(C)", 0))
    return sent, answered, flood_sent


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks protection", description=__doc__)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS)
    parser.add_argument("--flood-rate", type=float, default=10 * README_MAX_REGISTER_RATE)
    parser.add_argument("--legit-rate", type=float, default=README_MAX_REGISTER_RATE / 2)
    parser.add_argument("--no-flood", action="store_true", help="skip the flood-with-legit part")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--unprotected",
        action="store_true",
        help="flood limit off (for comparison: the flooder is never banned)",
    )
    args = parser.parse_args(list(argv or ()))
    pinning = Pinning(not args.no_pin)
    workdir = Path(tempfile.mkdtemp(prefix="edgeport-protection-"))
    children = Children(workdir)
    try:
        edge_port = free_port((socket.SOCK_DGRAM,))
        deadline = time.monotonic() + START_TIMEOUT
        processor_port, _ = start_processor(children, pinning, deadline)
        config = workdir / "edgeport.yaml"
        write_config(config, edge_port, processor_port, flood=not args.unprotected)
        edgeport = children.start(
            "edgeport",
            [
                *pinning.prefix(EDGEPORT_CPU),
                sys.executable,
                "-m",
                "edgeport",
                "--config",
                str(config),
                "--log-level",
                "warning",
            ],
        )
        wait_edgeport(edge_port, edgeport, deadline)
        print(f"{pinning.describe()}; {args.rate:g} messages/s per phase, {args.seconds:g} s each")
        with pinning.this_process_on(LOAD_CPU):
            phases = cpu_phases(edgeport.pid, edge_port, args.rate, args.seconds)
        processed = phases[0]
        print(f"{'phase':<20} {'messages':>9} {'200s':>6} {'CPU ms':>8} {'us/msg':>8} {'ratio':>6}")
        for phase in phases:
            ratio = phase.cpu_per_message_us / max(1e-9, processed.cpu_per_message_us)
            print(
                f"{phase.name:<20} {phase.messages:>9} {phase.answered:>6} "
                f"{phase.cpu * 1000:>8.0f} {phase.cpu_per_message_us:>8.1f} {ratio:>6.3f}"
            )
        if not args.no_flood:
            with pinning.this_process_on(LOAD_CPU):
                sent, answered, flood_sent = flood_with_legit(
                    children, pinning, edge_port, args.flood_rate, args.legit_rate
                )
            share = answered / sent if sent else 0.0
            print(
                f"flood: one source at {args.flood_rate:g}/s ({flood_sent} sent) while "
                f"{LEGIT_SOURCES} SIPp sources register at {args.legit_rate:g}/s in total: "
                f"{answered} of {sent} legitimate REGISTERs answered 200 ({share:.2%})"
            )
        children.stop_gracefully(edgeport, 2)
    finally:
        children.stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
