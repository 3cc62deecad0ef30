"""The edgeport processes the live fuzzer attacks: real ``edgeport --workers 2`` processes.

Two of them, because a protocol appears once per configuration:

- ``edge``: UDP and TCP on one port, TLS, WS, WSS (a PKCS#12 keystore from a
  trustme CA), ``unknownMethodAction: Respond``;
- ``proxied``: TCP, TLS, WS and WSS, each with ``proxyProtocol: true`` (a PEM
  keystore), the fuzzer's 127.0.1.0/24 and 127.0.0.1 as trusted proxies.

Both: HEP capture to the fuzzer's collector, the flood limit on, localnets set
to a network the fuzzer never uses so that 127.0.0.0/8 is limited (only the
processor's address, 127.0.0.1, is trusted: the probes come from there), a
processor in the fuzzer, health and metrics on a port of their own, a short
shutdown drain; and the newer features (:class:`Features`): WebSocket Pings
every second of silence, large requests over TCP, the TLS files watched for
a reload, next hops named in DNS resolved by the fuzzer's dnsmasq (``edge``)
or by a resolver that never answers (``proxied``). Each is started from a
configuration file and stopped by its PID; its workers' PIDs come from its
log and ``/proc``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
import trustme

from tests.config_fixtures import write_leaf_pkcs12, write_pem
from tests.e2e.conftest import METHODS
from tests.fuzz.listeners import Listener
from tests.support.http_get import http_get
from tests.support.ports import free_port

START_TIMEOUT: Final = 60.0  # seconds for a supervisor and its workers to be healthy
STOP_TIMEOUT: Final = 20.0  # seconds after SIGTERM before SIGKILL (the drain is 2 s)
HTTP_TIMEOUT: Final = 5.0  # seconds for one /healthz or /metrics answer
WORKERS: Final = 2
SHUTDOWN_TIMEOUT: Final = 2.0  # spec.shutdownTimeout: seconds in-flight work gets on SIGTERM
LOCALNETS: Final = ("192.0.2.0/24",)  # not loopback: 127.0.0.0/8 stays flood-limited
TRUSTED_PROXIES: Final = ("127.0.0.1/32", "127.0.1.0/24")
HEP_AGENT_ID: Final = 4242
WS_PING_INTERVAL: Final = 1.0  # seconds: the least edgeport takes, so silent peers go soon
IDLE_TIMEOUT: Final = 600.0  # spec.connections.idleTimeout, seconds (edgeport's default)
LARGE_REQUEST_BYTES: Final = 1300  # spec.largeRequestsOverTcp (RFC 3261 §18.1.1)
WATCH_INTERVAL: Final = 0.5  # spec.reload.watchInterval, seconds
DNS_TIMEOUT: Final = 1.0  # spec.dns.timeout, seconds: a silent resolver fails soon
_ENV_CLEARED: Final = frozenset(
    {
        "CONFIG_PATH",
        "HOSTNAME",
        "WORKERS",
        "LOCALNETS",
        "EXTERNAL_ADDRS",
        "HEP_ADDR",
        "PROCESSOR_ADDR",
        "IGNORE_LOOPBACK_FROM_LOCALNETS",
        "CONSOLE_PUBLISHER_ENABLED",
        "NATS_PUBLISHER_ENABLED",
        "HEALTHCHECK_PORT",
        "ENABLE_HEALTHCHECKS",
    }
)
_WORKER_STARTED: Final = re.compile(r"worker (\d+) started \(pid (\d+)\)")
REPO_ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Features:
    """The newer input paths and features, on in both processes: where each resolves
    next hops named in DNS (``spec.dns.servers``, one ``host:port`` each), WebSocket
    keep-alive Pings, large requests over TCP and the watch of the TLS files."""

    edge_dns: str
    proxied_dns: str
    ws_ping_interval: float = WS_PING_INTERVAL
    large_requests_over_tcp: int = LARGE_REQUEST_BYTES
    watch_interval: float = WATCH_INTERVAL

    def spec(self, dns_server: str) -> dict[str, Any]:
        return {
            "connections": {
                "webSocketPingInterval": self.ws_ping_interval,
                "idleTimeout": IDLE_TIMEOUT,
            },
            "largeRequestsOverTcp": self.large_requests_over_tcp,
            "reload": {"watchInterval": self.watch_interval},
            "dns": {"servers": [dns_server], "timeout": DNS_TIMEOUT},
        }


@dataclass(frozen=True)
class FloodSettings:
    """spec.protection.flood for both processes."""

    requests: int = 100
    window: float = 10.0
    ban_time: float = 5.0


@dataclass
class EdgeProcess:
    name: str
    process: trio.Process
    log: Path
    health_port: int
    listeners: dict[Listener, int]  # listener -> port on 127.0.0.1
    exit_code: int | None = None
    stray_workers_killed: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def worker_pids(self) -> dict[int, list[int]]:
        """Worker index -> every PID its supervisor logged for it, oldest first."""
        found: dict[int, list[int]] = {}
        with self.log.open(errors="replace") as lines:
            for line in lines:
                match = _WORKER_STARTED.search(line)
                if match:
                    found.setdefault(int(match.group(1)), []).append(int(match.group(2)))
        return found

    def children(self) -> set[int]:
        """PIDs of the supervisor's child processes now (``/proc``)."""
        pids: set[int] = set()
        try:
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                text = (task / "children").read_text()
                pids.update(int(pid) for pid in text.split())
        except OSError:
            pass
        return pids

    async def get(self, path: str) -> tuple[int, str]:
        return await http_get(self.health_port, path, HTTP_TIMEOUT)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    pkcs12: Path
    pem: Path
    password: str = "changeit"


def write_certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    return Certificates(
        ca,
        write_leaf_pkcs12(directory / "edge.p12", "changeit", leaf),
        write_pem(directory / "edge.pem", leaf, "changeit"),
    )


def _document(
    ref: str,
    transports: list[dict[str, Any]],
    *,
    processor: str,
    collector: str,
    keystore: dict[str, str],
    flood: FloodSettings,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The configuration document; ``extra`` adds keys to ``spec``."""
    return {
        "kind": "EdgePort",
        "apiVersion": "v2beta1",
        "ref": ref,
        "spec": {
            "bindAddr": "127.0.0.1",
            "transport": transports,
            "methods": list(METHODS),
            "processor": {"addr": processor, "timeout": 3},
            "localnets": list(LOCALNETS),
            "securityContext": keystore,
            "protection": {
                "flood": {
                    "enabled": True,
                    "requests": flood.requests,
                    "window": flood.window,
                    "banTime": flood.ban_time,
                }
            },
            "capture": {"hep": {"addr": collector, "agentId": HEP_AGENT_ID}},
            "shutdownTimeout": SHUTDOWN_TIMEOUT,
            **extra,
        },
    }


def edge_config(
    directory: Path,
    certs: Certificates,
    processor: str,
    collector: str,
    flood: FloodSettings,
    features: Features,
) -> tuple[Path, dict[Listener, int]]:
    sip = free_udp_and_tcp_port()
    ports = {
        Listener.UDP: sip,
        Listener.TCP: sip,
        Listener.TLS: free_port(),
        Listener.WS: free_port(),
        Listener.WSS: free_port(),
    }
    document = _document(
        "fuzz-edge",
        [{"protocol": kind.transport.value, "port": port} for kind, port in ports.items()],
        processor=processor,
        collector=collector,
        keystore={
            "keyStore": str(certs.pkcs12),
            "keyStorePassword": certs.password,
            "keyStoreType": "pkcs12",
        },
        flood=flood,
        extra={"unknownMethodAction": "Respond", **features.spec(features.edge_dns)},
    )
    path = directory / "edge.json"
    path.write_text(json.dumps(document, indent=2))
    return path, ports


def proxied_config(
    directory: Path,
    certs: Certificates,
    processor: str,
    collector: str,
    flood: FloodSettings,
    features: Features,
) -> tuple[Path, dict[Listener, int]]:
    ports = {
        Listener.PROXY_TCP: free_port(),
        Listener.PROXY_TLS: free_port(),
        Listener.PROXY_WS: free_port(),
        Listener.PROXY_WSS: free_port(),
    }
    document = _document(
        "fuzz-proxied",
        [
            {"protocol": kind.transport.value, "port": port, "proxyProtocol": True}
            for kind, port in ports.items()
        ],
        processor=processor,
        collector=collector,
        keystore={
            "keyStore": str(certs.pem),
            "keyStorePassword": certs.password,
            "keyStoreType": "pem",
        },
        flood=flood,
        extra={
            "proxyProtocol": {"trustedProxies": list(TRUSTED_PROXIES)},
            **features.spec(features.proxied_dns),
        },
    )
    path = directory / "proxied.json"
    path.write_text(json.dumps(document, indent=2))
    return path, ports


async def start_edge(
    name: str,
    config: Path,
    listeners: dict[Listener, int],
    directory: Path,
    tree: Path = REPO_ROOT,
) -> EdgeProcess:
    """``edgeport --workers 2 --config <config>`` from the checkout ``tree``; returns once
    /healthz answers 200."""
    health_port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in _ENV_CLEARED}
    env.update(
        ENABLE_HEALTHCHECKS="true",
        HEALTHCHECK_PORT=str(health_port),
        PYTHONPATH=str(tree),
    )
    log = directory / f"{name}.log"
    argv = [sys.executable, "-m", "edgeport", "--config", str(config)]
    argv += ["--workers", str(WORKERS), "--log-level", "info"]
    with log.open("wb") as sink:
        process = await trio.lowlevel.open_process(
            argv, stdout=sink, stderr=sink, env=env, cwd=str(directory)
        )
    edge = EdgeProcess(name, process, log, health_port, listeners)
    try:
        with trio.fail_after(START_TIMEOUT):
            while (await edge.get("/healthz"))[0] != 200:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
                await trio.sleep(0.1)
    except BaseException:
        await stop_edge(edge)
        raise
    return edge


async def stop_edge(edge: EdgeProcess) -> None:
    """SIGTERM the supervisor we started (by PID), SIGKILL if it lingers; then make sure
    no worker it started outlives it (a worker left alone drains and exits by itself)."""
    workers = {pid for pids in edge.worker_pids().values() for pid in pids}
    with trio.CancelScope(shield=True):
        process = edge.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
        edge.exit_code = process.returncode
        with trio.move_on_after(STOP_TIMEOUT):
            while any(alive(pid) for pid in workers):  # bounded by the move_on_after
                await trio.sleep(0.1)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
                edge.stray_workers_killed.append(pid)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
