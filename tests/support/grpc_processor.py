"""A scriptable Routr Processor for tests: a real grpclib server whose answers a test sets.

    processor = ScriptableProcessor(reply=lambda request: ...)
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        running = await start_processor(nursery, processor)   # 127.0.0.1, port 0
        ... point a ProcessorClient at running.addr ...
        await running.stop()                                  # connections dropped too
        running = await start_processor(nursery, processor, port=running.port)

Behaviour is plain attributes, changeable between calls: ``reply`` (a function
MessageRequest -> MessageResponse), ``delay`` (seconds, slept on the asyncio
side before answering), ``failure`` (a GRPCError to raise instead of
answering). Every request received is kept in ``requests``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import grpclib.server
import trio
from grpclib.exceptions import GRPCError

from edgeport._proto import processor_grpc, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.builtin.service import serve_processor_service

MAX_KEPT_REQUESTS = 10_000


def echo(request: MessageRequest) -> MessageResponse:
    """Forward the request unchanged (the reply carries the request's message)."""
    return MessageResponse(message=request.message, metadata=dict(request.metadata))


ReplyFunction = Callable[[MessageRequest], MessageResponse]


def answer(response_type: sipmessage_pb2.ResponseType) -> ReplyFunction:
    """A reply function that makes the EdgePort answer with this status."""

    def reply(_request: MessageRequest) -> MessageResponse:
        return MessageResponse(message=sipmessage_pb2.SIPMessage(response_type=response_type))

    return reply


class ScriptableProcessor(processor_grpc.ProcessorBase):
    def __init__(
        self,
        reply: ReplyFunction = echo,
        *,
        delay: float = 0.0,
        failure: GRPCError | None = None,
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.failure = failure
        self.requests: list[MessageRequest] = []

    async def ProcessMessage(
        self, stream: grpclib.server.Stream[MessageRequest, MessageResponse]
    ) -> None:
        request = await stream.recv_message()
        assert request is not None
        if len(self.requests) < MAX_KEPT_REQUESTS:
            self.requests.append(request)
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        await stream.send_message(self.reply(request))


@dataclass
class RunningProcessor:
    host: str
    port: int
    _cancel_scope: trio.CancelScope
    _stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving and close every connection; returns once the port is free."""
        self._cancel_scope.cancel()
        await self._stopped.wait()


async def start_processor(
    nursery: trio.Nursery,
    processor: processor_grpc.ProcessorBase,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningProcessor:
    """Serve ``processor`` in ``nursery`` (inside ``trio_asyncio.open_loop()``)."""

    async def run(task_status: trio.TaskStatus[RunningProcessor]) -> None:
        with trio.CancelScope() as scope:
            running: RunningProcessor | None = None
            try:
                async with trio.open_nursery() as inner:
                    bound = await inner.start(serve_processor_service, processor, host, port)
                    running = RunningProcessor(host, bound, scope)
                    task_status.started(running)
            finally:
                if running is not None:
                    running._stopped.set()

    result: RunningProcessor = await nursery.start(run)
    return result
