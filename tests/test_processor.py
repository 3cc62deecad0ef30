"""ProcessorClient against a real grpclib processor on 127.0.0.1 (trio-asyncio).

asyncio timers do not follow trio's MockClock, so the deadline tests use
short real timeouts (0.2 s) against a processor that sleeps longer.
"""

from __future__ import annotations

import socket

import pytest
import trio
import trio_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.processor import (
    ProcessorFailed,
    ProcessorTimeout,
    ProcessorUnavailable,
    open_processor_client,
    parse_processor_addr,
)
from tests.support.grpc_processor import ScriptableProcessor, start_processor

DEADLINE = 10  # seconds, for any one test's I/O


def invite(ref: str = "a84b4c76e66710@pc33.atlanta.example.com") -> MessageRequest:
    request = MessageRequest(
        ref=ref,
        edge_port_ref="edgeport-01",
        method=Method.INVITE,
        sender={"host": "192.0.2.10", "port": 5060, "transport": 0},
        listening_points=[{"host": "0.0.0.0", "port": 5060, "transport": 0}],
        external_addrs=["203.0.113.5"],
        localnets=["10.0.0.0/8"],
    )
    request.message.request_uri.user = "bob"
    request.message.request_uri.host = "biloxi.example.com"
    request.message.request_uri.port = -1
    request.message.call_id.call_id = ref
    return request


def tag_with_ref(request: MessageRequest) -> MessageResponse:
    """Forward, and say which request this reply belongs to."""
    return MessageResponse(message=request.message, metadata={"ref": request.ref})


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_call_returns_the_processor_reply_and_counts_it() -> None:
    processor = ScriptableProcessor(tag_with_ref)
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                assert client.last_success_at is None
                reply = await client.process(invite())
                assert client.calls == 1
                assert client.errors == 0
                assert client.last_success_at is not None
                assert client.total_latency > 0
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "a84b4c76e66710@pc33.atlanta.example.com"
    assert reply.message.request_uri.user == "bob"
    assert processor.requests == [invite()]


async def test_nothing_listening_is_unavailable_not_a_timeout() -> None:
    port = unused_port()
    with trio.fail_after(DEADLINE):
        async with (
            trio_asyncio.open_loop(),
            open_processor_client(f"127.0.0.1:{port}", timeout=3.0) as client,
        ):
            with pytest.raises(ProcessorUnavailable):
                await client.process(invite())
            assert client.errors == 1
            assert isinstance(client.last_error, ProcessorUnavailable)
            assert client.last_success_at is None


async def test_slow_processor_is_a_timeout() -> None:
    processor = ScriptableProcessor(delay=2.0)
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=0.2) as client:
                with pytest.raises(ProcessorTimeout):
                    await client.process(invite())
                assert client.errors == 1
                # The channel stays usable once the processor is quick again.
                processor.delay = 0.0
                await client.process(invite())
                assert client.errors == 1
            nursery.cancel_scope.cancel()


async def test_grpc_error_status_is_processor_failed_with_status_and_message() -> None:
    processor = ScriptableProcessor(failure=GRPCError(Status.INVALID_ARGUMENT, "no route table"))
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorFailed) as caught:
                    await client.process(invite())
            nursery.cancel_scope.cancel()
    assert caught.value.status == Status.INVALID_ARGUMENT.value
    assert caught.value.status_name == "INVALID_ARGUMENT"
    assert caught.value.message == "no route table"


async def test_grpc_unavailable_status_is_processor_unavailable() -> None:
    processor = ScriptableProcessor(failure=GRPCError(Status.UNAVAILABLE, "draining"))
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorUnavailable, match="draining"):
                    await client.process(invite())
            nursery.cancel_scope.cancel()


async def test_handler_crash_is_processor_failed() -> None:
    def crash(request: MessageRequest) -> MessageResponse:
        raise RuntimeError("bug in the processor")

    processor = ScriptableProcessor(crash)
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorFailed) as caught:
                    await client.process(invite())
            nursery.cancel_scope.cancel()
    assert caught.value.status_name == "UNKNOWN"


async def test_processor_restart_on_the_same_port_is_picked_up() -> None:
    processor = ScriptableProcessor(tag_with_ref)
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            port = running.port
            async with open_processor_client(running.addr, timeout=3.0) as client:
                await client.process(invite("before"))
                await running.stop()
                with pytest.raises(ProcessorUnavailable):
                    await client.process(invite("while-down"))
                running = await start_processor(nursery, processor, port=port)
                reply = await client.process(invite("after"))
                assert client.calls == 3
                assert client.errors == 1
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "after"
    assert [r.ref for r in processor.requests] == ["before", "after"]


async def test_many_concurrent_calls_share_one_channel() -> None:
    processor = ScriptableProcessor(tag_with_ref, delay=0.05)
    replies: dict[str, str] = {}
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:

                async def call(ref: str) -> None:
                    reply = await client.process(invite(ref))
                    replies[ref] = reply.metadata["ref"]

                async with trio.open_nursery() as calls:
                    for index in range(200):
                        calls.start_soon(call, f"call-{index}")
                assert client.calls == 200
                assert client.errors == 0
            nursery.cancel_scope.cancel()
    assert replies == {f"call-{i}": f"call-{i}" for i in range(200)}


async def test_health_is_a_recent_success_or_an_accepting_port() -> None:
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            async with open_processor_client(f"127.0.0.1:{unused_port()}", timeout=1.0) as down:
                assert not await down.check_health()
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=1.0) as client:
                assert await client.check_health()  # port accepts, no call yet
                await client.process(invite())
                await running.stop()
                assert await client.check_health()  # the success is recent
                assert not await client.check_health(within=0.0)
            nursery.cancel_scope.cancel()


async def test_reply_with_a_response_type_comes_back_intact() -> None:
    def not_found(request: MessageRequest) -> MessageResponse:
        message = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.NOT_FOUND)
        return MessageResponse(message=message)

    processor = ScriptableProcessor(not_found)
    with trio.fail_after(DEADLINE):
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                reply = await client.process(invite())
            nursery.cancel_scope.cancel()
    assert reply.message.WhichOneof("message_type") == "response_type"
    assert reply.message.response_type == sipmessage_pb2.ResponseType.NOT_FOUND


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:51904", ("127.0.0.1", 51904)),
        ("routr-dispatcher:51901", ("routr-dispatcher", 51901)),
        ("[::1]:50051", ("::1", 50051)),
    ],
)
def test_parse_processor_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_processor_addr(addr) == expected


@pytest.mark.parametrize("addr", ["localhost", "localhost:", ":51904", "host:0", "host:70000"])
def test_parse_processor_addr_rejects(addr: str) -> None:
    with pytest.raises(ValueError, match="processor"):
        parse_processor_addr(addr)
