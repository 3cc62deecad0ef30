"""Two workers' meshes in one process, over real hand-off sockets: announcements, a send
for a connection the other holds, and a holder that is gone.

Each worker's mesh is wired as the server wires it: the table's observer and the send
side's remote holder at their construction, its receiver against that table and send side.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

from edgeport.sip.transport import Transport
from edgeport.transports import Connection, InboundMessage, Peer
from edgeport.transports.alias_probe import AliasProber
from edgeport.transports.connections import AliasClaim, ConnectionTable
from edgeport.transports.errors import NoRoute
from edgeport.transports.sending import Sender
from edgeport.workers.handoff import HandoffLink
from edgeport.workers.mesh import HandoffReceiver, WorkerMesh

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from edgeport.transports.connections import HolderProber

DEADLINE = 10  # seconds
BROWSER = "m4x8q2.invalid"
LOCAL = Peer(Transport.WS, "127.0.0.1", 5062)


class FakeConnection(Connection):
    def __init__(self, peer: Peer) -> None:
        super().__init__("ws-1", Transport.WS, peer, LOCAL, outbound=False)
        self.written: list[bytes] = []

    async def _send(self, data: bytes) -> None:
        self.written.append(data)

    async def aclose_transport(self) -> None:
        pass


def nothing_queued(inbound: InboundMessage) -> None:
    raise AssertionError(f"unexpected inbound message from {inbound.peer}")


async def no_outbound(transport: Transport, host: str, port: int) -> Connection:
    raise AssertionError(f"unexpected connect to {transport.value}:{host}:{port}")


class Worker:
    """One worker's mesh with the transport parts it plugs into: the connection table
    (the mesh observes it), the send side (the mesh is its remote holder) and the
    receiver of hand-offs."""

    def __init__(
        self,
        link: HandoffLink,
        *,
        clock: Callable[[], float] = time.monotonic,
        prober: HolderProber | None = None,
    ) -> None:
        self.mesh = WorkerMesh(link)
        self.mesh.hello()  # first in every outbox, as a worker process does
        self.connections = ConnectionTable(observer=self.mesh, prober=prober, clock=clock)
        self.sender = Sender(self.connections, no_outbound, Counter(), remote=self.mesh)
        self.receiver = HandoffReceiver(
            self.mesh, self.connections, self.sender.send_on, nothing_queued
        )


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_a_send_for_a_browser_held_by_the_other_worker_is_written_there(
    tmp_path: Path,
) -> None:
    transports = [Worker(HandoffLink(tmp_path, i, 2)) for i in range(2)]
    meshes = [worker.mesh for worker in transports]
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            scopes = []
            for worker in transports:
                scope = trio.CancelScope()
                scopes.append(scope)

                async def serve(worker: Worker = worker, scope: trio.CancelScope = scope) -> None:
                    with scope:
                        await worker.mesh.link.serve(worker.receiver.deliver)

                nursery.start_soon(serve)
            await trio.sleep(0.05)  # both hand-off sockets bound
            browser = FakeConnection(Peer(Transport.WS, "127.0.0.1", 50123))
            transports[0].connections.add(browser)
            transports[0].connections.bind_alias(BROWSER, browser)
            await wait_for(lambda: meshes[1].directory.holder(Peer(Transport.WS, BROWSER, 0)) == 0)
            ws_peer = Peer(Transport.WS, "127.0.0.1", 50123)
            assert meshes[1].directory.holder(ws_peer) == 0

            # Worker 1 has no connection for the browser: worker 0 writes the request.
            assert meshes[1].send_elsewhere(Peer(Transport.WS, BROWSER, 0), b"INVITE ...")
            await wait_for(lambda: browser.written == [b"INVITE ..."])
            # Worker 1's send side hands it over the same way.
            await transports[1].sender.send(Peer(Transport.WS, BROWSER, 0), b"ACK ...")
            await wait_for(lambda: browser.written == [b"INVITE ...", b"ACK ..."])
            # Worker 0 holds it itself: nothing to hand off.
            assert not meshes[0].send_elsewhere(Peer(Transport.WS, BROWSER, 0), b"x")
            # UDP never goes through another worker.
            assert not meshes[1].send_elsewhere(Peer(Transport.UDP, "127.0.0.1", 5060), b"x")

            # A connection that closes is announced: worker 1 forgets its peer and alias.
            other = FakeConnection(Peer(Transport.WS, "127.0.0.1", 50124))
            transports[0].connections.add(other)
            transports[0].connections.bind_alias("other.invalid", other)
            await wait_for(lambda: "other.invalid" in meshes[1].directory.aliases)
            transports[0].connections.remove(other)
            await wait_for(lambda: "other.invalid" not in meshes[1].directory.aliases)
            assert meshes[1].directory.holder(other.peer) is None

            # Worker 0 dies: the first hand-off to it is lost, the next fails at once.
            scopes[0].cancel()
            await wait_for(lambda: not (tmp_path / "worker-0.handoff.sock").exists())
            assert meshes[1].send_elsewhere(Peer(Transport.WS, BROWSER, 0), b"lost")
            await wait_for(lambda: not meshes[1].link.reachable(0))
            with pytest.raises(NoRoute, match="worker 0"):
                meshes[1].send_elsewhere(Peer(Transport.WS, BROWSER, 0), b"refused")

            nursery.cancel_scope.cancel()


class ProbedConnection(FakeConnection):
    """A browser connection whose Pong comes back (``alive``) or never does."""

    def __init__(self, peer: Peer, *, alive: bool) -> None:
        super().__init__(peer)
        self.alive = alive
        self.probes = 0

    async def probe(self) -> None:
        self.probes += 1
        if not self.alive:
            await trio.sleep_forever()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def two_workers(
    tmp_path: Path, clocks: tuple[Clock, Clock] | None = None
) -> AsyncIterator[tuple[list[WorkerMesh], list[Worker], trio.Nursery]]:
    """Two meshes over real hand-off sockets, each with a table that probes holders
    (0.2 s for a Pong)."""
    async with trio.open_nursery() as nursery:
        transports = [
            Worker(
                HandoffLink(tmp_path, i, 2),
                clock=time.monotonic if clocks is None else clocks[i],
                prober=AliasProber(nursery, timeout=0.2),
            )
            for i in range(2)
        ]
        for worker in transports:
            await nursery.start(worker.mesh.link.serve, worker.receiver.deliver)
        yield [worker.mesh for worker in transports], transports, nursery
        nursery.cancel_scope.cancel()


async def test_websocket_alias_hijack_a_worker_does_not_bind_an_alias_another_worker_holds(
    tmp_path: Path,
) -> None:
    alias = Peer(Transport.WS, BROWSER, 0)
    with trio.fail_after(DEADLINE):
        async with two_workers(tmp_path) as (meshes, transports, _):
            browser = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50200), alive=True)
            transports[0].connections.add(browser)
            transports[0].connections.bind_alias(BROWSER, browser)
            await wait_for(lambda: meshes[1].directory.holder(alias) == 0)
            attacker = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50201), alive=True)
            transports[1].connections.add(attacker)
            assert transports[1].connections.bind_alias(BROWSER, attacker) is AliasClaim.REFUSED
            # Worker 0 probed its holder for the claim; it answered and keeps the alias.
            await wait_for(lambda: browser.probes == 1)
            await trio.sleep(0.3)
            assert transports[1].connections.lookup_alias(BROWSER) is None
            assert meshes[1].directory.holder(alias) == 0
            assert meshes[0].directory.holder(alias) is None
            # What worker 1 routes to the alias is written on the browser's connection.
            assert meshes[1].send_elsewhere(alias, b"BYE ...")
            await wait_for(lambda: browser.written == [b"BYE ..."])
            assert attacker.written == []


async def test_a_browser_reconnected_to_another_worker_takes_its_alias_once_the_old_connection_fails_the_probe(  # noqa: E501
    tmp_path: Path,
) -> None:
    alias = Peer(Transport.WS, BROWSER, 0)
    with trio.fail_after(DEADLINE):
        async with two_workers(tmp_path) as (meshes, transports, _):
            old = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50300), alive=False)
            transports[0].connections.add(old)
            transports[0].connections.bind_alias(BROWSER, old)
            await wait_for(lambda: meshes[1].directory.holder(alias) == 0)
            new = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50301), alive=True)
            transports[1].connections.add(new)
            assert transports[1].connections.bind_alias(BROWSER, new) is AliasClaim.REFUSED
            await wait_for(lambda: old.closed)  # no Pong: worker 0 closed it
            transports[0].connections.remove(old)  # as its transport layer does
            await wait_for(lambda: transports[1].connections.lookup_alias(BROWSER) is new)
            await wait_for(lambda: meshes[0].directory.holder(alias) == 1)
            assert meshes[0].send_elsewhere(alias, b"INVITE ...")
            await wait_for(lambda: new.written == [b"INVITE ..."])


async def test_concurrent_claims_on_two_workers_resolve_to_the_earlier_binding(
    tmp_path: Path,
) -> None:
    alias = Peer(Transport.WS, BROWSER, 0)
    clocks = (Clock(1000.5), Clock(1000.25))  # worker 1's binding is the earlier one
    with trio.fail_after(DEADLINE):
        async with two_workers(tmp_path, clocks) as (meshes, transports, _):
            first = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50400), alive=True)
            second = ProbedConnection(Peer(Transport.WS, "127.0.0.1", 50401), alive=True)
            transports[0].connections.add(first)
            transports[1].connections.add(second)
            # Both bind before either hears of the other.
            assert transports[0].connections.bind_alias(BROWSER, first) is AliasClaim.BOUND
            assert transports[1].connections.bind_alias(BROWSER, second) is AliasClaim.BOUND
            await wait_for(lambda: transports[0].connections.lookup_alias(BROWSER) is None)
            await wait_for(lambda: meshes[0].directory.holder(alias) == 1)
            assert transports[1].connections.lookup_alias(BROWSER) is second
            assert first.aliases == set()
            await trio.sleep(0.2)  # the loser's removal changes nothing on the winner
            assert meshes[1].directory.holder(alias) is None
            assert transports[1].connections.lookup_alias(BROWSER) is second
