"""Two workers' meshes in one process, over real hand-off sockets: announcements, a send
for a connection the other holds, and a holder that is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from edgeport.sip.transport import Transport
from edgeport.transports import Connection, InboundMessage, Peer
from edgeport.transports.connections import ConnectionTable
from edgeport.transports.errors import NoRoute
from edgeport.workers.handoff import HandoffLink
from edgeport.workers.mesh import WorkerMesh

if TYPE_CHECKING:
    from pathlib import Path

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


class FakeTransports:
    """What a mesh uses of a transport layer: the connection table and ``send_on``."""

    def __init__(self) -> None:
        self.connections = ConnectionTable()
        self.send_elsewhere: Any = None

    async def send_on(self, conn: Connection, data: bytes) -> None:
        await conn.send(data)


async def nothing_inbound(inbound: InboundMessage) -> None:
    raise AssertionError(f"unexpected inbound message from {inbound.peer}")


async def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_a_send_for_a_browser_held_by_the_other_worker_is_written_there(
    tmp_path: Path,
) -> None:
    meshes = [WorkerMesh(HandoffLink(tmp_path, i, 2), nothing_inbound) for i in range(2)]
    transports = [FakeTransports(), FakeTransports()]
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            scopes = []
            for mesh in meshes:
                scope = trio.CancelScope()
                scopes.append(scope)

                async def serve(mesh: WorkerMesh = mesh, scope: trio.CancelScope = scope) -> None:
                    with scope:
                        await mesh.link.serve(mesh.deliver)

                nursery.start_soon(serve)
            await trio.sleep(0.05)  # both hand-off sockets bound
            for mesh, fake in zip(meshes, transports, strict=True):
                mesh.attach(fake)  # type: ignore[arg-type]
            browser = FakeConnection(Peer(Transport.WS, "127.0.0.1", 50123))
            transports[0].connections.add(browser)
            transports[0].connections.bind_alias(BROWSER, browser)
            await wait_for(lambda: meshes[1].directory.holder(Peer(Transport.WS, BROWSER, 0)) == 0)
            ws_peer = Peer(Transport.WS, "127.0.0.1", 50123)
            assert meshes[1].directory.holder(ws_peer) == 0

            # Worker 1 has no connection for the browser: worker 0 writes the request.
            assert meshes[1].send_elsewhere(Peer(Transport.WS, BROWSER, 0), b"INVITE ...")
            await wait_for(lambda: browser.written == [b"INVITE ..."])
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
