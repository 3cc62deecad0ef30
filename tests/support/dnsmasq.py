"""A real DNS server for tests: dnsmasq on 127.0.0.1, answering only what the test writes.

    with run_dnsmasq(tmp_path, ["srv-host=_sip._udp.trunk.test,a.trunk.test,5070,10,60"]) as dns:
        ... DnsConfig(servers=(dns.server,)) ...
        dns.set_hosts("127.0.0.2 a.trunk.test")   # the addn-hosts file, reloaded (SIGHUP)

Every name under ``.test`` is local (``local=/test/``): an unknown one is
NXDOMAIN, never sent upstream (there is no upstream: ``--no-resolv``).
Started as the test's own process and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

START_TIMEOUT = 10.0  # seconds for dnsmasq to answer its first query
MAX_START_ATTEMPTS = 5  # ports tried when another process took the one chosen


def dnsmasq_path() -> str | None:
    return shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
    )


@dataclass
class RunningDnsmasq:
    port: int
    hosts_file: Path
    process: subprocess.Popen[bytes]

    @property
    def server(self) -> str:
        """The ``spec.dns.servers`` entry that reaches it."""
        return f"127.0.0.1:{self.port}"

    def query(self, name: str, rdtype: str = "A") -> list[str]:
        """Ask it directly (blocking, short): the answer's records as text."""
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        response = dns.query.udp(request, "127.0.0.1", port=self.port, timeout=0.5)
        return [rdata.to_text() for rrset in response.answer for rdata in rrset]

    def set_hosts(self, text: str) -> None:
        """Rewrite the hosts file and have dnsmasq read it again; waits until it answers
        with the first line's address."""
        self.hosts_file.write_text(text + "\n")
        self.process.send_signal(signal.SIGHUP)
        address, name = text.split()[:2]
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if address in self.query(name):
                return
            time.sleep(0.05)
        raise AssertionError(f"dnsmasq did not reload {self.hosts_file}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def run_dnsmasq(
    directory: Path, lines: Sequence[str], *, hosts: str = "", ttl: int = 60
) -> Iterator[RunningDnsmasq]:
    """dnsmasq with ``lines`` as its configuration (and ``hosts`` as an addn-hosts file)."""
    binary = dnsmasq_path()
    if binary is None:
        raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq-base)")
    conf = directory / "dnsmasq.conf"
    hosts_file = directory / "dnsmasq.hosts"
    hosts_file.write_text(hosts + "\n")
    conf.write_text(
        "\n".join([*lines, "local=/test/", f"local-ttl={ttl}", f"addn-hosts={hosts_file}"]) + "\n"
    )
    for _ in range(MAX_START_ATTEMPTS):
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--no-daemon",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                # As root it would drop to "nobody", who cannot read the test's files.
                *(["--user=root"] if os.geteuid() == 0 else []),
                f"--pid-file={directory / 'dnsmasq.pid'}",
                f"--conf-file={conf}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        running = RunningDnsmasq(port, hosts_file, process)
        try:
            if _wait_ready(running):
                yield running
                return
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stderr is not None:
                process.stderr.close()
    raise RuntimeError("dnsmasq did not start")


def _wait_ready(running: RunningDnsmasq) -> bool:
    """True once it answers; False when it exited (its port was taken)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            return False
        try:
            running.query("ready.invalid-probe.test")
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
            continue
        return True
    return False
