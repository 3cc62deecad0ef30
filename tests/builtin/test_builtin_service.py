"""The gRPC service around the router: listening socket, failures inside the router."""

from __future__ import annotations

import socket
import time

import trio
import trio_asyncio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import UDP
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.builtin.service import BuiltinProcessor, _bound_socket, serve_processor_service
from edgeport.processor import open_processor_client

DEADLINE = 10  # seconds


class BrokenRouter(Router):
    def process(self, request: MessageRequest) -> MessageResponse:
        raise KeyError("a bug")


def options() -> MessageRequest:
    return MessageRequest(
        ref="ping-1@10.0.0.60",
        method=Method.OPTIONS,
        sender={"host": "10.0.0.60", "port": 5060, "transport": UDP},
        message={"request_uri": {"host": "10.0.0.1", "port": 5060, "ttl_param": -1}},
    )


async def test_listening_socket_is_tcp_so_replies_are_not_delayed() -> None:
    # grpclib turns TCP_NODELAY on only for sockets whose protocol is IPPROTO_TCP.
    sock = await _bound_socket("127.0.0.1", 0)
    with sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] != 0


async def test_a_bug_in_the_router_is_answered_500_not_dropped() -> None:
    service = BuiltinProcessor(BrokenRouter(Registrar(time.monotonic)))
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            port = await nursery.start(serve_processor_service, service, "127.0.0.1", 0)
            async with open_processor_client(f"127.0.0.1:{port}", timeout=3.0) as client:
                reply = await client.process(options())
            nursery.cancel_scope.cancel()
    assert reply.message.response_type == sipmessage_pb2.ResponseType.SERVER_INTERNAL_ERROR
