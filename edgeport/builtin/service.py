"""Serving a Routr Processor over gRPC (contract §1), from trio, with grpclib.

:class:`BuiltinProcessor` is the ``ProcessMessage`` handler in front of the
:class:`~edgeport.builtin.router.Router`. :func:`serve_processor_service`
serves any ``ProcessorBase`` handler and is a trio function in the usual
``serve_*`` shape: it runs inside ``trio_asyncio.open_loop()``, reports the
bound port through ``task_status.started`` and serves until cancelled.

grpclib's ``Server.close()`` stops listening and cancels running handlers
but leaves established HTTP/2 connections open, so a client would keep
sending on a connection nobody serves. The server here also closes those
connections, so a stopped processor looks stopped to its clients (they see
the connection drop and reconnect to whatever listens next).
"""

from __future__ import annotations

import logging
import socket
import time
import weakref
from typing import TYPE_CHECKING, Any, Final

import trio
import trio_asyncio
from grpclib.server import Server

from edgeport._proto import processor_grpc, sipmessage_pb2
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router, reply

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import grpclib.server
    from grpclib.protocol import H2Protocol

    from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
    from edgeport.builtin.config import StaticPeer

logger = logging.getLogger(__name__)

LISTEN_BACKLOG: Final = 128


class BuiltinProcessor(processor_grpc.ProcessorBase):
    """The gRPC face of the router: one ``ProcessMessage`` call, one decision."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def ProcessMessage(
        self, stream: grpclib.server.Stream[MessageRequest, MessageResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None  # grpclib reads exactly one message for a unary call
        try:
            response = self.router.process(request)
        except Exception:
            # A bug here must not become a silent drop: answer 500 and log it.
            logger.exception("processing %s failed (call %s)", request.method, request.ref)
            response = reply(sipmessage_pb2.ResponseType.SERVER_INTERNAL_ERROR)
        await stream.send_message(response)


class _ClosingServer(Server):
    """A grpclib Server whose close() also closes the connections it accepted."""

    def __init__(self, handlers: list[Any]) -> None:
        super().__init__(handlers)
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol: H2Protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    def close(self) -> None:
        super().close()
        for protocol in list(self._protocols):
            processor = getattr(protocol, "processor", None)  # set once connected
            if processor is not None:
                processor.close("Server closed")


async def _start_server(handler: Any, sock: socket.socket) -> _ClosingServer:
    server = _ClosingServer([handler])
    await server.start(sock=sock, backlog=LISTEN_BACKLOG)
    return server


async def _stop_server(server: _ClosingServer) -> None:
    server.close()
    await server.wait_closed()


async def _bound_socket(host: str, port: int) -> socket.socket:
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, _type, proto, _canonname, address = infos[0]
    # The protocol must be IPPROTO_TCP: grpclib sets TCP_NODELAY only on such
    # sockets, and without it every reply waits out delayed ACKs (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_processor_service(
    handler: processor_grpc.ProcessorBase,
    bind_host: str,
    bind_port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a Processor handler until cancelled; ``task_status.started(port)``.

    Must run inside ``trio_asyncio.open_loop()``. ``bind_port`` 0 picks a free port.
    """
    sock = await _bound_socket(bind_host, bind_port)
    try:
        server = await trio_asyncio.aio_as_trio(_start_server)(handler, sock)
    except BaseException:
        sock.close()
        raise
    port: int = sock.getsockname()[1]
    try:
        logger.info("processor listening on %s:%s", bind_host, port)
        task_status.started(port)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(_stop_server)(server)
        logger.info("processor on %s:%s stopped", bind_host, port)


async def serve_builtin_processor(
    bind_host: str,
    bind_port: int,
    *,
    peers: Mapping[str, StaticPeer] | None = None,
    clock: Callable[[], float] = time.monotonic,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the built-in processor until cancelled; ``task_status.started(port)``.

    Must run inside ``trio_asyncio.open_loop()``. ``clock`` drives binding
    expiry (tests pass a fake one).
    """
    router = Router(Registrar(clock), peers=peers)
    await serve_processor_service(
        BuiltinProcessor(router), bind_host, bind_port, task_status=task_status
    )
