"""The processor hop over a Unix socket: how workers share the supervisor's built-in processor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from edgeport._proto.common_pb2 import UDP
from edgeport._proto.processor_pb2 import MessageRequest, Method
from edgeport.builtin.service import builtin_processor, serve_processor_service
from edgeport.processor import open_processor_client

if TYPE_CHECKING:
    from pathlib import Path

DEADLINE = 10  # seconds


def options() -> MessageRequest:
    return MessageRequest(
        ref="ping-1@10.0.0.60",
        method=Method.OPTIONS,
        sender={"host": "10.0.0.60", "port": 5060, "transport": UDP},
        localnets=["10.0.0.60/24"],  # the built-in processor relays inside them only
        message={"request_uri": {"host": "10.0.0.1", "port": 5060, "ttl_param": -1}},
    )


async def test_the_builtin_processor_answers_over_a_unix_socket(tmp_path: Path) -> None:
    target = f"unix:{tmp_path / 'processor.sock'}"
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_processor_service(
                    builtin_processor(), "", 0, target=target, task_status=task_status
                )
            )
            async with open_processor_client(target, timeout=3.0) as client:
                assert client.name == target
                reply = await client.process(options())
            nursery.cancel_scope.cancel()
    # The built-in processor forwards an OPTIONS for another host, with its own Via on top.
    assert reply.message.WhichOneof("message_type") == "request_uri"
    assert reply.message.request_uri.host == "10.0.0.1"
    assert reply.message.via[0].branch.startswith("z9hG4bK")
