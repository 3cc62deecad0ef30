"""The built-in processor as a handler, and serving a Routr Processor over gRPC (contract §1).

:class:`BuiltinProcessor` is the ``ProcessMessage`` handler in front of the
:class:`~edgeport.builtin.router.Router`: ``process(request)`` is plain,
synchronous and never raises (a bug answers 500). edgeport calls it in
process when ``processor.addr`` is ``builtin``; ``edgeport
builtin-processor`` serves it over gRPC with :func:`serve_processor_service`.

The gRPC server is grpcio's (``grpc.server``), the same stack as edgeport's
processor client. It runs on its own threads: gRPC's C core does the HTTP/2
work and a thread pool runs the handler. The built-in processor gets ONE
worker thread: its registrar is not thread-safe, the handler is short and
CPU-bound (more threads would only contend for the GIL), and one thread
needs no lock. grpc.aio in a thread of its own was the other choice; it
would add an asyncio loop and hand-offs for no gain with a synchronous
handler. :func:`serve_processor_service` is a trio function in the usual
``serve_*`` shape: it reports the bound port through ``task_status.started``
and serves until cancelled; then it stops the server, which cancels calls
still running and closes every connection, so a stopped processor looks
stopped to its clients.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

import grpc
import trio

from edgeport._proto import processor_pb2_grpc, sipmessage_pb2
from edgeport.builtin.config import (
    BuiltinSettings,
    PeersConfigError,
    load_builtin_file,
    parse_network,
)
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router, reply
from edgeport.processor import MAX_MESSAGE_BYTES, grpc_target

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
    from edgeport.builtin.config import StaticPeer
    from edgeport.builtin.edge import Network
    from edgeport.config import EdgePortConfig

logger = logging.getLogger(__name__)

STOP_TIMEOUT: Final = 5.0  # seconds to wait for the server to finish stopping

SERVER_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    # The same cap as the client's (a SIP message of 1 MiB and its envelope).
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Accept the clients' keepalive PINGs (edgeport's: every 30 s while calls
    # run) instead of answering them with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A second processor started on a port in use fails to bind instead of
    # silently sharing the port (gRPC core sets SO_REUSEPORT by default).
    ("grpc.so_reuseport", 0),
)


class BuiltinProcessor(processor_pb2_grpc.ProcessorServicer):
    """The router behind ``ProcessMessage``: one request, one decision."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def process(self, request: MessageRequest) -> MessageResponse:
        """The router's decision; a bug answers 500 (logged), never a silent drop."""
        try:
            return self.router.process(request)
        except Exception:
            logger.exception("processing %s failed (call %s)", request.method, request.ref)
            return reply(sipmessage_pb2.ResponseType.SERVER_INTERNAL_ERROR)

    def ProcessMessage(
        self, request: MessageRequest, context: grpc.ServicerContext
    ) -> MessageResponse:
        return self.process(request)


def builtin_processor(
    *,
    peers: Mapping[str, StaticPeer] | None = None,
    relay_to: Sequence[Network] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BuiltinProcessor:
    """A built-in processor with an empty registrar; ``clock`` drives binding expiry.

    ``relay_to``: the networks it relays to; None means each request's localnets.
    """
    return BuiltinProcessor(Router(Registrar(clock), peers=peers, relay_to=relay_to))


def builtin_processor_for(
    config: EdgePortConfig, *, clock: Callable[[], float] = time.monotonic
) -> BuiltinProcessor:
    """The built-in processor edgeport runs for ``spec.processor.addr: builtin``.

    Peers come from the ``spec.builtin.peers`` file; the relay networks from
    ``spec.builtin.relayTo``, else the file's ``relayTo``, else each request's
    localnets. Raises PeersConfigError, each line naming the key.
    """
    settings = BuiltinSettings(peers={})
    if config.builtin.peers is not None:
        try:
            settings = load_builtin_file(config.builtin.peers)
        except PeersConfigError as error:
            lines = [f"spec.builtin.peers: {line}" for line in error.problems]
            raise PeersConfigError(lines) from None
        logger.info("%d static peers from %s", len(settings.peers), config.builtin.peers)
    relay_to = settings.relay_to
    if config.builtin.relay_to is not None:
        relay_to = tuple(parse_network(network) for network in config.builtin.relay_to)
    return builtin_processor(peers=settings.peers, relay_to=relay_to, clock=clock)


async def serve_processor_service(
    servicer: processor_pb2_grpc.ProcessorServicer,
    bind_host: str,
    bind_port: int,
    *,
    max_workers: int = 1,
    grace: float | None = None,
    target: str | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a Processor servicer until cancelled; ``task_status.started(port)``.

    ``bind_port`` 0 picks a free port. ``max_workers`` threads run the
    handler (a handler that sleeps or blocks needs more than one).
    ``grace``: seconds calls still running get to finish when stopping.
    ``target`` (``unix:/path``) replaces ``bind_host`` and ``bind_port``.
    """
    target = target or grpc_target(bind_host, bind_port)
    workers = ThreadPoolExecutor(max_workers, thread_name_prefix="processor")
    server = grpc.server(workers, options=SERVER_OPTIONS)
    processor_pb2_grpc.add_ProcessorServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    try:
        port = server.add_insecure_port(target)
    except RuntimeError as error:  # grpcio's "Failed to bind to address"
        workers.shutdown(wait=False)
        raise OSError(f"cannot listen on {target}: {error}") from None
    server.start()
    try:
        logger.info("processor listening on %s", _shown(target, bind_host, port))
        task_status.started(port)
        await trio.sleep_forever()
    finally:
        stopped = server.stop(grace)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(stopped.wait, STOP_TIMEOUT)
        workers.shutdown(wait=False)
        logger.info("processor on %s stopped", _shown(target, bind_host, port))


def _shown(target: str, bind_host: str, port: int) -> str:
    """The address to log: a Unix target as is, else host and the bound port."""
    return target if target.startswith("unix:") else grpc_target(bind_host, port)


async def serve_builtin_processor(
    bind_host: str,
    bind_port: int,
    *,
    peers: Mapping[str, StaticPeer] | None = None,
    relay_to: Sequence[Network] | None = None,
    clock: Callable[[], float] = time.monotonic,
    grace: float | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the built-in processor over gRPC until cancelled; ``task_status.started(port)``."""
    await serve_processor_service(
        builtin_processor(peers=peers, relay_to=relay_to, clock=clock),
        bind_host,
        bind_port,
        grace=grace,
        task_status=task_status,
    )
