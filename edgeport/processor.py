"""The gRPC client that asks a Routr Processor (or Dispatcher) what to do with a message.

Contract §1 (the ``ProcessMessage`` unary call) and §4 (every call has a
deadline; a failed call is one clear error, never a silent drop). grpclib is
an asyncio library: this module and ``events.py`` are the only places where
edgeport crosses into asyncio, through trio-asyncio. Callers stay in trio and
see :class:`ProcessorClient` and the :class:`ProcessorError` family only.

One HTTP/2 channel carries every call, concurrently. grpclib connects lazily
and reconnects on the next call after the connection is lost, so a processor
that restarts is picked up without any action here.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import trio
import trio_asyncio
from google.protobuf.message import DecodeError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from edgeport._proto import processor_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 3.0  # seconds, per call
# The trio deadline sits this far behind grpclib's own, so grpclib normally
# reports the timeout and the trio one only catches a call stuck in the bridge.
SAFETY_MARGIN: Final = 0.25  # seconds
HEALTHY_WITHIN: Final = 30.0  # seconds: a success this recent means healthy
HEALTH_CONNECT_TIMEOUT: Final = 1.0  # seconds, for the TCP probe


class ProcessorError(Exception):
    """A ``ProcessMessage`` call did not produce a reply."""


class ProcessorUnavailable(ProcessorError):
    """The processor cannot be reached: refused, reset, or gRPC UNAVAILABLE."""


class ProcessorTimeout(ProcessorError):
    """No reply before the deadline."""


class ProcessorFailed(ProcessorError):
    """The processor answered the call with a gRPC error status (or an undecodable reply)."""

    def __init__(self, status: int, status_name: str, message: str | None) -> None:
        super().__init__(f"{status_name}: {message}" if message else status_name)
        self.status = status  # the gRPC status code
        self.status_name = status_name
        self.message = message


def parse_processor_addr(addr: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` -> (host, port). Raises ValueError.

    Port 0 ("any free port") makes sense only for an address to bind.
    """
    host, sep, port_text = addr.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"processor address must be host:port, got {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not (0 if allow_port_zero else 1) <= port < 65536:
        raise ValueError(f"processor port out of range in {addr!r}")
    return host, port


class ProcessorClient:
    """Calls ``ProcessMessage`` on one channel; use :func:`open_processor_client`.

    Counters are plain attributes for health and metrics: ``calls``,
    ``errors``, ``total_latency`` (seconds over successful calls) and
    ``last_success_at`` (``trio.current_time()``, None before the first).
    """

    def __init__(self, channel: Channel, host: str, port: int, *, timeout: float) -> None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.host = host
        self.port = port
        self.timeout = timeout
        self._channel = channel
        self._stub = processor_grpc.ProcessorStub(channel)
        self.calls = 0
        self.errors = 0
        self.total_latency = 0.0
        self.last_success_at: float | None = None
        self.last_error: ProcessorError | None = None

    async def _call(self, request: MessageRequest) -> MessageResponse:
        # Runs on the asyncio side of trio-asyncio.
        reply: MessageResponse = await self._stub.ProcessMessage(request, timeout=self.timeout)
        return reply

    async def process(self, request: MessageRequest) -> MessageResponse:
        """Send one message to the processor; raise a :class:`ProcessorError` on failure."""
        self.calls += 1
        started = trio.current_time()
        try:
            with trio.fail_after(self.timeout + SAFETY_MARGIN):
                reply: MessageResponse = await trio_asyncio.aio_as_trio(self._call)(request)
        except trio.TooSlowError:
            raise self._failed(ProcessorTimeout(f"no reply within {self.timeout} s")) from None
        except GRPCError as error:
            raise self._failed(_from_grpc_error(error)) from None
        except TimeoutError:
            # grpclib raises asyncio.TimeoutError (the builtin one on 3.11) at its deadline.
            raise self._failed(ProcessorTimeout(f"no reply within {self.timeout} s")) from None
        except (OSError, StreamTerminatedError, ProtocolError) as error:
            raise self._failed(ProcessorUnavailable(_describe(error))) from None
        except DecodeError as error:
            raise self._failed(
                ProcessorFailed(Status.INTERNAL.value, "INTERNAL", f"undecodable reply: {error}")
            ) from None
        now = trio.current_time()
        self.total_latency += now - started
        self.last_success_at = now
        self.last_error = None
        return reply

    def _failed(self, error: ProcessorError) -> ProcessorError:
        self.errors += 1
        self.last_error = error
        return error

    async def check_health(self, *, within: float = HEALTHY_WITHIN) -> bool:
        """True when a call succeeded in the last ``within`` seconds, or the processor accepts TCP.

        No gRPC traffic is invented for this: a processor would take any
        message it receives for real SIP.
        """
        if (
            self.last_success_at is not None
            and trio.current_time() - self.last_success_at <= within
        ):
            return True
        with trio.move_on_after(HEALTH_CONNECT_TIMEOUT):
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as error:
                logger.debug("processor %s:%s health probe failed: %s", self.host, self.port, error)
                return False
            await stream.aclose()
            return True
        return False


def _from_grpc_error(error: GRPCError) -> ProcessorError:
    status = error.status
    if status is Status.UNAVAILABLE:
        return ProcessorUnavailable(f"UNAVAILABLE: {error.message}")
    if status is Status.DEADLINE_EXCEEDED:
        return ProcessorTimeout(f"DEADLINE_EXCEEDED: {error.message}")
    return ProcessorFailed(status.value, status.name, error.message)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _open_channel(host: str, port: int) -> Channel:
    # grpclib binds the channel to the running asyncio loop when it is built.
    return Channel(host, port)


async def _close_channel(channel: Channel) -> None:
    channel.close()
    await asyncio.sleep(0)  # let the transport run its close callbacks


@asynccontextmanager
async def open_processor_client(
    addr: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the deadline of each call, not of this one
) -> AsyncIterator[ProcessorClient]:
    """A :class:`ProcessorClient` for ``host:port``; must run inside ``trio_asyncio.open_loop()``.

    Nothing connects here: the first call does (and a refused connection is
    that call's :class:`ProcessorUnavailable`).
    """
    host, port = parse_processor_addr(addr)
    channel = await trio_asyncio.aio_as_trio(_open_channel)(host, port)
    try:
        yield ProcessorClient(channel, host, port, timeout=timeout)
    finally:
        with trio.CancelScope(shield=True):
            await trio_asyncio.aio_as_trio(_close_channel)(channel)
