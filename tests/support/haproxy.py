"""A real HAProxy for tests: TCP-mode frontends on 127.0.0.1 in front of edgeport listeners.

    async with running_haproxy(tmp_path, [Frontend("tcp", edge_port, "send-proxy-v2")]) as ports:
        ... connect to 127.0.0.1:ports["tcp"] ...

Each frontend gets a free port; the backend is one server with the given
PROXY protocol option (``send-proxy`` for v1, ``send-proxy-v2``). HAProxy runs
in the foreground from its own config in ``tmp_path``, and is stopped by its
PID when the block ends. A missing ``haproxy`` fails the test: ``.ci/run``
installs it (Debian package ``haproxy``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.support.ports import free_port, stop_process, wait_listening

START_TIMEOUT: Final = 10.0  # seconds for HAProxy to listen on every frontend


@dataclass(frozen=True)
class Frontend:
    name: str
    backend_port: int
    send_proxy: str  # "send-proxy" (v1) or "send-proxy-v2"


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(
            "haproxy is not installed; the PROXY protocol tests run it for real. "
            "Install it with `apt-get install -y haproxy` (bash .ci/run does).",
            pytrace=False,
        )
    return path


def write_config(directory: Path, frontends: Sequence[Frontend], ports: dict[str, int]) -> Path:
    lines = [
        "global",
        "    maxconn 200",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
    ]
    for frontend in frontends:
        lines += [
            f"frontend {frontend.name}_in",
            f"    bind 127.0.0.1:{ports[frontend.name]}",
            f"    default_backend {frontend.name}_out",
            f"backend {frontend.name}_out",
            f"    server edge 127.0.0.1:{frontend.backend_port} {frontend.send_proxy}",
        ]
    path = directory / "haproxy.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


@asynccontextmanager
async def running_haproxy(
    directory: Path, frontends: Sequence[Frontend]
) -> AsyncIterator[dict[str, int]]:
    """HAProxy with these frontends; yields each frontend's port by name."""
    binary = haproxy_binary()
    ports = {frontend.name: free_port() for frontend in frontends}
    config = write_config(directory, frontends, ports)
    check = await trio.run_process(
        [binary, "-c", "-f", str(config)], capture_stdout=True, capture_stderr=True, check=False
    )
    assert check.returncode == 0, (
        f"haproxy rejects its config:\n{check.stdout.decode()}{check.stderr.decode()}"
    )
    stderr_path = directory / "haproxy.stderr"
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        with trio.fail_after(START_TIMEOUT):
            await wait_listening(process, set(ports.values()), stderr_path)
        yield ports
    finally:
        await stop_process(process)
