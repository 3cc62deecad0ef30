"""Worker processes: CPU per REGISTER with N workers, and the share of messages handed off.

``python -m benchmarks.workers [--workers 1 2] [--registers 3000] [--rate 150]
[--sources 64] [--calls 200]`` starts the built-in processor alone
(``edgeport builtin-processor``, over TCP, the same hop for every N) and, for
each N, ``edgeport --workers N`` in front of it. Then, from ``--sources`` UDP
sockets (many source ports, so the kernel spreads them over the workers):

* REGISTERs paced at ``--rate`` per second, each socket waiting for its
  answer: CPU seconds of every edgeport process (supervisor and workers)
  per REGISTER answered, and how many were answered 200;
* ``--calls`` calls (INVITE, 180, 200, ACK, BYE, 200) between pairs of
  those sockets: how many completed, and from ``/metrics`` the hand-offs
  per SIP message received (responses handed to the worker holding their
  transaction).

Nothing is pinned: N workers are meant to use N cores. Figures vary with
what else the machine runs; compare N within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from benchmarks.load import cpu_seconds, free_port

if TYPE_CHECKING:
    from collections.abc import Sequence

START_TIMEOUT: Final = 30.0  # seconds for the processor and edgeport to be ready
ANSWER_TIMEOUT: Final = 2.0  # seconds a UA waits for one answer before counting a failure
STOP_TIMEOUT: Final = 40.0  # seconds for edgeport to drain and exit after SIGTERM
METHODS: Final = "[REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS]"


@dataclass(frozen=True, slots=True)
class Options:
    workers: tuple[int, ...] = (1, 2)
    registers: int = 3000
    rate: float = 150.0
    sources: int = 64
    calls: int = 200


@dataclass(frozen=True, slots=True)
class Result:
    workers: int
    registers: int
    registered: int
    register_seconds: float
    cpu_seconds: float  # every edgeport process, during the REGISTER phase
    calls: int
    completed: int
    messages_received: float
    handoffs: float
    handoff_drops: float

    @property
    def cpu_us_per_register(self) -> float:
        return 1e6 * self.cpu_seconds / max(1, self.registered)

    @property
    def handoff_share(self) -> float:
        return self.handoffs / self.messages_received if self.messages_received else 0.0


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    defaults = Options()
    parser.add_argument("--registers", type=int, default=defaults.registers)
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--sources", type=int, default=defaults.sources)
    parser.add_argument("--calls", type=int, default=defaults.calls)
    args = parser.parse_args(list(argv))
    if args.sources < 2 or args.rate <= 0 or min(args.workers) < 1:
        parser.error("--sources must be at least 2, --rate > 0, --workers counts >= 1")
    return Options(tuple(args.workers), args.registers, args.rate, args.sources, args.calls)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def register(user: str, port: int, n: int) -> bytes:
    return crlf(
        f"REGISTER sip:127.0.0.1 SIP/2.0\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-br{user}-{n};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:{user}@127.0.0.1>;tag=r{user}\n"
        f"To: <sip:{user}@127.0.0.1>\n"
        f"Call-ID: breg-{user}\n"
        f"CSeq: {n} REGISTER\n"
        f"Contact: <sip:{user}@127.0.0.1:{port}>\n"
        "Expires: 600\n"
        "Content-Length: 0\n\n"
    )


class UA:
    """One UDP socket; answers are read by whoever waits on it."""

    def __init__(self, sock: trio.socket.SocketType, edge: tuple[str, int]) -> None:
        self.sock = sock
        self.edge = edge
        self.port: int = sock.getsockname()[1]

    async def send(self, data: bytes) -> None:
        await self.sock.sendto(data, self.edge)

    async def until(self, predicate: re.Pattern[bytes]) -> bytes | None:
        """The next message matching ``predicate`` within ANSWER_TIMEOUT, else None."""
        with trio.move_on_after(ANSWER_TIMEOUT):
            for _ in range(50):
                data = await self.sock.recv(65535)
                if predicate.search(data):
                    return data
        return None


_FINAL: Final = re.compile(rb"\ASIP/2.0 [2-6]\d\d ")
_INVITE: Final = re.compile(rb"\AINVITE ")
_BYE: Final = re.compile(rb"\ABYE ")
_BYE_OK: Final = re.compile(rb"\ASIP/2.0 200 .*\r\nCSeq: 2 BYE", re.S)


def _headers(data: bytes, name: str) -> list[str]:
    text = data.split(b"\r\n\r\n", 1)[0].decode()
    return [
        line.split(":", 1)[1].strip()
        for line in text.split("\r\n")[1:]
        if line.split(":", 1)[0].strip().lower() == name.lower()
    ]


def _answer(request: bytes, status: str, tag: str, extra: str = "") -> bytes:
    vias = "".join(f"Via: {v}\n" for v in _headers(request, "Via"))
    rrs = "".join(f"Record-Route: {r}\n" for r in _headers(request, "Record-Route"))
    to = _headers(request, "To")[0]
    if "tag=" not in to:
        to += f";tag={tag}"
    return crlf(
        f"SIP/2.0 {status}\n{vias}{rrs}From: {_headers(request, 'From')[0]}\nTo: {to}\n"
        f"Call-ID: {_headers(request, 'Call-ID')[0]}\nCSeq: {_headers(request, 'CSeq')[0]}\n"
        f"{extra}Content-Length: 0\n\n"
    )


FAILED_AT: dict[str, int] = {}  # calls that failed, by the step that did not happen


def _failed(stage: str) -> bool:
    FAILED_AT[stage] = FAILED_AT.get(stage, 0) + 1
    return False


async def one_call(caller: UA, callee: UA, caller_user: str, callee_user: str, n: int) -> bool:
    call_id = f"bcall-{n}"
    await caller.send(
        crlf(
            f"INVITE sip:{callee_user}@127.0.0.1 SIP/2.0\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-bi{n};rport\n"
            "Max-Forwards: 70\n"
            f"From: <sip:{caller_user}@127.0.0.1>;tag=c{n}\n"
            f"To: <sip:{callee_user}@127.0.0.1>\n"
            f"Call-ID: {call_id}\nCSeq: 1 INVITE\n"
            f"Contact: <sip:{caller_user}@127.0.0.1:{caller.port}>\n"
            "Content-Length: 0\n\n"
        )
    )
    invite = await callee.until(_INVITE)
    if invite is None:
        return _failed("invite")
    await callee.send(_answer(invite, "180 Ringing", f"e{n}"))
    contact = f"Contact: <sip:{callee_user}@127.0.0.1:{callee.port}>\n"
    await callee.send(_answer(invite, "200 OK", f"e{n}", contact))
    final = await caller.until(_FINAL)
    if final is None or not final.startswith(b"SIP/2.0 200"):
        return _failed("final")
    routes = "".join(f"Route: {r}\n" for r in _headers(final, "Record-Route"))
    to = _headers(final, "To")[0]
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        await caller.send(
            crlf(
                f"{method} sip:{callee_user}@127.0.0.1:{callee.port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bK-b{method}{n};rport\n"
                f"{routes}Max-Forwards: 70\n"
                f"From: <sip:{caller_user}@127.0.0.1>;tag=c{n}\nTo: {to}\n"
                f"Call-ID: {call_id}\nCSeq: {cseq} {method}\nContent-Length: 0\n\n"
            )
        )
    bye = await callee.until(_BYE)
    if bye is None:
        return _failed("bye")
    await callee.send(_answer(bye, "200 OK", f"e{n}"))
    return await caller.until(_BYE_OK) is not None or _failed("bye-ok")


async def drive(opts: Options, edge_port: int, pids: list[int]) -> tuple[int, float, float, int]:
    """The REGISTER and call phases: (registered, seconds, cpu seconds, calls completed)."""
    edge = ("127.0.0.1", edge_port)
    uas: list[UA] = []
    for _ in range(opts.sources):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        uas.append(UA(sock, edge))
    registered = 0
    interval = 1.0 / opts.rate
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    started = trio.current_time()
    locks = [trio.Lock() for _ in uas]

    async def one_register(n: int) -> None:
        nonlocal registered
        index = n % len(uas)
        async with locks[index]:
            ua = uas[index]
            await ua.send(register(f"u{index}", ua.port, n + 1))
            answer = await ua.until(_FINAL)
            if answer is not None and answer.startswith(b"SIP/2.0 200"):
                registered += 1

    async with trio.open_nursery() as nursery:
        for n in range(opts.registers):
            await trio.sleep_until(started + n * interval)
            nursery.start_soon(one_register, n)
    seconds = trio.current_time() - started
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before

    pairs = [(uas[i], uas[i + 1], f"u{i}", f"u{i + 1}") for i in range(0, len(uas) - 1, 2)]
    completed = 0
    pair_locks = [trio.Lock() for _ in pairs]

    async def call(n: int) -> None:
        nonlocal completed
        index = n % len(pairs)
        async with pair_locks[index]:
            if await one_call(*pairs[index], n):
                completed += 1

    async with trio.open_nursery() as nursery:
        for n in range(opts.calls):
            nursery.start_soon(call, n)
    for ua in uas:
        ua.sock.close()
    return registered, seconds, cpu, completed


def metric_sum(exposition: str, name: str) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (``/proc/<n>/stat`` field 4)."""
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def wait_healthy(health_port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edgeport exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{health_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError("edgeport did not become ready")


def measure(opts: Options, workers: int, processor_port: int, workdir: Path) -> Result:
    edge_port = free_port()
    health_port = free_port((socket.SOCK_STREAM,))
    config = workdir / f"edgeport-{workers}.yaml"
    config.write_text(
        "kind: EdgePort\napiVersion: v2beta1\nref: bench-workers\nspec:\n"
        "  bindAddr: 127.0.0.1\n  transport:\n"
        f"    - protocol: udp\n      port: {edge_port}\n"
        f"  methods: {METHODS}\n  processor:\n    addr: 127.0.0.1:{processor_port}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_PATH", "HOSTNAME", "WORKERS"}}
    env.update(
        ENABLE_HEALTHCHECKS="true", HEALTHCHECK_PORT=str(health_port), LOCALNETS="127.0.0.0/8"
    )
    command = [
        sys.executable,
        "-m",
        "edgeport",
        "--config",
        str(config),
        "--log-level",
        os.environ.get("BENCH_EDGE_LOG", "warning"),
    ]
    command += ["--workers", str(workers)]
    log = (workdir / f"edgeport-{workers}.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(health_port, proc)
        pids = [proc.pid, *children_of(proc.pid)]
        registered, seconds, cpu, completed = trio.run(drive, opts, edge_port, pids)
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=5) as got:
            exposition = got.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return Result(
        workers=workers,
        registers=opts.registers,
        registered=registered,
        register_seconds=seconds,
        cpu_seconds=cpu,
        calls=opts.calls,
        completed=completed,
        messages_received=metric_sum(exposition, "edgeport_messages_received_total"),
        handoffs=metric_sum(exposition, "edgeport_handoffs_total")
        - _announcements(exposition, "edgeport_handoffs_total"),
        handoff_drops=metric_sum(exposition, "edgeport_handoff_drops_total")
        - _announcements(exposition, "edgeport_handoff_drops_total"),
    )


def _announcements(exposition: str, name: str) -> float:
    """The ``kind="announce"`` part of ``name`` (one at start-up finds a sibling not up yet)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(name + "{") and 'kind="announce"' in line
    )


def run(opts: Options) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        workdir = Path(tmp)
        processor_port = free_port((socket.SOCK_STREAM,))
        processor = subprocess.Popen(
            [
                *(sys.executable, "-m", "edgeport", "--log-level", "warning"),
                *("builtin-processor", "--bind", f"127.0.0.1:{processor_port}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for workers in opts.workers:
                results.append(measure(opts, workers, processor_port, workdir))
                print(report_line(results[-1]), flush=True)
                if FAILED_AT:
                    print(f"   failed calls, by missing step: {FAILED_AT}", flush=True)
                    FAILED_AT.clear()
        finally:
            processor.send_signal(signal.SIGTERM)
            try:
                processor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                processor.kill()
                processor.wait()
    return results


def report_line(result: Result) -> str:
    return (
        f"   workers {result.workers}: REGISTER {result.registered}/{result.registers} ok in "
        f"{result.register_seconds:.1f} s, edgeport CPU {result.cpu_us_per_register:.0f} µs per "
        f"REGISTER; calls {result.completed}/{result.calls} completed; hand-offs "
        f"{result.handoffs:.0f} of {result.messages_received:.0f} messages received "
        f"({100 * result.handoff_share:.1f}%), {result.handoff_drops:.0f} dropped"
    )


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse_options(argv or [])
    print(
        f"   {opts.registers} REGISTERs at {opts.rate:.0f}/s and {opts.calls} calls from "
        f"{opts.sources} UDP source ports; processor: edgeport builtin-processor over TCP",
        flush=True,
    )
    run(opts)


if __name__ == "__main__":
    main(sys.argv[1:])
