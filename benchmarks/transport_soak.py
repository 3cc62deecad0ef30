"""Soak: how much server memory 5,000 idle TCP and 1,000 idle WebSocket connections cost.

``main()`` raises the open-file soft limit to the hard limit, starts the
transport layer (TCP and WS on 127.0.0.1) in a child process, opens the
connections from this process, and prints the child's resident set size
before and after, and per connection. Bounded to two minutes.

Run: ``.venv/bin/python benchmarks/transport_soak.py``
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any, Final

import trio
import trio_websocket

TCP_CONNECTIONS: Final = 5_000
WS_CONNECTIONS: Final = 1_000
CONNECT_CONCURRENCY: Final = 200  # connects in flight, under the listen backlog
TIME_LIMIT: Final = 110.0  # seconds for the whole run


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# -- the server (child process) ----------------------------------------------


async def serve() -> None:
    from edgeport.config import ConnectionLimits, TransportConfig
    from edgeport.sip.transport import Transport
    from edgeport.transports import InboundMessage, TransportLayer, serve_transports

    async def handler(message: InboundMessage) -> None:
        return None

    configs = [
        TransportConfig(Transport.TCP, 0, "127.0.0.1"),
        TransportConfig(Transport.WS, 0, "127.0.0.1"),
    ]
    limits = ConnectionLimits(idle_timeout=600.0, max_connections=20_000)
    async with trio.open_nursery() as nursery:
        layer: TransportLayer = await nursery.start(
            lambda task_status: serve_transports(
                configs, handler, limits=limits, task_status=task_status
            )
        )
        ports = {p.transport.value: p.port for p in layer.listening_points}
        print(json.dumps(ports), flush=True)
        stdin = trio.wrap_file(sys.stdin)
        while line := await stdin.readline():
            if line.strip() == "stats":
                print(json.dumps({"connections": len(layer.connections)}), flush=True)
        nursery.cancel_scope.cancel()


# -- the client (this process) -------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.ports: dict[str, int] = json.loads(self.process.stdout.readline())

    def connections(self) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        return int(reply["connections"])

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def wait_for_connections(server: Server, expected: int) -> int:
    for _ in range(600):
        count = await trio.to_thread.run_sync(server.connections)
        if count >= expected:
            return count
        print(f"  {count} connections so far", file=sys.stderr)
        await trio.sleep(0.1)
    return count


async def hold_tcp(port: int, limiter: trio.CapacityLimiter, release: trio.Event) -> None:
    async with limiter:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await release.wait()


async def hold_ws(port: int, limiter: trio.CapacityLimiter, release: trio.Event) -> None:
    async with trio.open_nursery() as nursery:  # the WebSocket's reader task lives here
        async with limiter:
            ws = await trio_websocket.connect_websocket(
                nursery, "127.0.0.1", port, "/", use_ssl=False, subprotocols=["sip"]
            )
        await release.wait()
        await ws.aclose()


async def soak(server: Server) -> dict[str, float]:
    figures: dict[str, float] = {}
    release = trio.Event()
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
    await trio.sleep(0.5)
    figures["rss_idle_kib"] = server.rss_kib()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        for _ in range(TCP_CONNECTIONS):
            nursery.start_soon(hold_tcp, server.ports["tcp"], limiter, release)
        figures["tcp_connections"] = await wait_for_connections(server, TCP_CONNECTIONS)
        figures["tcp_connect_seconds"] = trio.current_time() - start
        await trio.sleep(0.5)
        figures["rss_tcp_kib"] = server.rss_kib()

        start = trio.current_time()
        for _ in range(WS_CONNECTIONS):
            nursery.start_soon(hold_ws, server.ports["ws"], limiter, release)
        total = await wait_for_connections(server, TCP_CONNECTIONS + WS_CONNECTIONS)
        figures["ws_connections"] = total - figures["tcp_connections"]
        figures["ws_connect_seconds"] = trio.current_time() - start
        await trio.sleep(0.5)
        figures["rss_all_kib"] = server.rss_kib()
        release.set()
    return figures


async def run_client() -> dict[str, float]:
    server = await trio.to_thread.run_sync(Server)
    try:
        with trio.fail_after(TIME_LIMIT):
            return await soak(server)
    finally:
        await trio.to_thread.run_sync(server.stop)


def main() -> None:
    limit = raise_fd_limit()
    print(f"open-file limit: {limit}")
    figures = trio.run(run_client)
    tcp = figures["tcp_connections"]
    ws = figures["ws_connections"]
    idle = figures["rss_idle_kib"]
    tcp_cost = figures["rss_tcp_kib"] - idle
    ws_cost = figures["rss_all_kib"] - figures["rss_tcp_kib"]
    print(f"server RSS before:             {idle / 1024:8.1f} MiB")
    print(
        f"server RSS with {int(tcp)} TCP:     {figures['rss_tcp_kib'] / 1024:8.1f} MiB"
        f"  ({tcp_cost / tcp:.1f} KiB per TCP connection,"
        f" opened in {figures['tcp_connect_seconds']:.1f} s)"
    )
    print(
        f"server RSS with {int(ws)} WS more:  {figures['rss_all_kib'] / 1024:8.1f} MiB"
        f"  ({ws_cost / max(ws, 1):.1f} KiB per WebSocket connection,"
        f" opened in {figures['ws_connect_seconds']:.1f} s)"
    )
    total = tcp + ws
    print(
        f"overall: {(figures['rss_all_kib'] - idle) / total:.1f} KiB per connection"
        f" over {int(total)} connections"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        trio.run(serve)
    else:
        main()
