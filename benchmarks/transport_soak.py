"""Soak: how much server memory 5,000 idle TCP and 1,000 idle WebSocket connections cost.

``main()`` raises the open-file soft limit to the hard limit, starts the
transport layer (TCP and WS on 127.0.0.1) in a child process, opens the
connections from this process, and prints the child's resident set size
before and after, and per connection of each kind. Bounded to two minutes.

Honest figures: RSS is read only once the server itself reports every
connection of the kind established (in its connection table, so past the TCP
accept or the WebSocket handshake), after a garbage collection in the server
and once RSS has stopped moving; every client connect must have succeeded.

Run: ``PYTHONPATH=. .nox/tests/bin/python -m benchmarks transport_soak``
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from collections import Counter
from typing import Any, Final

import trio
import trio_websocket

TCP_CONNECTIONS: Final = 5_000
WS_CONNECTIONS: Final = 1_000
CONNECT_CONCURRENCY: Final = 200  # connects in flight, under the listen backlog
TIME_LIMIT: Final = 110.0  # seconds for the whole run
SETTLE_INTERVAL: Final = 0.25  # seconds between RSS reads while waiting for it to settle
SETTLE_TOLERANCE_KIB: Final = 64  # two reads this close: settled
GOAL_KIB_PER_CONNECTION: Final = 20.0  # for each kind


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
                # Established connections by transport (past the TCP accept or the
                # WebSocket handshake), and all streams the listeners hold.
                kinds = Counter(conn.transport.value for conn in layer.connections)
                print(json.dumps({"connections": kinds, "stats": layer.stats}), flush=True)
            elif line.strip() == "gc":
                gc.collect()
                print(json.dumps({"ok": True}), flush=True)
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

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{command}\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.process.stdout.readline())
        return reply

    def connections(self, kind: str) -> int:
        """Connections of this transport in the server's connection table."""
        return int(self._ask("stats")["connections"].get(kind, 0))

    def collect(self) -> None:
        self._ask("gc")

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


async def wait_for_connections(server: Server, kind: str, expected: int) -> int:
    for _ in range(600):
        count = await trio.to_thread.run_sync(server.connections, kind)
        if count >= expected:
            return count
        print(f"  {count} {kind} connections so far", file=sys.stderr)
        await trio.sleep(0.1)
    raise RuntimeError(f"only {count} of {expected} {kind} connections established")


async def settled_rss_kib(server: Server) -> int:
    """RSS after a collection in the server, once two reads in a row agree."""
    await trio.to_thread.run_sync(server.collect)
    previous = server.rss_kib()
    while True:
        await trio.sleep(SETTLE_INTERVAL)
        current = server.rss_kib()
        if abs(current - previous) <= SETTLE_TOLERANCE_KIB:
            return current
        previous = current


class Clients:
    """Connects made and failed, so a figure never covers connections that failed."""

    def __init__(self) -> None:
        self.connected: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()


async def hold_tcp(
    port: int, limiter: trio.CapacityLimiter, release: trio.Event, clients: Clients
) -> None:
    try:
        async with limiter:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        clients.failed["tcp"] += 1
        raise
    clients.connected["tcp"] += 1
    async with stream:
        await release.wait()


async def hold_ws(
    port: int, limiter: trio.CapacityLimiter, release: trio.Event, clients: Clients
) -> None:
    async with trio.open_nursery() as nursery:  # the WebSocket's reader task lives here
        try:
            async with limiter:
                ws = await trio_websocket.connect_websocket(
                    nursery, "127.0.0.1", port, "/", use_ssl=False, subprotocols=["sip"]
                )
        except (OSError, trio_websocket.HandshakeError):
            clients.failed["ws"] += 1
            raise
        assert ws.subprotocol == "sip"
        clients.connected["ws"] += 1
        await release.wait()
        await ws.aclose()


def check_clients(clients: Clients, kind: str, expected: int) -> None:
    if clients.failed[kind] or clients.connected[kind] != expected:
        raise RuntimeError(
            f"{kind}: {clients.connected[kind]} of {expected} connected,"
            f" {clients.failed[kind]} failed"
        )


async def soak(server: Server) -> dict[str, float]:
    figures: dict[str, float] = {}
    release = trio.Event()
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)
    clients = Clients()
    figures["rss_idle_kib"] = await settled_rss_kib(server)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        for _ in range(TCP_CONNECTIONS):
            nursery.start_soon(hold_tcp, server.ports["tcp"], limiter, release, clients)
        figures["tcp_connections"] = await wait_for_connections(server, "tcp", TCP_CONNECTIONS)
        figures["tcp_connect_seconds"] = trio.current_time() - start
        check_clients(clients, "tcp", TCP_CONNECTIONS)
        figures["rss_tcp_kib"] = await settled_rss_kib(server)

        start = trio.current_time()
        for _ in range(WS_CONNECTIONS):
            nursery.start_soon(hold_ws, server.ports["ws"], limiter, release, clients)
        figures["ws_connections"] = await wait_for_connections(server, "ws", WS_CONNECTIONS)
        figures["ws_connect_seconds"] = trio.current_time() - start
        # The server counts a WebSocket once its 101 is sent; wait for the clients
        # to have read it too, so no handshake is still in flight.
        while clients.connected["ws"] + clients.failed["ws"] < WS_CONNECTIONS:
            await trio.sleep(0.05)
        check_clients(clients, "ws", WS_CONNECTIONS)
        if await trio.to_thread.run_sync(server.connections, "tcp") != TCP_CONNECTIONS:
            raise RuntimeError("TCP connections were lost while the WebSockets opened")
        figures["rss_all_kib"] = await settled_rss_kib(server)
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
        f"  ({ws_cost / ws:.1f} KiB per WebSocket connection,"
        f" opened in {figures['ws_connect_seconds']:.1f} s)"
    )
    total = tcp + ws
    print(
        f"overall: {(figures['rss_all_kib'] - idle) / total:.1f} KiB per connection"
        f" over {int(total)} connections"
    )
    verdicts = [
        f"{kind} {'ok' if cost < GOAL_KIB_PER_CONNECTION else 'OVER'}"
        for kind, cost in (("TCP", tcp_cost / tcp), ("WebSocket", ws_cost / ws))
    ]
    print(f"goal under {GOAL_KIB_PER_CONNECTION:.0f} KiB per connection: {', '.join(verdicts)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        trio.run(serve)
    else:
        main()
