"""Overload and CPU per message: this tree against a baseline commit, both as real processes.

Everything runs on 127.0.0.1 as in ``benchmarks.load``: the built-in processor
(always this tree's, so only edgeport differs), edgeport (this tree, or the
baseline installed from git into a venv of its own) and SIPp, pinned with
``taskset`` when present (edgeport on CPU 0; processor and SIPp on CPU 1).

1. Max REGISTER/s of this tree: the ramp of ``benchmarks.load`` (a step
   passes with under 1% failed), unless ``--max`` gives it.
2. Overload: SIPp sends REGISTERs over UDP at ``--factors`` times that max
   (1.5x and 3x) for ``--seconds`` each, with its UDP retransmissions (500 ms,
   doubling), a REGISTER failing when no answer came ``RECV_TIMEOUT_MS``
   after it was sent. For the baseline and this tree, in that order, the same
   offered rates. Goodput = 200s to REGISTERs received while the load was
   offered, per second of it (what came during SIPp's drain afterwards is
   left out), also as a share of the max; failed, timed out, other answers (503),
   SIPp's retransmissions, and the p99 REGISTER -> 200 time of what succeeded.
3. CPU per message at a fixed rate: REGISTERs at ``--register-rate`` for
   ``--cpu-seconds``, then calls (INVITE / 180 / 200 / ACK / BYE / 200) at
   ``--call-rate`` for ``--cpu-seconds``; edgeport's user + system CPU
   seconds over the step (``/proc/<pid>/stat``) divided by the REGISTERs or
   calls sent (a REGISTER that failed still cost edgeport its work; how many
   succeeded is shown, a run with failures was disturbed): microseconds per
   REGISTER and per call. Baseline and
   this tree alternate, A B A B, each run on a freshly started stack; the
   ratio this tree / baseline uses the mean of each tree's runs.

The baseline (``--baseline REV``, default ``7da4699``) is ``git archive``d
from this repository into ``~/.cache/edgeport-bench/<commit>/src`` and
installed with pip into ``.../venv``; the cache is reused by later runs.

``--compiled`` compares this tree's two builds instead of two commits: this
tree pure as the baseline, against a copy of it with the codec compiled in
place (``tools/compiled_tree.py``, in the run's temporary directory; the
running Python needs mypyc, ``MYPYC_REQUIREMENTS`` in ``edgeport/compiled.py``).

Run: ``python -m benchmarks overload`` (options from ``main(argv)`` or,
without arguments, from ``EDGEPORT_OVERLOAD_ARGS``), e.g.
``--max 480 --no-baseline``. The figures are printed and written into
``benchmarks/results/results.md`` (its ``## Overload`` section, replaced on
each run; the rest of the file is the load benchmark's).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import io
import math
import os
import runpy
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from benchmarks import load

REPO: Final = load.HERE.parent
CACHE: Final = Path.home() / ".cache" / "edgeport-bench"
BASELINE: Final = "7da4699"
FACTORS: Final = (1.5, 3.0)
OVERLOAD_SECONDS: Final = 20.0  # offered load per overload run
RECV_TIMEOUT_MS: Final = 8_000  # a REGISTER unanswered this long after it was sent fails
MAX_OUTSTANDING: Final = 100_000  # SIPp's -l: never its limit, edgeport's
REGISTER_RATE: Final = 300.0  # REGISTER/s for CPU per message (under the max of 2 vCPUs)
CALL_RATE: Final = 50.0  # calls/s for CPU per message
CPU_SECONDS: Final = 20.0  # per fixed-rate step
CPU_ROUNDS: Final = 2  # A B pairs
RAMP_START: Final = 200.0  # REGISTER/s of the first ramp step
RAMP_BUDGET: Final = 180.0  # seconds for the ramp
INSTALL_TIMEOUT: Final = 600.0  # seconds for the baseline's pip install
SECTION: Final = "## Overload and CPU per message"


# -- options ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    max_register: float | None = None
    factors: tuple[float, ...] = FACTORS
    seconds: float = OVERLOAD_SECONDS
    register_rate: float = REGISTER_RATE
    call_rate: float = CALL_RATE
    cpu_seconds: float = CPU_SECONDS
    cpu_rounds: int = CPU_ROUNDS
    baseline: str | None = BASELINE
    pin: bool = True
    out_dir: Path = load.RESULTS
    compiled: bool = False  # this tree pure against this tree compiled


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks overload", description=__doc__)
    parser.add_argument("--max", type=float, help="max REGISTER/s to use instead of a ramp")
    parser.add_argument(
        "--factors", default=",".join(f"{f:g}" for f in FACTORS), help="offered load / max"
    )
    parser.add_argument("--seconds", type=float, default=OVERLOAD_SECONDS)
    parser.add_argument("--register-rate", type=float, default=REGISTER_RATE)
    parser.add_argument("--call-rate", type=float, default=CALL_RATE)
    parser.add_argument("--cpu-seconds", type=float, default=CPU_SECONDS)
    parser.add_argument("--cpu-rounds", type=int, default=CPU_ROUNDS)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--no-baseline", action="store_true", help="only this tree")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="this tree pure against this tree with the codec compiled (no baseline commit)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--out-dir", type=Path, default=load.RESULTS)
    args = parser.parse_args(list(argv))
    factors = tuple(float(f) for f in args.factors.split(",") if f.strip())
    if not factors or min(factors) <= 0 or args.seconds <= 0 or args.cpu_seconds <= 0:
        parser.error("--factors, --seconds and --cpu-seconds must be positive")
    if args.max is not None and args.max <= 0:
        parser.error("--max must be positive")
    if not 0 <= args.cpu_rounds <= 5:
        parser.error("--cpu-rounds must be 0..5")
    return Options(
        max_register=args.max,
        factors=factors,
        seconds=args.seconds,
        register_rate=args.register_rate,
        call_rate=args.call_rate,
        cpu_seconds=args.cpu_seconds,
        cpu_rounds=args.cpu_rounds,
        baseline=None if args.no_baseline or args.compiled else args.baseline,
        pin=not args.no_pin,
        out_dir=args.out_dir,
        compiled=args.compiled,
    )


def options_from(argv: Sequence[str] | None) -> Options:
    if argv is None:
        argv = shlex.split(os.environ.get("EDGEPORT_OVERLOAD_ARGS", ""))
    return parse_options(argv)


# -- the trees under test ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tree:
    """An edgeport to run: a label, its interpreter, and the environment that imports it."""

    label: str
    python: str
    env: dict[str, str]


def _env_without_pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def current_tree() -> Tree:
    env = _env_without_pythonpath()
    env["PYTHONPATH"] = str(REPO)
    return Tree("current", sys.executable, env)


def compiled_tree(where: Path) -> Tree:
    """A copy of this tree with the codec compiled in place in ``where``."""
    print(f"   compiling the codec into {where}", flush=True)
    tools = runpy.run_path(str(REPO / "tools" / "compiled_tree.py"))
    tools["build_compiled_tree"](where, root=REPO, python=sys.executable)
    env = _env_without_pythonpath()
    env["PYTHONPATH"] = str(where)
    version = subprocess.run(
        [sys.executable, "-m", "edgeport", "--version"],
        cwd=where,  # not this checkout: `-m` puts the working directory first
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    if "(codec: compiled)" not in version:
        raise RuntimeError(f"the copy in {where} does not run the compiled codec: {version!r}")
    return Tree("compiled", sys.executable, env)


def resolve_commit(rev: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"unknown revision {rev!r}: {result.stderr.strip()}")
    return result.stdout.strip()


def cache_dir(commit: str, root: Path = CACHE) -> Path:
    """Where the install of ``commit`` (a full hash) lives; one directory per commit."""
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise ValueError(f"not a full commit hash: {commit!r}")
    return root / commit


def baseline_tree(rev: str, root: Path = CACHE) -> Tree:
    """The baseline commit installed in a venv of its own, built once per commit."""
    commit = resolve_commit(rev)
    where = cache_dir(commit, root)
    python = where / "venv" / "bin" / "python"
    done = where / "installed"
    if not done.exists():
        print(f"   installing baseline {commit[:12]} into {where}", flush=True)
        if where.exists():
            shutil.rmtree(where)  # a half-finished install
        src = where / "src"
        src.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(src, filter="data")
        subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", str(src)],
            check=True,
            timeout=INSTALL_TIMEOUT,
            env=_env_without_pythonpath(),
        )
        done.write_text(commit + "\n")
    return Tree(f"baseline {commit[:7]}", str(python), _env_without_pythonpath())


# -- one stack -------------------------------------------------------------------------


class Run:
    """A processor (this tree's) and an edgeport (``tree``) started in a work directory."""

    def __init__(self, tree: Tree, pinning: load.Pinning, workdir: Path) -> None:
        self.tree = tree
        self.pinning = pinning
        self.workdir = workdir
        self.children = load.Children(workdir)
        self.stack: load.Stack | None = None

    def __enter__(self) -> Run:
        try:
            self.stack = self._start()
        except BaseException:
            self.children.stop_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.children.stop_all()

    def _start(self) -> load.Stack:
        current = current_tree()
        edge_port = load.free_port()
        deadline = time.monotonic() + load.START_TIMEOUT
        processor_port, processor = load.start_processor(
            self.children, self.pinning, deadline, python=current.python, env=current.env
        )
        config = self.workdir / "edgeport.yaml"
        load.write_config(config, edge_port, f"127.0.0.1:{processor_port}")
        edgeport = self.children.start(
            "edgeport",
            [
                *self.pinning.prefix(load.EDGEPORT_CPU),
                self.tree.python, "-m", "edgeport", "--config", str(config),
                "--log-level", "error",
            ],
            env=self.tree.env,
        )  # fmt: skip
        load.wait_edgeport(edge_port, edgeport, deadline)
        return load.Stack(edge_port, processor_port, edgeport, processor)

    @property
    def edgeport_pid(self) -> int:
        assert self.stack is not None
        return self.stack.edgeport.pid

    def sipp(self, scenario: str, rate: float, seconds: float, recv_timeout_ms: int) -> SippResult:
        """One SIPp UAC run at ``rate`` for ``seconds``; its counts and response times."""
        assert self.stack is not None
        calls = max(1, round(rate * seconds))
        stat = self.workdir / f"{scenario}_{rate:.0f}_stat.csv"
        stat.unlink(missing_ok=True)
        hard_limit = seconds + recv_timeout_ms / 1000 + 35  # SIPp gives up on its own before
        command = [
            *self.pinning.prefix(load.LOAD_CPU),
            "sipp", f"127.0.0.1:{self.stack.edge_port}",
            "-sf", str(load.SCENARIOS / f"{scenario}.xml"),
            "-i", "127.0.0.1", "-p", str(load.free_port((socket.SOCK_DGRAM,))),
            "-r", f"{rate:.2f}", "-m", str(calls), "-l", str(MAX_OUTSTANDING),
            "-nd", "-nostdin",
            "-recv_timeout", str(recv_timeout_ms),
            "-timeout", f"{math.ceil(hard_limit)}s",
            "-trace_stat", "-fd", "1", "-stf", str(stat),
            "-trace_rtt", "-rtt_freq", "1",
        ]  # fmt: skip
        if scenario == "register":
            users = self.workdir / "users.csv"
            if not users.exists():
                lines = ["SEQUENTIAL"] + [f"bench{n}" for n in range(load.REGISTER_USERS)]
                users.write_text("\n".join(lines) + "\n")
            command += ["-inf", str(users)]
        else:
            command += ["-s", "callee"]
        cpu_before = load.cpu_seconds(self.edgeport_pid)
        started = time.monotonic()
        proc = self.children.start(f"sipp_{scenario}", command)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=hard_limit + 5)
        self.children.stop(proc)
        elapsed = time.monotonic() - started
        cpu = load.cpu_seconds(self.edgeport_pid) - cpu_before
        values = load.read_stat(stat)

        def count(name: str) -> int:
            return int(values.get(name, "0") or 0)

        attempted = max(calls, count("TotalCallCreated"))
        rows = read_rtt_rows(self.workdir / f"{scenario}_{proc.pid}_rtt.csv")
        return SippResult(
            rate=rate,
            attempted=attempted,
            succeeded=count("SuccessfulCall(C)"),
            timed_out=count("FailedTimeoutOnRecv(C)") + count("FailedMaxUDPRetrans(C)"),
            unexpected=count("FailedUnexpectedMessage(C)"),
            retransmissions=count("Retransmissions(C)"),
            seconds=elapsed,
            window=seconds,
            cpu_seconds=cpu,
            rtts_ms=sorted(rtt for _, rtt in rows),
            done_ms=sorted(done for done, _ in rows),
        )

    def start_uas(self, opts: Options) -> subprocess.Popen[bytes]:
        """The SIPp UAS, registered as ``callee`` (three attempts: a REGISTER may be lost)."""
        assert self.stack is not None
        limit = load.Options(time_limit=opts.cpu_seconds + 60, pin=self.pinning.enabled)
        for attempt in range(3):
            try:
                return load.start_uas(self.children, self.pinning, self.stack.edge_port, limit)
            except RuntimeError as error:
                print(f"   UAS start {attempt + 1} failed: {error}", flush=True)
                print(self.children.log_tail("edgeport", 5), flush=True)
        raise RuntimeError("the SIPp UAS could not register")

    def stop_edgeport(self) -> None:
        assert self.stack is not None
        self.children.stop_gracefully(self.stack.edgeport, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class SippResult:
    rate: float  # offered, per second
    attempted: int
    succeeded: int
    timed_out: int
    unexpected: int  # another answer than 200 (503)
    retransmissions: int  # sent by SIPp
    seconds: float  # from SIPp's start to its exit
    window: float  # seconds of offered load
    cpu_seconds: float  # edgeport's, over the run
    rtts_ms: list[float] = field(repr=False)  # REGISTER/INVITE -> 200, sorted
    done_ms: list[float] = field(repr=False)  # when each 200 came, ms after SIPp's start

    @property
    def failed(self) -> int:
        return self.attempted - self.succeeded

    @property
    def goodput(self) -> float:
        """Successes per second while the load was offered (the drain after it is left out)."""
        done = bisect.bisect_right(self.done_ms, 1000 * self.window)
        return done / self.window

    @property
    def p99_ms(self) -> float | None:
        return load.percentile(self.rtts_ms, 0.99) if self.rtts_ms else None

    @property
    def cpu_us_each(self) -> float | None:
        """edgeport's CPU per REGISTER or call sent, microseconds."""
        return 1e6 * self.cpu_seconds / self.attempted if self.attempted else None


def read_rtt_rows(path: Path) -> list[tuple[float, float]]:
    """(ms after SIPp's start, response time ms) of each success; the file is removed."""
    if not path.exists():
        return []
    rows: list[tuple[float, float]] = []
    with path.open(newline="") as rtt:
        for row in csv.reader(rtt, delimiter=";"):
            if len(row) >= 3 and row[2].strip() == "1":
                with contextlib.suppress(ValueError):
                    rows.append((float(row[0]), float(row[1])))
    path.unlink()
    return rows


# -- the parts -------------------------------------------------------------------------


def measure_max(tree: Tree, pinning: load.Pinning, workdir: Path) -> float:
    """The highest REGISTER rate with under 1% failed (the load benchmark's ramp)."""
    with Run(tree, pinning, workdir) as run:
        assert run.stack is not None
        ramp = load.Load(run.children, pinning, workdir, run.stack, load.Options())
        best = ramp.ramp("register", RAMP_START, time.monotonic() + RAMP_BUDGET)
    if best is None:
        raise RuntimeError(f"no REGISTER rate passed from {RAMP_START:g}/s")
    return best.rate


def overload(
    tree: Tree, pinning: load.Pinning, workdir: Path, max_rate: float, opts: Options
) -> list[SippResult]:
    results = []
    for factor in opts.factors:
        with Run(tree, pinning, workdir) as run:
            result = run.sipp("register", factor * max_rate, opts.seconds, RECV_TIMEOUT_MS)
        results.append(result)
        print(f"   {tree.label:16} {factor:g}x  {describe(result, max_rate)}", flush=True)
    return results


def cpu_per_message(
    tree: Tree, pinning: load.Pinning, workdir: Path, opts: Options
) -> tuple[SippResult, SippResult]:
    """(REGISTERs, calls) at the fixed rates, on one fresh stack."""
    with Run(tree, pinning, workdir) as run:
        registers = run.sipp("register", opts.register_rate, opts.cpu_seconds, 2_000)
        run.start_uas(opts)
        calls = run.sipp("uac_call", opts.call_rate, opts.cpu_seconds, 2_000)
    for kind, result in (("REGISTER", registers), ("call", calls)):
        print(
            f"   {tree.label:16} {kind:8} {result.rate:.0f}/s  {result.succeeded}/"
            f"{result.attempted} ok  {result.cpu_seconds:.2f} CPU s  "
            f"{fmt(result.cpu_us_each)} us each",
            flush=True,
        )
    return registers, calls


def describe(r: SippResult, max_rate: float) -> str:
    p99 = f"{r.p99_ms:.0f}" if r.p99_ms is not None else "-"
    return (
        f"offered {r.rate:.0f}/s: {r.succeeded}/{r.attempted} ok, goodput "
        f"{r.goodput:.0f}/s ({100 * r.goodput / max_rate:.0f}% of max), {r.timed_out} timed out, "
        f"{r.unexpected} other answers, {r.retransmissions} retransmissions, p99 {p99} ms, "
        f"{r.seconds:.0f} s"
    )


# -- results ---------------------------------------------------------------------------


@dataclass
class Report:
    max_register: float
    max_measured: bool
    pinning: str
    overload: dict[str, list[SippResult]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[SippResult, SippResult]]] = field(default_factory=dict)
    wall_seconds: float = 0.0


def mean_us(runs: list[tuple[SippResult, SippResult]], which: int) -> float | None:
    values = [r[which].cpu_us_each for r in runs]
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def render(report: Report, opts: Options) -> str:
    how = "measured (ramp, <1% failed)" if report.max_measured else "given (--max)"
    out = [SECTION, "", "`python -m benchmarks overload`", ""]
    out += [f"Max REGISTER/s of this tree: **{report.max_register:.0f}** ({how}).", ""]
    out += [
        "| tree | offered | offered/s | ok / sent | goodput/s | % of max | timed out "
        "| other answers | SIPp retransmissions | p99 ms (answered) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, results in report.overload.items():
        for factor, r in zip(opts.factors, results, strict=True):
            p99 = f"{r.p99_ms:.0f}" if r.p99_ms is not None else "-"
            out.append(
                f"| {label} | {factor:g}x | {r.rate:.0f} | {r.succeeded} / {r.attempted} "
                f"| {r.goodput:.0f} | {100 * r.goodput / report.max_register:.0f}% "
                f"| {r.timed_out} | {r.unexpected} | {r.retransmissions} | {p99} |"
            )
    out += [
        "",
        "| tree | run | µs CPU per REGISTER (ok / sent) | µs CPU per call, 6 messages "
        "(ok / sent) |",
    ]
    out += ["|---|---|---|---|"]
    for label, runs in report.cpu.items():
        for n, (reg, call) in enumerate(runs, 1):
            out.append(
                f"| {label} | {n} | {fmt(reg.cpu_us_each)} ({reg.succeeded} / {reg.attempted}) "
                f"| {fmt(call.cpu_us_each)} ({call.succeeded} / {call.attempted}) |"
            )
    labels = list(report.cpu)
    if len(labels) == 2:
        base, cur = labels
        for name, which in (("REGISTER", 0), ("call", 1)):
            b = mean_us(report.cpu[base], which)
            c = mean_us(report.cpu[cur], which)
            if b and c:
                out.append(f"| ratio {cur} / {base} | | {name}: {c / b:.2f} | |")
    out += [
        "",
        f"- Overload: SIPp REGISTER over UDP (retransmissions on: 500 ms, doubling), "
        f"{opts.seconds:g} s per rate; a REGISTER fails when unanswered "
        f"{RECV_TIMEOUT_MS // 1000} s after it was sent. Goodput = 200s to REGISTERs "
        "received while the load was offered / its seconds (SIPp's drain afterwards left "
        "out). p99 = SIPp's REGISTER -> 200 time of those answered (4 ms ticks).",
        f"- CPU per message: REGISTER at {opts.register_rate:g}/s and calls at "
        f"{opts.call_rate:g}/s, {opts.cpu_seconds:g} s each, on a fresh stack per run, trees "
        "alternating (A B A B); edgeport's utime + stime (/proc/<pid>/stat) over the step / "
        "REGISTERs or calls sent.",
        f"- {report.pinning}; the processor is always this tree's built-in one. The machine is "
        "shared and noisy: compare figures from one run only.",
        f"- {' / '.join(load.machine())}; run took {report.wall_seconds:.0f} s.",
        "",
    ]
    return "\n".join(out)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of ``path`` (from SECTION to the end), or append it."""
    text = path.read_text() if path.exists() else ""
    at = text.find(SECTION)
    if at >= 0:
        text = text[:at]
    if text and not text.endswith("\n\n"):
        text = text.rstrip("\n") + "\n\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + section)


def run(opts: Options) -> Report:
    started = time.monotonic()
    pinning = load.Pinning(opts.pin)
    print(f"   {pinning.describe()}", flush=True)
    current = current_tree()
    trees = [current]
    if opts.baseline is not None:
        trees.insert(0, baseline_tree(opts.baseline))
    with tempfile.TemporaryDirectory(prefix="edgeport-overload-") as tmp:
        workdir = Path(tmp)
        if opts.compiled:
            current = Tree("pure", current.python, current.env)
            trees = [current, compiled_tree(workdir / "compiled" / "edgeport")]
        max_rate = opts.max_register
        if max_rate is None:
            print("-- max REGISTER/s (ramp)", flush=True)
            max_rate = measure_max(current, pinning, workdir)
        report = Report(max_rate, opts.max_register is None, pinning.describe())
        print(f"-- overload at {', '.join(f'{f:g}x' for f in opts.factors)} of {max_rate:.0f}/s")
        for tree in trees:
            report.overload[tree.label] = overload(tree, pinning, workdir, max_rate, opts)
        if opts.cpu_rounds:
            print("-- CPU per message at fixed rates", flush=True)
            for _ in range(opts.cpu_rounds):
                for tree in trees:
                    result = cpu_per_message(tree, pinning, workdir, opts)
                    report.cpu.setdefault(tree.label, []).append(result)
    report.wall_seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> None:
    opts = options_from(argv)
    if shutil.which("sipp") is None:
        raise RuntimeError("sipp is not installed")
    report = run(opts)
    section = render(report, opts)
    print()
    print(section)
    write_section(opts.out_dir / "results.md", section)
    print(f"* wrote the overload section of {opts.out_dir / 'results.md'}")


if __name__ == "__main__":
    main(sys.argv[1:])
