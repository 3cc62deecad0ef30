"""Flood memory: edgeport's RSS under a flood of large messages from many sources.

Real processes on 127.0.0.1, as in :mod:`benchmarks.load`: edgeport
(``python -m edgeport --config FILE``, the built-in processor in process)
pinned to CPU 0; the senders (threads of this process) on CPU 1.

For ``--seconds`` (60 by default) three kinds of traffic run at once:

- **UDP flood**: large OPTIONS (1 to 60 KB bodies, some with 150 tiny header
  lines, the shape that costs most per byte) from ``--sources`` addresses
  of 127.0.0.0/8, each addressed to edgeport itself, so each is answered and
  then lingers 32 s in the transaction table to absorb retransmissions. Each
  source sends well under the flood limit: none is banned.
- **Slow streams**: ``--streams`` TCP connections from their own addresses,
  each starting a 1 MiB MESSAGE and sending 64 KiB of it every 100 ms, never
  finishing; a connection edgeport closes is opened again.
- **A legitimate client**: an OPTIONS every 100 ms from 127.0.0.1; the
  figure is the share answered 200 within 2 s.

edgeport's RSS (``VmRSS``) is read every 0.5 s. The figures: the RSS at rest
before the flood (the interpreter's baseline with everything loaded), the
highest RSS during it, and that peak against the baseline plus
``spec.limits.memory``. ``--tree PATH`` runs edgeport from another source
tree (a checkout of an older commit) with this same traffic, for a
before/after comparison; a tree that predates ``spec.limits`` ignores the key
(an unknown key is a warning).

Run: ``python -m benchmarks flood_memory`` (``nox -s bench -- flood_memory``),
or ``python -m benchmarks.flood_memory --seconds 20 --memory 64Mi --tree /tmp/old``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from benchmarks.load import (
    EDGEPORT_CPU,
    LOAD_CPU,
    START_TIMEOUT,
    Children,
    Pinning,
    crlf,
    free_port,
    rss_kib,
    wait_edgeport,
)

SECONDS: Final = 60.0
MEMORY: Final = "64Mi"  # smaller than the default, so the budget binds within a minute
SOURCES: Final = 1_000
RATE: Final = 2_000.0  # flood datagrams per second, all sources together
STREAMS: Final = 100
SAMPLE_INTERVAL: Final = 0.5  # seconds between RSS readings
SETTLE: Final = 3.0  # seconds at rest before the baseline is read
LEGIT_INTERVAL: Final = 0.1  # seconds between the legitimate client's requests
LEGIT_TIMEOUT: Final = 2.0  # seconds an answer may take
MAX_BODY: Final = 60_000  # bytes: one datagram
STREAM_CHUNK: Final = 64 * 1024
STREAM_INTERVAL: Final = 0.1  # seconds between chunks of a slow stream


def write_config(path: Path, port: int, memory: str) -> None:
    path.write_text(
        "kind: EdgePort\n"
        "apiVersion: v2beta1\n"
        "ref: bench-flood-memory\n"
        "spec:\n"
        "  bindAddr: 127.0.0.1\n"
        "  transport:\n"
        f"    - {{protocol: udp, port: {port}}}\n"
        f"    - {{protocol: tcp, port: {port}}}\n"
        "  methods: [REGISTER, OPTIONS, INVITE, ACK, BYE, CANCEL, MESSAGE]\n"
        "  processor: {addr: builtin}\n"
        "  localnets: [10.99.0.0/16]\n"  # loopback senders are not trusted
        f"  limits: {{memory: {memory}}}\n"
    )


def flood_options(port: int, n: int, rng: random.Random) -> bytes:
    body = rng.randint(1_000, MAX_BODY - 12_000)
    tiny = "".join(f"X-{i}: y\n" for i in range(150)) if n % 4 == 0 else ""
    head = crlf(
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-fm{n};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:flood@127.0.0.1>;tag=fm{n}\n"
        f"To: <sip:127.0.0.1:{port}>\n"
        f"Call-ID: fm-{n}@bench\n"
        "CSeq: 1 OPTIONS\n"
        f"{tiny}"
        "Content-Type: text/plain\n"
        f"Content-Length: {body}\n\n"
    )
    return head + b"f" * body


def legit_options(port: int, local: int, n: int) -> bytes:
    return crlf(
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-lg{n};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:legit@127.0.0.1>;tag=lg{n}\n"
        f"To: <sip:127.0.0.1:{port}>\n"
        f"Call-ID: lg-{n}@bench\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n\n"
    )


def stream_head(n: int) -> bytes:
    return crlf(
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-st{n}\n"
        "Max-Forwards: 70\n"
        f"From: <sip:slow@127.0.0.1>;tag=st{n}\n"
        "To: <sip:bob@127.0.0.1>\n"
        f"Call-ID: st-{n}@bench\n"
        "CSeq: 1 MESSAGE\n"
        "Content-Type: text/plain\n"
        f"Content-Length: {2**20 - 400}\n\n"
    )


def source_address(group: int, n: int) -> str:
    """The n-th sender address of a group: 127.<group>.x.y."""
    return f"127.{group}.{n // 250}.{1 + n % 250}"


@dataclass
class Tally:
    flood_sent: int = 0
    stream_bytes: int = 0
    streams_reopened: int = 0
    legit_sent: int = 0
    legit_answered: int = 0
    rss: list[int] = field(default_factory=list)  # KiB
    # The highest figure of each share of the budget, read from /metrics (MiB).
    shares: dict[str, float] = field(default_factory=dict)


_SHARE_LINE: Final = re.compile(
    r'^edgeport_memory_budget_used_bytes\{share="(\w+)"\} ([0-9.e+]+)$', re.M
)


def read_shares(health_port: int, shares: dict[str, float]) -> None:
    """Fold the budget's shares in use now into ``shares`` (their peaks); quiet on failure."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as page:
            text = page.read().decode()
    except OSError:
        return
    for name, value in _SHARE_LINE.findall(text):
        shares[name] = max(shares.get(name, 0.0), float(value) / 2**20)


def run_udp_flood(
    port: int, sources: int, rate: float, stop: threading.Event, tally: Tally
) -> None:
    socks = []
    for n in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source_address(1, n), 0))
        sock.setblocking(False)
        socks.append(sock)
    rng = random.Random(1)
    try:
        started = time.monotonic()
        sent = 0
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            while sent < due and not stop.is_set():
                with contextlib.suppress(BlockingIOError):
                    socks[sent % sources].sendto(
                        flood_options(port, sent, rng), ("127.0.0.1", port)
                    )
                sent += 1
            tally.flood_sent = sent
            time.sleep(0.002)
    finally:
        for sock in socks:
            sock.close()


def run_slow_streams(port: int, count: int, stop: threading.Event, tally: Tally) -> None:
    chunk = b"s" * STREAM_CHUNK
    conns: dict[int, tuple[socket.socket, int]] = {}  # index -> (socket, bytes sent)

    def open_one(n: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source_address(2, n), 0))
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(stream_head(n))
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        conns[n] = (sock, 0)

    for n in range(count):
        open_one(n)
    try:
        while not stop.is_set():
            for n in range(count):
                entry = conns.get(n)
                if entry is None or entry[1] + STREAM_CHUNK > 2**20 - 400:
                    if entry is not None:
                        entry[0].close()
                    conns.pop(n, None)
                    open_one(n)
                    tally.streams_reopened += 1
                    continue
                sock, sent = entry
                try:
                    sock.send(chunk)
                except BlockingIOError:
                    continue
                except OSError:
                    sock.close()
                    del conns[n]
                    open_one(n)
                    tally.streams_reopened += 1
                    continue
                conns[n] = (sock, sent + STREAM_CHUNK)
                tally.stream_bytes += STREAM_CHUNK
            stop.wait(STREAM_INTERVAL)
    finally:
        for sock, _ in conns.values():
            sock.close()


def run_legit(port: int, stop: threading.Event, tally: Tally) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        n = 0
        while not stop.is_set():
            n += 1
            call_id = f"lg-{n}@bench".encode()
            sock.sendto(legit_options(port, local, n), ("127.0.0.1", port))
            tally.legit_sent += 1
            deadline = time.monotonic() + LEGIT_TIMEOUT
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    break
                if call_id in reply and reply.startswith(b"SIP/2.0 200"):
                    tally.legit_answered += 1
                    break
            stop.wait(LEGIT_INTERVAL)


@dataclass(frozen=True)
class Result:
    tree: str
    memory_mib: float
    baseline_mib: float
    peak_mib: float
    end_mib: float
    tally: Tally

    @property
    def within(self) -> bool:
        return self.peak_mib <= self.baseline_mib + self.memory_mib


def run(tree: Path, args: argparse.Namespace, pinning: Pinning) -> Result:
    from edgeport.memory import parse_byte_size

    memory_mib = parse_byte_size(args.memory) / 2**20
    with tempfile.TemporaryDirectory(prefix="edgeport-flood-") as workdir:
        work = Path(workdir)
        children = Children(work)
        port = free_port()
        config = work / "edgeport.yaml"
        write_config(config, port, args.memory)
        health_port = free_port((socket.SOCK_STREAM,))
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),
            "ENABLE_HEALTHCHECKS": "true",
            "HEALTHCHECK_PORT": str(health_port),
        }
        try:
            proc = children.start(
                "edgeport",
                [
                    *pinning.prefix(EDGEPORT_CPU),
                    sys.executable,
                    "-m",
                    "edgeport",
                    "--config",
                    str(config),
                ],
                env=env,
            )
            wait_edgeport(port, proc, time.monotonic() + START_TIMEOUT)
            time.sleep(SETTLE)
            baseline = rss_kib(proc.pid)[0]
            tally = Tally()
            stop = threading.Event()
            with pinning.this_process_on(LOAD_CPU):
                threads = [
                    threading.Thread(
                        target=run_udp_flood, args=(port, args.sources, args.rate, stop, tally)
                    ),
                    threading.Thread(
                        target=run_slow_streams, args=(port, args.streams, stop, tally)
                    ),
                    threading.Thread(target=run_legit, args=(port, stop, tally)),
                ]
                for thread in threads:
                    thread.start()
                ends = time.monotonic() + args.seconds
                try:
                    while time.monotonic() < ends:
                        if proc.poll() is not None:
                            tail = children.log_tail("edgeport")
                            raise RuntimeError(f"edgeport exited with {proc.returncode}:\n{tail}")
                        tally.rss.append(rss_kib(proc.pid)[0])
                        read_shares(health_port, tally.shares)
                        time.sleep(SAMPLE_INTERVAL)
                finally:
                    stop.set()
                    for thread in threads:
                        thread.join(timeout=10)
            end = rss_kib(proc.pid)[0]
        finally:
            children.stop_all()
    return Result(
        tree=str(tree),
        memory_mib=memory_mib,
        baseline_mib=baseline / 1024,
        peak_mib=max(tally.rss, default=baseline) / 1024,
        end_mib=end / 1024,
        tally=tally,
    )


def report(result: Result, seconds: float) -> None:
    tally = result.tally
    legit = tally.legit_answered / tally.legit_sent if tally.legit_sent else 0.0
    print(f"  tree {result.tree}")
    print(
        f"    sent in {seconds:g} s: {tally.flood_sent} flood datagrams, "
        f"{tally.stream_bytes / 2**20:.0f} MiB on slow streams "
        f"({tally.streams_reopened} reopened after edgeport closed them)"
    )
    print(
        f"    RSS: baseline {result.baseline_mib:.0f} MiB, peak {result.peak_mib:.0f} MiB, "
        f"end {result.end_mib:.0f} MiB; budget {result.memory_mib:.0f} MiB: peak - baseline = "
        f"{result.peak_mib - result.baseline_mib:.0f} MiB "
        f"({'within' if result.within else 'OVER'} the budget)"
    )
    if tally.shares:
        shown = ", ".join(f"{name} {peak:.0f}" for name, peak in sorted(tally.shares.items()))
        print(f"    budget shares at their highest (MiB): {shown}")
    print(
        f"    legitimate client: {tally.legit_answered}/{tally.legit_sent} answered ({legit:.1%})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood_memory", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--memory", default=MEMORY, help="spec.limits.memory for the run")
    parser.add_argument("--sources", type=int, default=SOURCES)
    parser.add_argument("--rate", type=float, default=RATE, help="flood datagrams per second")
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument(
        "--tree", action="append", type=Path, default=[], help="also run this source tree"
    )
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    pinning = Pinning(not args.no_pin)
    here = Path(__file__).resolve().parent.parent
    print(
        f"flood memory: {args.seconds:g} s, {args.rate:g} datagrams/s from {args.sources} sources, "
        f"{args.streams} slow streams, spec.limits.memory {args.memory}; {pinning.describe()}"
    )
    for tree in [here, *args.tree]:
        report(run(tree, args, pinning), args.seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
