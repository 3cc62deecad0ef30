"""A scriptable Routr Processor for tests: a real grpcio server whose answers a test sets.

    processor = ScriptableProcessor(reply=lambda request: ...)
    async with trio.open_nursery() as nursery:
        running = await start_processor(nursery, processor)   # 127.0.0.1, port 0
        ... point a ProcessorClient at running.addr ...
        await running.stop()                                  # connections dropped too
        running = await start_processor(nursery, processor, port=running.port)

Behaviour is plain attributes, changeable between calls: ``reply`` (a function
MessageRequest -> MessageResponse), ``delay`` (seconds, or a function
MessageRequest -> seconds, waited in the server thread before answering),
``failure`` (a grpc.StatusCode to end the call with instead of answering,
``failure_details`` its message). Every request received is kept in
``requests``; calls the client cancelled (or whose deadline passed) while
they were delayed are counted in ``cancelled``.

The server runs handlers on a pool of ``WORKERS`` threads, so a delayed
reply holds one thread and never the others' calls; ``reply`` itself runs
under a lock, one call at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import trio

from edgeport._proto import processor_pb2_grpc, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.builtin.service import serve_processor_service

MAX_KEPT_REQUESTS = 10_000
WORKERS = 64


def echo(request: MessageRequest) -> MessageResponse:
    """Forward the request unchanged (the reply carries the request's message)."""
    return MessageResponse(message=request.message, metadata=dict(request.metadata))


ReplyFunction = Callable[[MessageRequest], MessageResponse]
Delay = float | Callable[[MessageRequest], float]


def answer(response_type: sipmessage_pb2.ResponseType) -> ReplyFunction:
    """A reply function that makes the EdgePort answer with this status."""

    def reply(_request: MessageRequest) -> MessageResponse:
        return MessageResponse(message=sipmessage_pb2.SIPMessage(response_type=response_type))

    return reply


class ScriptableProcessor(processor_pb2_grpc.ProcessorServicer):  # type: ignore[misc]
    def __init__(
        self,
        reply: ReplyFunction = echo,
        *,
        delay: Delay = 0.0,
        failure: grpc.StatusCode | None = None,
        failure_details: str = "",
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.failure = failure
        self.failure_details = failure_details
        self.requests: list[MessageRequest] = []
        self.cancelled = 0
        self._lock = threading.Lock()

    def ProcessMessage(
        self, request: MessageRequest, context: grpc.ServicerContext
    ) -> MessageResponse:
        with self._lock:
            if len(self.requests) < MAX_KEPT_REQUESTS:
                self.requests.append(request)
        delay = self.delay(request) if callable(self.delay) else self.delay
        if delay > 0:
            ended = threading.Event()  # set when the call ends: cancelled, deadline or done
            if context.add_callback(ended.set):
                ended.wait(delay)
            # else: the call had ended before this handler ran
            if not context.is_active():
                with self._lock:
                    self.cancelled += 1
                return MessageResponse()  # nobody reads it
        if self.failure is not None:
            context.abort(self.failure, self.failure_details)
        with self._lock:  # reply functions (a Router, say) need not be thread-safe
            return self.reply(request)


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
    processor: processor_pb2_grpc.ProcessorServicer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningProcessor:
    """Serve ``processor`` over gRPC in ``nursery`` until stopped or cancelled."""

    async def run(task_status: trio.TaskStatus[RunningProcessor]) -> None:
        with trio.CancelScope() as scope:
            running: RunningProcessor | None = None
            try:
                async with trio.open_nursery() as inner:
                    bound = await inner.start(
                        lambda task_status: serve_processor_service(
                            processor, host, port, max_workers=WORKERS, task_status=task_status
                        )
                    )
                    running = RunningProcessor(host, bound, scope)
                    task_status.started(running)
            finally:
                if running is not None:
                    running._stopped.set()

    result: RunningProcessor = await nursery.start(run)
    return result
