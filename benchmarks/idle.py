"""What an idle edgeport costs: CPU and wake-ups per process and per thread, no traffic.

``python -m benchmarks idle [--workers 1 2] [--seconds 20] [--rounds 1]
[--processor builtin tcp] [--warm-up 40] [--settle 12] [--baseline REV] [--no-pin]`` (or ``python -m
benchmarks idle`` with those options in ``EDGEPORT_IDLE_ARGS``) starts, for each
worker count N and each processor kind, ``edgeport --workers N`` with

* ``builtin``: the embedded built-in processor (the supervisor serves it to
  its workers over a Unix socket), or
* ``tcp``: an external processor over TCP (``edgeport builtin-processor``,
  always this tree's, as ``benchmarks.workers`` runs it),

waits until ``/readyz`` answers 200, sends ``--warm-up`` REGISTERs (each on a
TCP connection of its own, so the kernel spreads them over the workers: an idle
edgeport is one that had traffic, its processor connection and grpcio's
threads started), waits ``--settle`` seconds (what the warm-up started is over), then
reads ``/proc/<pid>/task/<tid>/stat`` and ``status`` at the start and the end
of a window of ``--seconds`` with no SIP traffic and no probe. It prints, per
process (supervisor, each worker) and per thread (by its name, ``comm``),
CPU milliseconds per second (utime + stime) and voluntary context switches
per second: each is one wake-up of that thread (a sleep that ended, or a
wait that was satisfied).

With ``--baseline REV`` the commit REV (installed once into a venv of its
own, :func:`benchmarks.overload.baseline_tree`) runs too, interleaved: for
each round and each configuration, the baseline then this tree (A B A B).
Both are pinned with taskset to one CPU (the processor to the other), so
the figures of a thread do not depend on where the scheduler put it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from benchmarks import load, overload
from benchmarks.workers import children_of, register

if TYPE_CHECKING:
    from collections.abc import Sequence

START_TIMEOUT: Final = 30.0  # seconds for edgeport (and the processor) to be ready
# After the warm-up: its transactions have ended (timer K, 5 s) and grpcio's completion
# thread, kept between calls, has been let go (edgeport.processor.SPIN_IDLE_RELEASE, 10 s).
SETTLE_SECONDS: Final = 12.0
WINDOW_SECONDS: Final = 20.0  # the idle window measured
STOP_TIMEOUT: Final = 30.0  # seconds for edgeport to drain and exit after SIGTERM
EDGEPORT_CPU: Final = 0  # taskset CPU of edgeport (every process of it)
PROCESSOR_CPU: Final = 1  # taskset CPU of the external processor
PROCESSORS: Final = ("builtin", "tcp")
WARM_UP_REGISTERS: Final = 40  # before the window, from as many UDP ports
ANSWER_TIMEOUT: Final = 2.0  # seconds for a warm-up REGISTER's answer


@dataclass(frozen=True, slots=True)
class Options:
    workers: tuple[int, ...] = (1, 2)
    processors: tuple[str, ...] = PROCESSORS
    seconds: float = WINDOW_SECONDS
    rounds: int = 1
    warm_up: int = WARM_UP_REGISTERS
    settle: float = SETTLE_SECONDS
    baseline: str | None = None
    pin: bool = True


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks idle", description=__doc__)
    defaults = Options()
    parser.add_argument("--workers", type=int, nargs="+", default=list(defaults.workers))
    parser.add_argument(
        "--processor", choices=PROCESSORS, nargs="+", default=list(defaults.processors)
    )
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--warm-up", type=int, default=defaults.warm_up)
    parser.add_argument("--settle", type=float, default=defaults.settle, help="seconds")
    parser.add_argument("--baseline", default=None, help="git revision to measure too")
    parser.add_argument("--no-pin", action="store_true", help="no taskset")
    args = parser.parse_args(list(argv))
    if min(args.workers) < 1 or args.seconds <= 0 or args.rounds < 1 or args.warm_up < 0:
        parser.error("--workers counts >= 1, --seconds > 0, --rounds >= 1, --warm-up >= 0")
    if args.settle < 0:
        parser.error("--settle must be >= 0")
    return Options(
        workers=tuple(args.workers),
        processors=tuple(args.processor),
        seconds=args.seconds,
        rounds=args.rounds,
        warm_up=args.warm_up,
        settle=args.settle,
        baseline=args.baseline,
        pin=not args.no_pin,
    )


# -- reading /proc ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadSample:
    name: str
    cpu_ns: int  # time on a CPU (schedstat), else utime + stime
    voluntary: int  # voluntary context switches


def sample_threads(pid: int) -> dict[int, ThreadSample]:
    """Every thread of ``pid`` now, by thread id (threads that end meanwhile are skipped)."""
    threads: dict[int, ThreadSample] = {}
    with contextlib.suppress(OSError):
        tids = [int(entry) for entry in os.listdir(f"/proc/{pid}/task")]
        for tid in tids:
            with contextlib.suppress(OSError, ValueError):
                threads[tid] = _read_thread(pid, tid)
    return threads


def _read_thread(pid: int, tid: int) -> ThreadSample:
    base = f"/proc/{pid}/task/{tid}"
    with open(f"{base}/stat") as stat:
        text = stat.read()
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rpartition(")")[2].split()
    voluntary = 0
    with open(f"{base}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary = int(line.split()[1])
    try:  # nanoseconds on a CPU; the ticks of stat are 10 ms each
        with open(f"{base}/schedstat") as schedstat:
            cpu_ns = int(schedstat.read().split()[0])
    except (OSError, ValueError, IndexError):
        ticks = int(fields[11]) + int(fields[12])
        cpu_ns = ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return ThreadSample(name, cpu_ns, voluntary)


@dataclass(frozen=True, slots=True)
class ThreadFigures:
    name: str
    cpu_ms_per_s: float
    wakeups_per_s: float


@dataclass(slots=True)
class ProcessFigures:
    role: str  # "edgeport" (one process), or "supervisor", "worker 0", ...
    threads: list[ThreadFigures] = field(default_factory=list)

    @property
    def cpu_ms_per_s(self) -> float:
        return sum(t.cpu_ms_per_s for t in self.threads)

    @property
    def wakeups_per_s(self) -> float:
        return sum(t.wakeups_per_s for t in self.threads)


def figures(
    role: str, before: dict[int, ThreadSample], after: dict[int, ThreadSample], seconds: float
) -> ProcessFigures:
    """Per thread, what changed between two samples; a thread new in ``after`` counts whole."""
    result = ProcessFigures(role)
    for tid, end in sorted(after.items()):
        start = before.get(tid, ThreadSample(end.name, 0, 0))
        result.threads.append(
            ThreadFigures(
                end.name,
                (end.cpu_ns - start.cpu_ns) / 1e6 / seconds,
                (end.voluntary - start.voluntary) / seconds,
            )
        )
    return result


# -- one run ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunResult:
    tree: str
    workers: int
    processor: str
    processes: list[ProcessFigures]

    def workers_only(self) -> list[ProcessFigures]:
        """The processes that serve SIP: the workers, or the one edgeport process."""
        return [p for p in self.processes if p.role != "supervisor"]


def _wait_ready(health_port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edgeport exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{health_port}/readyz", timeout=1) as got,
        ):
            if got.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("edgeport did not become ready")


def _warm_up(edge_port: int, registers: int) -> int:
    """Send ``registers`` REGISTERs, each on a TCP connection of its own (closed once
    answered); how many were answered.

    Over TCP, not UDP: a transaction over a reliable transport ends when it is
    answered (RFC 3261 §17.2.2: Timer J is zero), where over UDP it would linger
    32 s and its end would fall in the idle window.
    """
    answered = 0
    for n in range(registers):
        with socket.create_connection(("127.0.0.1", edge_port), timeout=ANSWER_TIMEOUT) as sock:
            port = sock.getsockname()[1]
            request = register(f"idle{n}", port, 1).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP")
            sock.sendall(request.replace(b">\r\nExpires", b";transport=tcp>\r\nExpires"))
            with contextlib.suppress(OSError):
                if sock.recv(65535).startswith(b"SIP/2.0 "):
                    answered += 1
    return answered


def _imported_from(tree: overload.Tree, workdir: Path) -> str:
    """Where ``tree``'s interpreter imports edgeport from, run as the benchmark runs it."""
    return subprocess.run(
        [tree.python, "-c", "import edgeport; print(edgeport.__file__)"],
        env=tree.env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _worker_roles(supervisor: int, children: list[int]) -> dict[int, str]:
    """``worker <i>`` for each child, from its ``--index`` argument (else its position)."""
    roles: dict[int, str] = {}
    for position, pid in enumerate(sorted(children)):
        index = str(position)
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"--index" in argv:
                index = argv[argv.index(b"--index") + 1].decode()
        roles[pid] = f"worker {index}"
    return roles


def measure(
    tree: overload.Tree,
    workers: int,
    processor: str,
    processor_port: int | None,
    opts: Options,
    pinning: load.Pinning,
    workdir: Path,
) -> RunResult:
    health_port = load.free_port((socket.SOCK_STREAM,))
    edge_port = load.free_port()
    addr = "builtin" if processor == "builtin" else f"127.0.0.1:{processor_port}"
    config = workdir / f"edgeport-{workers}-{processor}.yaml"
    config.write_text(
        "kind: EdgePort\napiVersion: v2beta1\nref: bench-idle\nspec:\n"
        "  bindAddr: 127.0.0.1\n  transport:\n"
        f"    - protocol: udp\n      port: {edge_port}\n"
        f"    - protocol: tcp\n      port: {edge_port}\n"
        "  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS]\n"
        f"  processor:\n    addr: {addr}\n"
    )
    env = {k: v for k, v in tree.env.items() if k not in {"CONFIG_PATH", "HOSTNAME", "WORKERS"}}
    env.update(
        ENABLE_HEALTHCHECKS="true", HEALTHCHECK_PORT=str(health_port), LOCALNETS="127.0.0.0/8"
    )
    command = [
        *pinning.prefix(EDGEPORT_CPU),
        *(tree.python, "-m", "edgeport", "--config", str(config), "--log-level", "warning"),
        *("--workers", str(workers)),
    ]
    with (workdir / f"edgeport-{workers}-{processor}.log").open("wb") as log:
        # In the work directory: ``-m`` puts the current directory first on sys.path,
        # and a baseline must not import this tree's edgeport from there.
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(health_port, proc)
            answered = _warm_up(edge_port, opts.warm_up)
            if answered < opts.warm_up:
                print(f"   warm-up: {answered}/{opts.warm_up} REGISTERs answered", flush=True)
            time.sleep(opts.settle)
            children = _worker_roles(proc.pid, children_of(proc.pid))
            roles = {proc.pid: "supervisor" if children else "edgeport"} | children
            before = {pid: sample_threads(pid) for pid in roles}
            started = time.monotonic()
            time.sleep(opts.seconds)
            after = {pid: sample_threads(pid) for pid in roles}
            seconds = time.monotonic() - started
        finally:
            _stop(proc)
    processes = [figures(role, before[pid], after[pid], seconds) for pid, role in roles.items()]
    return RunResult(tree.label, workers, processor, processes)


def describe(result: RunResult) -> list[str]:
    lines = [f"   {result.tree:18} workers {result.workers}, processor {result.processor}:"]
    for process in result.processes:
        lines.append(
            f"      {process.role:10} {process.cpu_ms_per_s:6.2f} ms CPU/s "
            f"{process.wakeups_per_s:7.1f} wake-ups/s"
        )
        busy = sorted(process.threads, key=lambda t: (-t.wakeups_per_s, -t.cpu_ms_per_s))
        for thread in busy:
            if thread.wakeups_per_s >= 0.05 or thread.cpu_ms_per_s >= 0.05:
                lines.append(
                    f"         {thread.name:18} {thread.cpu_ms_per_s:6.2f} ms CPU/s "
                    f"{thread.wakeups_per_s:7.1f} wake-ups/s"
                )
    return lines


def summary(results: list[RunResult]) -> list[str]:
    """Per tree and configuration: the mean per worker over every round."""
    groups: dict[tuple[int, str, str], list[ProcessFigures]] = {}
    for result in results:
        key = (result.workers, result.processor, result.tree)
        groups.setdefault(key, []).extend(result.workers_only())
    lines = [
        "   | workers | processor | tree | CPU ms/s per worker | wake-ups/s per worker | runs |",
        "   |---|---|---|---|---|---|",
    ]
    for (workers, processor, tree), processes in sorted(groups.items()):
        runs = sum(
            1 for r in results if (r.workers, r.processor, r.tree) == (workers, processor, tree)
        )
        cpu = sum(p.cpu_ms_per_s for p in processes) / len(processes)
        wakeups = sum(p.wakeups_per_s for p in processes) / len(processes)
        lines.append(
            f"   | {workers} | {processor} | {tree} | {cpu:.2f} | {wakeups:.1f} | {runs} |"
        )
    return lines


def run(opts: Options) -> list[RunResult]:
    trees = [overload.current_tree()]
    if opts.baseline is not None:
        trees.insert(0, overload.baseline_tree(opts.baseline))
    pinning = load.Pinning(opts.pin)
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        workdir = Path(tmp)
        processor_port: int | None = None
        processor: subprocess.Popen[bytes] | None = None
        if "tcp" in opts.processors:
            processor_port = load.free_port((socket.SOCK_STREAM,))
            current = overload.current_tree()
            processor = subprocess.Popen(
                [
                    *pinning.prefix(PROCESSOR_CPU),
                    *(current.python, "-m", "edgeport", "--log-level", "warning"),
                    *("builtin-processor", "--bind", f"127.0.0.1:{processor_port}"),
                ],
                env=current.env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for tree in trees:
            print(f"   {tree.label}: {_imported_from(tree, workdir)}", flush=True)
        try:
            for _round in range(opts.rounds):
                for workers in opts.workers:
                    for kind in opts.processors:
                        for tree in trees:
                            result = measure(
                                tree, workers, kind, processor_port, opts, pinning, workdir
                            )
                            results.append(result)
                            print("\n".join(describe(result)), flush=True)
        finally:
            if processor is not None:
                _stop(processor)
    where = (
        f"edgeport pinned to CPU {EDGEPORT_CPU}, the TCP processor to CPU {PROCESSOR_CPU}"
        if pinning.enabled
        else "not pinned"
    )
    print(f"   idle {opts.seconds:g} s per run; {where}", flush=True)
    print("\n".join(summary(results)), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Options from ``argv``, else (``python -m benchmarks idle``) from ``EDGEPORT_IDLE_ARGS``."""
    if argv is None:
        argv = shlex.split(os.environ.get("EDGEPORT_IDLE_ARGS", ""))
    opts = parse_options(argv)
    # SIGTERM ends the run through its finally blocks: the processes it started stop too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        run(opts)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
