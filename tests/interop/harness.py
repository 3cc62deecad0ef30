"""Drives a real edgeport process and real SIPp user agents for the interop tests.

edgeport runs as ``python -m edgeport --config FILE`` with the built-in
processor, on a free UDP+TCP port of 127.0.0.1. Each SIPp runs one scenario
from ``scenarios/`` with a bounded ``-timeout`` and writes its error log,
message trace, final screen and statistics into its own directory; a
:class:`SippRun` keeps them so that a failing test can show what each side
sent and received, next to edgeport's log.

A callee is a SIPp whose main scenario REGISTERs and then waits, and whose
out-of-call scenario (``-oocsf``) takes the request edgeport forwards: that
request carries the caller's Call-ID, which SIPp maps to no call of its own.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SCENARIOS: Final = Path(__file__).parent / "scenarios"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
LOOPBACK: Final = "127.0.0.1"
SIPP_MISSING: Final = (
    "sipp is not installed: the SIPp interop tests need it; .ci/run must install the "
    "Debian package sip-tester (apt-get install sip-tester)"
)
EDGE_START_TIMEOUT: Final = 20.0  # seconds for edgeport to answer an OPTIONS
EDGE_STOP_TIMEOUT: Final = 10.0  # seconds after SIGINT before SIGKILL
SIPP_TIMEOUT: Final = 20  # seconds, SIPp's own -timeout
SIPP_WAIT_TIMEOUT: Final = SIPP_TIMEOUT + 10.0  # seconds we wait for a SIPp to exit
CALLEE_GRACE: Final = 3.0  # seconds a callee gets to finish once its caller failed
REGISTERED_TIMEOUT: Final = 10.0  # seconds for a callee's REGISTER to be answered
POLL_INTERVAL: Final = 0.05  # seconds between checks of a file or a process
LOG_TAIL_LINES: Final = 150  # lines of edgeport's log shown with a failure
METHODS: Final = ("REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE")
EDGEPORT_VARIABLES: Final = frozenset(  # contract §6; the test's config file decides alone
    {
        "CONFIG_PATH",
        "PROCESSOR_ADDR",
        "HOSTNAME",
        "EXTERNAL_ADDRS",
        "LOCALNETS",
        "IGNORE_LOOPBACK_FROM_LOCALNETS",
        "CONSOLE_PUBLISHER_ENABLED",
        "NATS_PUBLISHER_ENABLED",
        "NATS_PUBLISHER_SUBJECT",
        "NATS_PUBLISHER_URL",
        "STRIP_SESSION_PROGRESS_SDP",
        "ENABLE_HEALTHCHECKS",
        "HEALTHCHECK_PORT",
    }
)
_PORT_ATTEMPTS: Final = 50
_LOG_PROBLEM: Final = re.compile(r" (ERROR|CRITICAL) |^Traceback ")


def find_sipp() -> str | None:
    return shutil.which("sipp")


def free_port() -> int:
    """A port of 127.0.0.1 free for both UDP and TCP (edgeport binds both on one)."""
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP after {_PORT_ATTEMPTS} tries")


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# --- edgeport ---------------------------------------------------------------------


def edge_config_yaml(port: int, ref: str = "edgeport-interop") -> str:
    methods = "".join(f"    - {method}\n" for method in METHODS)
    return (
        "kind: EdgePort\n"
        "apiVersion: v2beta1\n"
        f"ref: {ref}\n"
        "spec:\n"
        f"  bindAddr: {LOOPBACK}\n"
        "  transport:\n"
        "    - protocol: udp\n"
        f"      port: {port}\n"
        "    - protocol: tcp\n"
        f"      port: {port}\n"
        "  methods:\n"
        f"{methods}"
        "  localnets:\n"
        "    - 127.0.0.0/8\n"
        "  processor:\n"
        "    addr: builtin\n"
    )


@dataclass
class Edgeport:
    """A running ``python -m edgeport`` on ``host:port`` (UDP and TCP)."""

    host: str
    port: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return _read(self.log_path)

    def log_problems(self) -> list[str]:
        """Lines where edgeport logged an error or a traceback."""
        return [line for line in self.log().splitlines() if _LOG_PROBLEM.search(line)]

    def report(self) -> str:
        status = self.process.poll()
        state = "running" if status is None else f"exited with {status}"
        return (
            f"--- edgeport ({state}) {self.config_path}\n"
            f"{_read(self.config_path)}"
            f"--- edgeport log, last {LOG_TAIL_LINES} lines ({self.log_path})\n"
            f"{_tail(self.log())}\n"
        )


def _options_probe(edge_port: int, own_port: int, tag: str) -> bytes:
    return (
        f"OPTIONS sip:{LOOPBACK}:{edge_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:{own_port};branch=z9hG4bK{tag};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag={tag}\r\n"
        f"To: <sip:{LOOPBACK}:{edge_port}>\r\n"
        f"Call-ID: {tag}@{LOOPBACK}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def wait_edge_ready(edge: Edgeport, timeout: float = EDGE_START_TIMEOUT) -> None:
    """Send OPTIONS over UDP until edgeport answers 200; fail if it exits or stays mute."""
    deadline = time.monotonic() + timeout
    attempt = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        probe.settimeout(0.25)
        own_port = probe.getsockname()[1]
        while time.monotonic() < deadline:
            if edge.process.poll() is not None:
                raise AssertionError(f"edgeport exited before it was ready\n{edge.report()}")
            attempt += 1
            tag = f"ready{attempt}"
            probe.sendto(_options_probe(edge.port, own_port, tag), (edge.host, edge.port))
            try:
                # until the answer to this probe, or a socket timeout
                while time.monotonic() < deadline:
                    data = probe.recv(65536)
                    if data.startswith(b"SIP/2.0 200 ") and f"tag={tag}".encode() in data:
                        return
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # ICMP port unreachable: not bound yet
                time.sleep(POLL_INTERVAL)
    raise AssertionError(f"edgeport did not answer OPTIONS within {timeout} s\n{edge.report()}")


@contextlib.contextmanager
def running_edgeport(workdir: Path, workers: int = 1) -> Iterator[Edgeport]:
    """Start edgeport on a free port, wait until it answers, stop it by PID at the end.

    ``workers`` > 1 runs it as a supervisor with that many worker processes.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "edgeport.yaml"
    config_path.write_text(edge_config_yaml(port), encoding="utf-8")
    log_path = workdir / "edgeport.log"
    env = {key: value for key, value in os.environ.items() if key not in EDGEPORT_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeport",
                "--config",
                str(config_path),
                "--workers",
                str(workers),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    edge = Edgeport(LOOPBACK, port, config_path, log_path, process)
    try:
        wait_edge_ready(edge)
        yield edge
    finally:
        _stop(process, EDGE_STOP_TIMEOUT)


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


# --- SIPp message traces --------------------------------------------------------------

_TRACE_SEPARATOR: Final = re.compile(r"^-{20,} \d{4}-\d\d-\d\d [\d:.]+$", re.MULTILINE)
_TRACE_HEADING: Final = re.compile(r"^(UDP|TCP) message (sent|received)")


@dataclass(frozen=True)
class TracedMessage:
    """One SIP message of a SIPp ``-trace_msg`` file."""

    direction: str  # "sent" or "received"
    transport: str  # "UDP" or "TCP"
    start_line: str
    headers: tuple[tuple[str, str], ...]

    def values(self, name: str) -> list[str]:
        """Every value of a header, in order; comma-joined values are not split."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def entries(self, name: str) -> list[str]:
        """Every value of a header, comma-joined ones split (RFC 3261 §7.3.1)."""
        return [entry for value in self.values(name) for entry in _split_commas(value)]

    def header(self, name: str) -> str:
        values = self.values(name)
        assert values, f"no {name} header in {self.start_line!r}"
        return values[0]

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """The request's method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.header("CSeq").split()[-1]

    @property
    def status(self) -> int | None:
        return None if self.is_request else int(self.start_line.split()[1])

    @property
    def top_branch(self) -> str:
        entries = self.entries("Via")
        assert entries, f"no Via in {self.start_line!r}"
        via = entries[0]
        match = re.search(r";\s*branch=([^;,\s]+)", via)
        assert match, f"no branch in the top Via {via!r}"
        return match.group(1)

    def summary(self) -> str:
        if self.status is None:
            return self.method
        return f"{self.status} {self.method}"


def _split_commas(value: str) -> list[str]:
    """Split at the commas outside <...> and quoted strings."""
    entries: list[str] = []
    current: list[str] = []
    in_angle = in_quote = False
    for char in value:
        if char == '"':
            in_quote = not in_quote
        elif char == "<" and not in_quote:
            in_angle = True
        elif char == ">" and not in_quote:
            in_angle = False
        elif char == "," and not in_angle and not in_quote:
            entries.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    entries.append("".join(current).strip())
    return [entry for entry in entries if entry]


def parse_trace(text: str) -> list[TracedMessage]:
    """The SIP messages of a trace, in order (their bodies are left out).

    SIPp may write its own notices ("Problem EAGAIN on socket...") into the
    file; lines before a block's heading are skipped.
    """
    messages: list[TracedMessage] = []
    for block in _TRACE_SEPARATOR.split(text):
        lines = [line.rstrip("\r") for line in block.splitlines()]
        starts = [index for index, line in enumerate(lines) if _TRACE_HEADING.match(line)]
        if not starts:
            continue
        heading = _TRACE_HEADING.match(lines[starts[0]])
        assert heading is not None
        sip = lines[starts[0] + 1 :]
        while sip and not sip[0].strip():
            sip.pop(0)
        if not sip:
            continue
        headers: list[tuple[str, str]] = []
        for line in sip[1:]:
            if not line.strip():
                break  # the body follows
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        messages.append(
            TracedMessage(
                direction=heading.group(2),
                transport=heading.group(1),
                start_line=sip[0].strip(),
                headers=tuple(headers),
            )
        )
    return messages


# --- SIPp runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class SippRun:
    """What one SIPp process left behind: exit status, statistics and logs."""

    name: str
    command: tuple[str, ...]
    port: int  # the local SIP port (-p)
    returncode: int
    stats: Mapping[str, str]
    errors: str
    trace: str
    screen: str
    output: str

    @property
    def messages(self) -> list[TracedMessage]:
        return parse_trace(self.trace)

    def received(self) -> list[TracedMessage]:
        """Messages received, each once: a retransmission (or a request re-sent
        for a retransmitted response) repeats the start line, CSeq and To of
        an earlier one; a different response (another To tag) is kept.
        """
        seen: set[tuple[str, ...]] = set()
        distinct: list[TracedMessage] = []
        for message in self.messages:
            if message.direction != "received":
                continue
            key = (message.start_line, *message.values("CSeq"), *message.values("To"))
            if key not in seen:
                seen.add(key)
                distinct.append(message)
        return distinct

    def times_received(self, summary: str) -> int:
        """How often a message arrived, retransmissions included ("487 INVITE", "ACK")."""
        return sum(1 for m in self.messages if m.direction == "received" and m.summary() == summary)

    def sent(self) -> list[TracedMessage]:
        return [message for message in self.messages if message.direction == "sent"]

    def report(self) -> str:
        errors = self.errors.strip() or "(none)"
        stats = {k: v for k, v in self.stats.items() if k.endswith("(C)") and v not in ("0", "")}
        return (
            f"=== sipp {self.name}: exit status {self.returncode}\n"
            f"command: {' '.join(self.command)}\n"
            f"statistics: {stats}\n"
            f"--- error log\n{errors}\n"
            f"--- message trace\n{self.trace.strip() or '(empty)'}\n"
            f"--- final screen\n{_tail(self.screen, 40) or _tail(self.output, 40)}\n"
        )


def _read_stats(path: Path) -> dict[str, str]:
    text = _read(path)
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


@dataclass
class SippProcess:
    name: str
    command: tuple[str, ...]
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def trace_path(self) -> Path:
        return self.workdir / "messages.log"

    def wait(self, timeout: float = SIPP_WAIT_TIMEOUT) -> SippRun:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            returncode = self.process.returncode
        return SippRun(
            name=self.name,
            command=self.command,
            port=self.port,
            returncode=returncode,
            stats=_read_stats(self.workdir / "stats.csv"),
            errors=_read(self.workdir / "errors.log"),
            trace=_read(self.trace_path),
            screen=_read(self.workdir / "screen.log"),
            output=_read(self.workdir / "output.log"),
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def wait_listening(self, timeout: float = REGISTERED_TIMEOUT) -> None:
        """Block until this (TCP) SIPp accepts connections on its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=POLL_INTERVAL):
                    return
            except OSError:
                time.sleep(POLL_INTERVAL)
        run = self.wait(timeout=1.0)
        raise AssertionError(f"{self.name} did not listen within {timeout} s\n{run.report()}")

    def wait_registered(self, timeout: float = REGISTERED_TIMEOUT) -> None:
        """Block until the REGISTER's 200 shows in the trace (SIPp flushes it at once)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in parse_trace(_read(self.trace_path)):
                if message.direction == "received" and message.summary() == "200 REGISTER":
                    return
            if self.process.poll() is not None:
                break
            time.sleep(POLL_INTERVAL)
        run = self.wait(timeout=1.0)
        raise AssertionError(f"{self.name} was not registered within {timeout} s\n{run.report()}")


class Sipp:
    """Starts SIPp user agents against one edgeport, each in its own directory."""

    def __init__(self, executable: str, workdir: Path, edge: Edgeport) -> None:
        self.executable = executable
        self.workdir = workdir
        self.edge = edge
        self._started: list[SippProcess] = []

    def start(
        self,
        name: str,
        scenario: str,
        *,
        service: str,
        transport: str = "u1",
        ooc_scenario: str | None = None,
        keys: Mapping[str, str] | None = None,
        timeout: int = SIPP_TIMEOUT,
        port: int | None = None,
    ) -> SippProcess:
        """Start ``scenarios/<scenario>.xml`` for one call to or from ``service``.

        ``port`` is the local SIP port, a free one when None.
        """
        workdir = self.workdir / name
        workdir.mkdir(parents=True)
        port = port or free_port()
        command = [
            self.executable,
            "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-i", LOOPBACK,
            "-p", str(port),
            "-t", transport,
            "-s", service,
            "-m", "1",
            "-timeout", str(timeout),
            "-timeout_error",
            "-nostdin",
            "-trace_err", "-error_file", str(workdir / "errors.log"),
            "-trace_msg", "-message_file", str(workdir / "messages.log"),
            "-trace_screen", "-screen_file", str(workdir / "screen.log"),
            "-trace_stat", "-stf", str(workdir / "stats.csv"),
        ]  # fmt: skip
        if ooc_scenario is not None:
            command += ["-oocsf", str(SCENARIOS / f"{ooc_scenario}.xml")]
        for key, value in (keys or {}).items():
            command += ["-key", key, value]
        command.append(f"{self.edge.host}:{self.edge.port}")
        with (workdir / "output.log").open("wb") as output:  # the child keeps its own copy
            process = subprocess.Popen(
                command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started = SippProcess(name, tuple(command), port, workdir, process)
        self._started.append(started)
        return started

    def run(
        self,
        name: str,
        scenario: str,
        *,
        service: str,
        transport: str = "u1",
        keys: Mapping[str, str] | None = None,
    ) -> SippRun:
        """Start a SIPp and wait for it to exit."""
        return self.start(name, scenario, service=service, transport=transport, keys=keys).wait()

    def stop_all(self) -> None:
        for started in self._started:
            started.stop()


def call(
    sipp: Sipp,
    *,
    callee_scenario: str,
    caller_scenario: str,
    transport: str,
    callee_transport: str | None = None,
    service: str = "bob",
    expires: int = 60,
) -> tuple[SippRun, SippRun]:
    """A callee registers ``service`` and handles what comes; then the caller runs.

    Both use ``transport`` unless ``callee_transport`` is given. Returns
    (caller, callee). A caller that failed does not leave us waiting for the
    callee's own timeout.
    """
    callee = sipp.start(
        "callee",
        "callee_register",
        service=service,
        transport=callee_transport or transport,
        ooc_scenario=callee_scenario,
        keys={"expires": str(expires)},
    )
    callee.wait_registered()
    caller = sipp.run("caller", caller_scenario, service=service, transport=transport)
    return caller, callee.wait(
        timeout=SIPP_WAIT_TIMEOUT if caller.returncode == 0 else CALLEE_GRACE
    )


def expect_success(edge: Edgeport, *runs: SippRun) -> None:
    """Every run exited 0 with its one call successful and edgeport logged no
    error; else show all logs.
    """
    problems = [f"edgeport logged: {line}" for line in edge.log_problems()]
    for run in runs:
        if run.returncode != 0:
            problems.append(f"{run.name}: exit status {run.returncode}")
        elif run.stats.get("SuccessfulCall(C)") != "1" or run.stats.get("FailedCall(C)") != "0":
            problems.append(
                f"{run.name}: {run.stats.get('SuccessfulCall(C)')} successful and "
                f"{run.stats.get('FailedCall(C)')} failed calls, expected 1 and 0"
            )
    if problems:
        details = "\n".join(run.report() for run in runs)
        raise AssertionError("; ".join(problems) + "\n" + details + edge.report())


def describe(edge: Edgeport, *runs: SippRun) -> str:
    """Everything a failing assertion should show."""
    return "\n".join(run.report() for run in runs) + edge.report()
