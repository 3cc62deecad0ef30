"""The client that asks a Routr Processor (or Dispatcher) what to do with a message.

Contract §1 (the ``ProcessMessage`` unary call) and §4 (every call has a
deadline; a failed call is one clear error, never a silent drop). Callers
stay in trio and see the :class:`ProcessorClient` interface and the
:class:`ProcessorError` family only. Two clients implement it:

- :class:`GrpcProcessorClient`, over gRPC with grpcio (gRPC's C core). This
  module is the only place in edgeport that knows grpcio's threads exist.
  A call is started as a grpcio future; its completion callback runs on a
  grpcio thread and wakes the waiting trio task through the trio token
  (``TrioToken.run_sync_soon`` -> ``trio.lowlevel.reschedule``). A trio
  cancel scope around the wait cancels the future, so a cancelled call
  leaves neither a thread nor a pending RPC behind. The call's timeout is
  both the trio deadline and the gRPC deadline. No thread is started per
  call: grpcio completes every call of the channel on its own thread, and
  calls that end close together wake the trio loop once.
- :class:`InProcessProcessorClient`, which calls a synchronous handler (the
  built-in processor's) directly, with no gRPC loopback.

One gRPC channel carries every call, concurrently, over one HTTP/2
connection. grpcio connects, keeps the connection alive and reconnects
(with a bounded backoff) by itself, so a processor that restarts is picked
up without any action here. Readiness (``/readyz``) comes from the
channel's connectivity state and from recent successful calls. The state is
read when asked (:class:`_ConnectivityReader`: gRPC core answers at once,
from memory), not watched: grpcio's watcher (``channel.subscribe``) is a
thread that wakes every 0.2 s and keeps gRPC core's threads waking for its
deadlines, for as long as the channel lives, idle or not.
"""

from __future__ import annotations

import collections
import logging
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

import grpc
import trio

from edgeport._proto import processor_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 3.0  # seconds, per call
HEALTHY_WITHIN: Final = 30.0  # seconds: a success this recent means ready while (re)connecting
SPIN_IDLE_RELEASE: Final = 10.0  # seconds without a call before grpcio's thread may end
CONNECTIVITY_POLL: Final = 0.2  # seconds: how often grpcio's watcher thread (the fallback) looks

# The largest SIP message edgeport accepts is 1 MiB (a body included); the
# MessageRequest around it adds the edge's addresses and the metadata. Both
# directions are capped a little above that, so a runaway message is a clear
# RESOURCE_EXHAUSTED instead of megabytes on the wire (grpcio's defaults:
# sending unlimited, receiving 4 MiB).
MAX_MESSAGE_BYTES: Final = 1024 * 1024 + 256 * 1024

CHANNEL_OPTIONS: Final[tuple[tuple[str, int], ...]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # HTTP/2 PING every 30 s while calls are in flight, and the connection is
    # dropped (then re-established) when the answer takes more than 10 s: a
    # processor host that vanished without a FIN is noticed within 40 s, not
    # after the kernel's TCP timeout of many minutes. No pings on an idle
    # connection: servers (grpc-js, gRPC core) refuse frequent ones by default.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    # After a lost connection grpcio retries at 0.25 s, doubling up to 2 s
    # (its defaults: 1 s up to 120 s). A restarted processor is back in use
    # within about 2 s; calls made while it is down fail at once with
    # UNAVAILABLE (503 upstream) instead of waiting for it.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # Never let the channel go idle after a quiet spell (default 30 min): the
    # first call after it would pay for a new connection, and readiness would
    # not know whether the processor is there.
    ("grpc.client_idle_timeout_ms", 2**31 - 1),
    # This channel's connection is its own, not shared with other channels to
    # the same address in the process (the tests open several).
    ("grpc.use_local_subchannel_pool", 1),
)


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


class ProcessorClient(Protocol):
    """What the rest of edgeport uses: one call, readiness, close."""

    @property
    def name(self) -> str:
        """Where the processor is, for logs and the readiness problem."""
        ...

    async def process(self, request: MessageRequest) -> MessageResponse:
        """Send one message to the processor; raise a :class:`ProcessorError` on failure."""
        ...

    def ready(self) -> bool:
        """Whether calls are expected to succeed now (``/readyz``)."""
        ...

    def close(self) -> None:
        """Release the client; calls after this fail."""
        ...


UNIX_TARGET_PREFIX: Final = "unix:"  # a processor on a Unix socket: ``unix:/path``


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


def grpc_target(host: str, port: int) -> str:
    """The gRPC target for host and port: IPv6 literals go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_timeout(timeout: float) -> None:
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


class _Completions:
    """Ended calls handed to the trio loop in batches.

    Every hand-over from a grpcio thread to trio wakes the loop with a write
    on a socket pair. The first call that ends after a hand-over asks trio to
    run :meth:`_wake_all` soon; the calls that end before it runs join its
    batch, and cost no wake-up of their own. Under load, one wake-up carries
    many completions.

    No lock: ``deque.append`` and ``popleft`` are atomic, and ``_wake_all``
    clears the flag before it drains, so a call seen with the flag set is
    always drained by the run that flag announced (at worst a run finds
    nothing left).
    """

    __slots__ = ("_ended", "_scheduled", "_token")

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._ended: collections.deque[_PendingCall] = collections.deque()
        self._scheduled = False

    def ended(self, pending: _PendingCall) -> None:
        """A call ended (on a grpcio thread, or at once in ``add_done_callback``)."""
        self._ended.append(pending)
        if self._scheduled:
            return
        self._scheduled = True
        try:  # noqa: SIM105 - once per batch: a bare try is the cheapest
            self._token.run_sync_soon(self._wake_all)
        except trio.RunFinishedError:
            pass  # the trio run ended while calls were in flight: nobody waits for them

    def _wake_all(self) -> None:
        # In the trio loop.
        self._scheduled = False
        ended = self._ended
        while ended:
            ended.popleft().wake()


class _PendingCall:
    """One call in flight: the grpcio future and the trio task waiting for it.

    ``on_done`` runs on a grpcio thread (or at once, in ``add_done_callback``,
    when the call has already ended); it only hands the call to the trio loop
    (:class:`_Completions`). ``wake`` runs in the trio loop and reschedules the
    task unless the wait was aborted (cancelled) meanwhile.
    """

    __slots__ = ("aborted", "completions", "future", "task")

    def __init__(
        self,
        future: grpc.Future[MessageResponse],
        task: trio.lowlevel.Task,
        completions: _Completions,
    ) -> None:
        self.future = future
        self.task = task
        self.completions = completions
        self.aborted = False

    def on_done(self, _future: grpc.Future[MessageResponse]) -> None:
        self.completions.ended(self)

    def wake(self) -> None:
        if not self.aborted:
            trio.lowlevel.reschedule(self.task)

    def abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self.aborted = True
        self.future.cancel()
        return trio.lowlevel.Abort.SUCCEEDED


class GrpcProcessorClient:
    """Calls ``ProcessMessage`` on one grpcio channel; use :func:`open_processor_client`.

    Counters are plain attributes for health and metrics: ``calls``,
    ``errors``, ``total_latency`` (seconds over successful calls),
    ``last_success_at`` (``trio.current_time()``, None before the first) and
    ``in_flight`` (calls started and not yet ended or cancelled).
    """

    def __init__(self, host: str, port: int, *, timeout: float, target: str | None = None) -> None:
        _check_timeout(timeout)
        self.host = host
        self.port = port
        # A gRPC target of its own (``unix:/path``) replaces host and port.
        self._target = target or grpc_target(host, port)
        self.timeout = timeout
        self.calls = 0
        self.errors = 0
        self.in_flight = 0
        self.total_latency = 0.0
        self.last_success_at: float | None = None
        self.last_error: ProcessorError | None = None
        self._completions = _Completions(trio.lowlevel.current_trio_token())
        # Written by grpcio's connectivity thread (only where the state cannot be
        # read when asked), read by trio: one attribute assignment, atomic under
        # the GIL, so no lock is needed.
        self._watched = grpc.ChannelConnectivity.IDLE
        self._channel = grpc.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        stub = processor_pb2_grpc.ProcessorStub(self._channel)  # type: ignore[no-untyped-call]
        self._call: Callable[..., grpc.Future[MessageResponse]] = stub.ProcessMessage.future
        self._closed = False
        self._spin = _SpinThreadKeeper(self._channel)
        self._last_call_at = -math.inf  # trio.current_time() of the last call started
        self._spin_kept = trio.Event()  # set when the completion thread is kept again
        self._spin_watch = trio.CancelScope()
        if not self._spin.kept:  # a grpcio whose thread can be kept
            trio.lowlevel.spawn_system_task(
                self._release_idle_thread, name=f"processor {self._target}: idle thread"
            )
        self._reader = _ConnectivityReader.of(self._channel)
        # Connect now rather than on the first call, so readiness is known early.
        if self._reader is not None:
            self._reader.read(try_to_connect=True)
        else:
            self._channel.subscribe(self._on_connectivity, try_to_connect=True)

    @property
    def name(self) -> str:
        return self._target

    @property
    def connectivity(self) -> grpc.ChannelConnectivity:
        """The channel's connectivity state now."""
        if self._closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        if self._reader is None:
            return self._watched
        return self._reader.read(try_to_connect=False)

    def _on_connectivity(self, state: grpc.ChannelConnectivity) -> None:
        # Runs on a grpcio thread.
        self._watched = state

    async def process(self, request: MessageRequest) -> MessageResponse:
        """Send one message to the processor; raise a :class:`ProcessorError` on failure."""
        self.calls += 1
        started = trio.current_time()
        if self._closed:
            raise self._failed(ProcessorUnavailable("the processor client is closed"))
        timeout = self.timeout
        future = self._call(request, timeout=timeout)
        self._last_call_at = started
        if not self._spin.kept:
            self._spin.keep()
            if self._spin.kept:
                self._spin_kept.set()
        pending = _PendingCall(future, trio.lowlevel.current_task(), self._completions)
        self.in_flight += 1
        try:
            with trio.CancelScope(deadline=started + timeout) as scope:
                future.add_done_callback(pending.on_done)
                await trio.lowlevel.wait_task_rescheduled(pending.abort)
        finally:
            self.in_flight -= 1
        if scope.cancelled_caught:
            raise self._failed(ProcessorTimeout(f"no reply within {timeout} s"))
        # The future has ended: result() returns at once, or raises the RpcError.
        try:
            reply: MessageResponse = future.result()
        except grpc.RpcError as error:
            # The error is the ended call itself: a grpc.Call with its status.
            if isinstance(error, grpc.Call):
                raise self._failed(_from_status(error.code(), error.details())) from None
            raise self._failed(_from_status(None, str(error))) from None
        except grpc.FutureCancelledError:  # not expected: only this method cancels, then leaves
            raise self._failed(ProcessorUnavailable("the call was cancelled")) from None
        now = trio.current_time()
        self.total_latency += now - started
        self.last_success_at = now
        self.last_error = None
        return reply

    def _failed(self, error: ProcessorError) -> ProcessorError:
        self.errors += 1
        self.last_error = error
        return error

    async def _release_idle_thread(self) -> None:
        """Give grpcio's completion thread back after ``SPIN_IDLE_RELEASE`` without a call.

        A kept thread waits for completions in slices of 0.2 s (grpcio looks for
        signals between them): five wake-ups a second while there is nothing to
        complete. The next call starts a thread again, and keeps it.
        """
        with self._spin_watch:
            while True:
                if not self._spin.kept:
                    self._spin_kept = trio.Event()
                    await self._spin_kept.wait()
                    continue
                due = self._last_call_at + SPIN_IDLE_RELEASE
                if trio.current_time() < due:
                    await trio.sleep_until(due)
                    continue
                if not self.in_flight:
                    logger.debug("processor %s idle: its completion thread ends", self._target)
                    self._spin.release()
                if self._spin.kept:  # a call longer than that, or not released: later
                    await trio.sleep(SPIN_IDLE_RELEASE)

    def ready(self, *, within: float = HEALTHY_WITHIN) -> bool:
        """Connected now, or (re)connecting after a success less than ``within`` seconds ago.

        No gRPC traffic is invented for this: a processor would take any
        message it receives for real SIP.
        """
        state = self.connectivity
        if state is grpc.ChannelConnectivity.READY:
            return True
        if state is grpc.ChannelConnectivity.IDLE and not self._closed:
            # The connection was lost and nothing asked for a new one yet.
            if self._reader is not None:
                self._reader.read(try_to_connect=True)
            else:
                self._channel.unsubscribe(self._on_connectivity)
                self._channel.subscribe(self._on_connectivity, try_to_connect=True)
        if state in (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.CONNECTING):
            return (
                self.last_success_at is not None
                and trio.current_time() - self.last_success_at <= within
            )
        return False  # TRANSIENT_FAILURE, SHUTDOWN

    def close(self) -> None:
        """Close the channel: calls still in flight end with CANCELLED.

        :meth:`aclose` is gentler with grpcio's connectivity thread.
        """
        if not self._closed:
            self._closed = True
            if self._reader is None:
                self._channel.unsubscribe(self._on_connectivity)
            self._spin_watch.cancel()
            self._spin.release()
            self._channel.close()

    async def aclose(self) -> None:
        """Stop watching the connectivity, let grpcio's watcher thread end, then close.

        grpcio's connectivity watcher raises (and prints) "Channel closed!"
        when the channel closes under it; once unsubscribed, it ends at its
        next look, within ``CONNECTIVITY_POLL`` seconds.
        """
        if self._closed:
            return
        if self._reader is not None:  # no watcher thread to wait for
            self.close()
            return
        self._channel.unsubscribe(self._on_connectivity)
        watcher: Any = getattr(self._channel, "_connectivity_state", None)  # grpcio internals
        with trio.CancelScope(shield=True), trio.move_on_after(CONNECTIVITY_POLL * 2):
            if not isinstance(getattr(watcher, "polling", None), bool):
                await trio.sleep(CONNECTIVITY_POLL * 1.5)
            else:
                while watcher.polling:  # noqa: ASYNC110 - another thread's flag
                    await trio.sleep(CONNECTIVITY_POLL / 10)
        self.close()


class _ConnectivityReader:
    """Reads a channel's connectivity state from gRPC core when asked, with no thread.

    grpcio offers the state only through ``channel.subscribe``: a thread per
    channel that waits on the state with a 0.2 s deadline, again and again,
    for as long as anyone is subscribed (so gRPC core's own threads wake for
    each deadline too). gRPC core answers the same question synchronously,
    from the channel's memory, without I/O; grpcio's channel object has it
    (``Channel._channel.check_connectivity_state``, grpcio internals). Where
    it does not (another grpcio), :meth:`of` gives None and the client
    subscribes as grpcio means it to.
    """

    __slots__ = ("_check",)

    def __init__(self, check: Callable[[bool], int]) -> None:
        self._check = check

    @classmethod
    def of(cls, channel: grpc.Channel) -> _ConnectivityReader | None:
        core: Any = getattr(channel, "_channel", None)
        check = getattr(core, "check_connectivity_state", None)
        return cls(check) if callable(check) else None

    def read(self, *, try_to_connect: bool) -> grpc.ChannelConnectivity:
        """The state now; ``try_to_connect`` makes an IDLE channel start connecting."""
        try:
            number = self._check(try_to_connect)
        except ValueError:  # "Channel closed!"
            return grpc.ChannelConnectivity.SHUTDOWN
        return _CONNECTIVITY_BY_NUMBER.get(number, grpc.ChannelConnectivity.SHUTDOWN)


_CONNECTIVITY_BY_NUMBER: Final = {state.value[0]: state for state in grpc.ChannelConnectivity}


class _SpinThreadKeeper:
    """Keeps grpcio's completion thread of the channel alive between calls.

    grpcio completes every call of a channel on one thread, but it ends that
    thread whenever the channel has no call left in flight, and starts a new
    one with the next call: at low or bursty load, that is a thread started
    per call (tens of µs of CPU, and latency). The thread ends only when the
    channel's count of calls in flight drops to 0, so this adds one to that
    count while the thread runs (checked under grpcio's own lock: a count
    above 0 means the thread has not ended), and takes it back (at close, or
    after ``SPIN_IDLE_RELEASE`` without a call) while another call is still
    to be counted out, so that the thread sees the count reach 0 and ends as
    grpcio ends it.

    This reads grpcio internals (``Channel._call_state``: ``lock``,
    ``managed_calls``). When they are not there (another grpcio), it does
    nothing and grpcio behaves as it does by itself.
    """

    __slots__ = ("_channel", "_state", "kept")

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        state = getattr(channel, "_call_state", None)
        usable = hasattr(state, "lock") and isinstance(getattr(state, "managed_calls", None), int)
        self._state = state if usable else None
        self.kept = self._state is None  # nothing to keep: never try

    def keep(self) -> None:
        """Call right after starting a call; keeps the thread if it is running."""
        state = self._state
        assert state is not None
        with state.lock:
            if state.managed_calls > 0:
                state.managed_calls += 1
                self.kept = True

    def release(self) -> None:
        """Give the count back: the thread ends once no call is left in flight, and
        the next call starts one again (:meth:`keep` keeps that one).

        Calls are started and this runs in the trio thread only; the completion
        thread only counts calls out.
        """
        state = self._state
        if state is None or not self.kept:
            return
        for _ in range(RELEASE_ATTEMPTS):
            with state.lock:
                # Above 1, some call has yet to be counted out by the thread: that
                # last count-out ends the thread.
                if state.managed_calls > 1:
                    state.managed_calls -= 1
                    self.kept = False
                    return
            # Only this count is left and the thread waits for completions: give
            # it one more call, one that ends at once without going out (its
            # deadline passed before it started). Unless the thread counts it out
            # before the next look (then again), the look above takes this count
            # back, and that call's count-out ends the thread.
            try:
                self._expired(b"", timeout=EXPIRED_DEADLINE)
            except Exception:  # not expected: keep the count, and the thread
                logger.debug("grpcio refused a call to release its thread", exc_info=True)
                return
        logger.debug("grpcio's completion thread could not be released")

    def _expired(self, request: bytes, *, timeout: float) -> grpc.Future[bytes]:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(_NO_METHOD)
        return call.future(request, timeout=timeout)


RELEASE_ATTEMPTS: Final = 3
EXPIRED_DEADLINE: Final = -1.0  # seconds: a call whose deadline passed before it started
_NO_METHOD: Final = "/edgeport.Channel/Release"


def _from_status(code: grpc.StatusCode | None, details: str | None) -> ProcessorError:
    if code is None:  # not expected from an ended call; treated as the gRPC UNKNOWN status
        code = grpc.StatusCode.UNKNOWN
    if code is grpc.StatusCode.UNAVAILABLE:
        return ProcessorUnavailable(f"UNAVAILABLE: {details}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ProcessorTimeout(f"DEADLINE_EXCEEDED: {details}")
    # grpcio reports a reply it cannot decode as INTERNAL ("Exception
    # deserializing response!"): a ProcessorFailed like any other status.
    number: int = code.value[0]
    return ProcessorFailed(number, code.name, details or None)


def new_processor_client(addr: str, *, timeout: float = DEFAULT_TIMEOUT) -> GrpcProcessorClient:
    """A :class:`GrpcProcessorClient` for ``host:port`` or ``unix:/path`` (in a trio run);
    the caller closes it (:meth:`GrpcProcessorClient.aclose`)."""
    if addr.startswith(UNIX_TARGET_PREFIX):
        return GrpcProcessorClient("", 0, timeout=timeout, target=addr)
    host, port = parse_processor_addr(addr)
    return GrpcProcessorClient(host, port, timeout=timeout)


@asynccontextmanager
async def open_processor_client(
    addr: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the deadline of each call, not of this one
) -> AsyncIterator[GrpcProcessorClient]:
    """A :class:`GrpcProcessorClient` for ``host:port`` or ``unix:/path``, closed on exit.

    The channel starts connecting here, in the background; a processor that
    is not there yet makes calls fail with :class:`ProcessorUnavailable`
    until it is.
    """
    client = new_processor_client(addr, timeout=timeout)
    try:
        yield client
    finally:
        await client.aclose()


class InProcessProcessorClient:
    """Calls a synchronous ``MessageRequest -> MessageResponse`` handler in this process.

    For the built-in processor: the same interface as the gRPC client, with
    no serialisation and no network. The handler must not block; an
    exception from it is a :class:`ProcessorFailed` (INTERNAL), as the
    processor's crash would be over gRPC.
    """

    def __init__(
        self, handler: Callable[[MessageRequest], MessageResponse], *, name: str = "builtin"
    ) -> None:
        self._handler = handler
        self._name = name
        self._closed = False
        self.calls = 0
        self.errors = 0
        self.last_success_at: float | None = None
        self.last_error: ProcessorError | None = None

    @property
    def name(self) -> str:
        return self._name

    async def process(self, request: MessageRequest) -> MessageResponse:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        if self._closed:
            raise self._failed(ProcessorUnavailable("the processor client is closed"))
        try:
            reply = self._handler(request)
        except Exception as error:
            logger.exception("the in-process processor failed on %s", request.ref)
            raise self._failed(
                ProcessorFailed(grpc.StatusCode.INTERNAL.value[0], "INTERNAL", repr(error))
            ) from None
        self.last_success_at = trio.current_time()
        self.last_error = None
        return reply

    def _failed(self, error: ProcessorError) -> ProcessorError:
        self.errors += 1
        self.last_error = error
        return error

    def ready(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True
