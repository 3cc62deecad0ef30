"""The built-in processor's handler, and the gRPC service around it: port, failures inside."""

from __future__ import annotations

import socket
import time

import pytest
import trio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import UDP
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.builtin.service import BuiltinProcessor, serve_processor_service
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


async def test_a_bug_in_the_router_is_answered_500_not_dropped() -> None:
    service = BuiltinProcessor(BrokenRouter(Registrar(time.monotonic)))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_processor_service, service, "127.0.0.1", 0)
            async with open_processor_client(f"127.0.0.1:{port}", timeout=3.0) as client:
                reply = await client.process(options())
            nursery.cancel_scope.cancel()
    assert reply.message.response_type == sipmessage_pb2.ResponseType.SERVER_INTERNAL_ERROR


def test_the_handler_answers_500_for_a_bug_without_any_grpc() -> None:
    reply = BuiltinProcessor(BrokenRouter(Registrar(time.monotonic))).process(options())
    assert reply.message.response_type == sipmessage_pb2.ResponseType.SERVER_INTERNAL_ERROR


async def test_a_port_in_use_is_an_os_error_not_a_shared_port() -> None:
    service = BuiltinProcessor(Router(Registrar(time.monotonic)))
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(DEADLINE), pytest.raises(OSError, match="cannot listen"):
            await serve_processor_service(service, "127.0.0.1", port)
