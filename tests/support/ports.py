"""Helpers for tests that run a real server process: free ports, readiness, stopping by PID."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Final

import trio

STOP_TIMEOUT: Final = 5.0  # seconds after SIGTERM before SIGKILL
POLL_INTERVAL: Final = 0.02  # seconds between looks at /proc/net/tcp


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1, TCP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_ports() -> set[int]:
    """Ports in LISTEN state on 127.0.0.1 (Linux /proc/net/tcp)."""
    ports: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        address, port = local.split(":")
        if state == "0A" and address == "0100007F":
            ports.add(int(port, 16))
    return ports


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the IPv4 TCP sockets in LISTEN state on ``port``
    (Linux /proc/net/tcp): ``0.0.0.0`` for a socket bound to every address."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port_hex = fields[1].split(":")
        if fields[3] == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


async def wait_listening(process: trio.Process, ports: set[int], log: Path) -> None:
    """Until every port listens; fails with the process's log if it exits first.
    The caller sets the deadline."""
    while not ports <= listening_ports():
        if process.poll() is not None:
            raise AssertionError(
                f"{process.args!r} exited with {process.returncode}:\n{log.read_text()}"
            )
        await trio.sleep(POLL_INTERVAL)


async def stop_process(process: trio.Process) -> None:
    """SIGTERM the process we started (by its PID), SIGKILL if it lingers."""
    with trio.CancelScope(shield=True):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
            return
        process.kill()
        await process.wait()
