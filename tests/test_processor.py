"""The processor clients: gRPC against a real grpcio processor on 127.0.0.1, and in process.

gRPC deadlines run on real time, not trio's MockClock, so the deadline
tests use short real timeouts (0.2 s) against a processor that waits longer.
Waits for something another thread does are polled, bounded in count.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import grpc
import pytest
import trio

from edgeport import processor as processor_module
from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.config import TransportConfig, default_config
from edgeport.processor import (
    GrpcProcessorClient,
    InProcessProcessorClient,
    ProcessorFailed,
    ProcessorTimeout,
    ProcessorUnavailable,
    _Completions,
    _PendingCall,
    open_processor_client,
    parse_processor_addr,
)
from edgeport.server import RunningServer, serve
from edgeport.sip.transport import Transport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import UdpUA, sip

DEADLINE = 10  # seconds, for any one test's I/O
POLL_INTERVAL = 0.02  # seconds between looks at something another thread changes
POLL_COUNT = 400  # looks before giving up: 8 s
PROCESS_METHOD = "/fonoster.routr.processor.v2beta1.Processor/ProcessMessage"


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


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (bounded: fails after POLL_COUNT looks)."""
    for _ in range(POLL_COUNT):
        if condition():
            return
        await trio.sleep(POLL_INTERVAL)
    raise AssertionError("condition never held")


async def test_call_returns_the_processor_reply_and_counts_it() -> None:
    processor = ScriptableProcessor(tag_with_ref)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                assert client.last_success_at is None
                reply = await client.process(invite())
                assert client.calls == 1
                assert client.errors == 0
                assert client.in_flight == 0
                assert client.last_success_at is not None
                assert client.total_latency > 0
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "a84b4c76e66710@pc33.atlanta.example.com"
    assert reply.message.request_uri.user == "bob"
    assert processor.requests == [invite()]


async def test_nothing_listening_is_unavailable_at_once_not_a_timeout() -> None:
    port = unused_port()
    # The call's own deadline (30 s) is far beyond the test's (10 s): only a
    # refused connection reported as such ends it in time.
    with trio.fail_after(DEADLINE):
        async with open_processor_client(f"127.0.0.1:{port}", timeout=30.0) as client:
            with pytest.raises(ProcessorUnavailable):
                await client.process(invite())
            assert client.errors == 1
            assert isinstance(client.last_error, ProcessorUnavailable)
            assert client.last_success_at is None


async def test_slow_processor_is_a_timeout_and_the_channel_stays_usable() -> None:
    processor = ScriptableProcessor(delay=2.0)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=0.2) as client:
                with pytest.raises(ProcessorTimeout):
                    await client.process(invite())
                assert client.errors == 1
                processor.delay = 0.0
                await client.process(invite())
                assert client.errors == 1
            nursery.cancel_scope.cancel()


async def test_a_hanging_call_ends_at_the_deadline_and_the_processor_sees_it_cancelled() -> None:
    processor = ScriptableProcessor(delay=60.0)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=0.2) as client:
                with pytest.raises(ProcessorTimeout):
                    await client.process(invite())
                assert client.in_flight == 0
                await eventually(lambda: processor.cancelled == 1)
            nursery.cancel_scope.cancel()


async def test_a_delay_for_invites_only_does_not_hold_up_other_calls() -> None:
    def invites_wait(request: MessageRequest) -> float:
        return 5.0 if request.method == Method.INVITE else 0.0

    options = invite("options-1")
    options.method = Method.OPTIONS
    processor = ScriptableProcessor(tag_with_ref, delay=invites_wait)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with (
                open_processor_client(running.addr, timeout=3.0) as client,
                trio.open_nursery() as calls,
            ):
                slow = trio.CancelScope()

                async def slow_invite() -> None:
                    with slow:
                        await client.process(invite("slow"))

                calls.start_soon(slow_invite)
                await eventually(lambda: len(processor.requests) == 1)
                reply = await client.process(options)  # answered while the INVITE waits
                slow.cancel()
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "options-1"


@pytest.mark.parametrize(
    ("code", "number"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 3),
        (grpc.StatusCode.NOT_FOUND, 5),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 8),
        (grpc.StatusCode.UNIMPLEMENTED, 12),
        (grpc.StatusCode.INTERNAL, 13),
    ],
)
async def test_an_error_status_is_processor_failed_with_its_code_and_details(
    code: grpc.StatusCode, number: int
) -> None:
    processor = ScriptableProcessor(failure=code, failure_details="no route table")
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorFailed) as caught:
                    await client.process(invite())
            nursery.cancel_scope.cancel()
    assert caught.value.status == number
    assert caught.value.status_name == code.name
    assert caught.value.message == "no route table"
    assert str(caught.value) == f"{code.name}: no route table"


async def test_unavailable_status_is_processor_unavailable() -> None:
    processor = ScriptableProcessor(failure=grpc.StatusCode.UNAVAILABLE, failure_details="draining")
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorUnavailable, match="draining"):
                    await client.process(invite())
            nursery.cancel_scope.cancel()


async def test_deadline_exceeded_status_is_processor_timeout() -> None:
    processor = ScriptableProcessor(
        failure=grpc.StatusCode.DEADLINE_EXCEEDED, failure_details="dispatcher gave up"
    )
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorTimeout, match="dispatcher gave up"):
                    await client.process(invite())
            nursery.cancel_scope.cancel()


async def test_handler_crash_is_processor_failed_unknown() -> None:
    def crash(request: MessageRequest) -> MessageResponse:
        raise RuntimeError("bug in the processor")

    processor = ScriptableProcessor(crash)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                with pytest.raises(ProcessorFailed) as caught:
                    await client.process(invite())
            nursery.cancel_scope.cancel()
    assert caught.value.status_name == "UNKNOWN"


async def test_an_undecodable_reply_is_processor_failed() -> None:
    # A server that answers ProcessMessage with bytes that are no MessageResponse.
    def garbage(_request: bytes, _context: grpc.ServicerContext) -> bytes:
        return b"\x0a\xff\xff\xff\xff"  # field 1, a length running past the end

    handler = grpc.method_handlers_generic_handler(
        "fonoster.routr.processor.v2beta1.Processor",
        {"ProcessMessage": grpc.unary_unary_rpc_method_handler(garbage)},
    )
    workers = ThreadPoolExecutor(2)
    server = grpc.server(workers, handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with trio.fail_after(DEADLINE):
            async with open_processor_client(f"127.0.0.1:{port}", timeout=3.0) as client:
                with pytest.raises(ProcessorFailed) as caught:
                    await client.process(invite())
    finally:
        server.stop(None).wait(DEADLINE)
        workers.shutdown(wait=False)
    assert caught.value.status_name == "INTERNAL"


async def test_reply_with_a_response_type_comes_back_intact() -> None:
    def not_found(request: MessageRequest) -> MessageResponse:
        message = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.NOT_FOUND)
        return MessageResponse(message=message)

    processor = ScriptableProcessor(not_found)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=3.0) as client:
                reply = await client.process(invite())
            nursery.cancel_scope.cancel()
    assert reply.message.WhichOneof("message_type") == "response_type"
    assert reply.message.response_type == sipmessage_pb2.ResponseType.NOT_FOUND


async def test_processor_restart_on_the_same_port_is_picked_up() -> None:
    processor = ScriptableProcessor(tag_with_ref)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            port = running.port
            async with open_processor_client(running.addr, timeout=3.0) as client:
                await client.process(invite("before"))
                await running.stop()
                with pytest.raises(ProcessorUnavailable):
                    await client.process(invite("while-down"))
                running = await start_processor(nursery, processor, port=port)
                # Calls fail with UNAVAILABLE until the channel's reconnection
                # backoff (at most 2 s) lets it try the new processor.
                reply = None
                for _ in range(POLL_COUNT):
                    try:
                        reply = await client.process(invite("after"))
                        break
                    except ProcessorUnavailable:
                        await trio.sleep(POLL_INTERVAL)
                assert reply is not None
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "after"
    assert [r.ref for r in processor.requests] == ["before", "after"]


async def test_many_concurrent_calls_share_one_channel() -> None:
    processor = ScriptableProcessor(tag_with_ref, delay=0.05)
    replies: dict[str, str] = {}
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=5.0) as client:

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


async def test_cancelling_the_waiting_task_cancels_the_grpc_call() -> None:
    processor = ScriptableProcessor(delay=60.0)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=30.0) as client:
                with trio.CancelScope() as scope:
                    nursery.start_soon(_cancel_when, scope, lambda: len(processor.requests) == 1)
                    await client.process(invite())
                assert scope.cancelled_caught
                assert client.in_flight == 0
                assert client.errors == 0  # cancelled by the caller: not a processor failure
                # The processor sees the RPC cancelled (its context's callback ran).
                await eventually(lambda: processor.cancelled == 1)
            nursery.cancel_scope.cancel()


async def _cancel_when(scope: trio.CancelScope, condition: Callable[[], bool]) -> None:
    await eventually(condition)
    scope.cancel()


def threads_but_the_processors() -> int:
    """Threads in this process, less the test processor's handler threads (a pool of 64)."""
    return sum(1 for thread in threading.enumerate() if not thread.name.startswith("processor"))


async def test_many_cancelled_calls_leak_no_thread_and_no_call() -> None:
    calls = 200
    processor = ScriptableProcessor(tag_with_ref, delay=60.0)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=30.0) as client:
                processor.delay = 0.0
                await client.process(invite("warm-up"))  # grpcio's own threads exist now
                processor.delay = 60.0
                baseline = threads_but_the_processors()
                for round_ in range(4):
                    before = len(processor.requests)
                    with trio.CancelScope() as scope:
                        async with trio.open_nursery() as callers:
                            for index in range(calls // 4):
                                callers.start_soon(client.process, invite(f"{round_}-{index}"))
                            await eventually(lambda b=before: len(processor.requests) >= b + 10)
                            scope.cancel()
                    assert client.in_flight == 0
                await eventually(lambda: threads_but_the_processors() <= baseline)
                # Every call that reached a handler was cancelled there, not left waiting.
                await eventually(lambda: processor.cancelled == len(processor.requests) - 1)
                processor.delay = 0.0
                reply = await client.process(invite("after"))
            nursery.cancel_scope.cancel()
    assert reply.metadata["ref"] == "after"


async def test_sequential_calls_share_one_completion_thread_which_ends_at_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import grpc._channel

    started: list[object] = []
    start_thread = grpc._channel._run_channel_spin_thread

    def counted(state: object) -> None:
        started.append(state)
        start_thread(state)

    monkeypatch.setattr(grpc._channel, "_run_channel_spin_thread", counted)
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            baseline = threads_but_the_processors()
            async with open_processor_client(running.addr, timeout=3.0) as client:
                for index in range(50):  # one call in flight at a time
                    await client.process(invite(f"call-{index}"))
            # grpcio alone would start a thread for nearly every one of them.
            assert len(started) == 1
            await eventually(lambda: threads_but_the_processors() <= baseline)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("up", [True, False])
async def test_opening_and_closing_clients_leaves_no_thread_and_no_thread_error(
    monkeypatch: pytest.MonkeyPatch, up: bool
) -> None:
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE * 2):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            addr = running.addr if up else f"127.0.0.1:{unused_port()}"
            baseline = threads_but_the_processors()
            for index in range(20):
                async with open_processor_client(addr, timeout=1.0) as client:
                    for _ in range(index % 3):  # closed with 0, 1 or 2 calls behind it
                        try:
                            await client.process(invite())
                        except ProcessorUnavailable:
                            assert not up
            await eventually(lambda: threads_but_the_processors() <= baseline)
            nursery.cancel_scope.cancel()
    assert failures == []


async def test_readiness_follows_the_connection_and_recent_successes() -> None:
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            async with open_processor_client(f"127.0.0.1:{unused_port()}", timeout=1.0) as down:
                # The channel tries to connect at once and fails: not ready.
                await eventually(
                    lambda: down.connectivity is grpc.ChannelConnectivity.TRANSIENT_FAILURE
                )
                assert not down.ready()
            assert not down.ready()  # closed
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=1.0) as client:
                # Connected before any call: ready.
                await eventually(client.ready)
                await client.process(invite())
                port = running.port
                await running.stop()
                # The connection is gone; a fresh attempt fails, and readiness follows,
                # even with a success a moment ago.
                await eventually(lambda: not client.ready())
                assert client.last_success_at is not None
                running = await start_processor(nursery, processor, port=port)
                await eventually(client.ready)  # reconnected within the backoff
            nursery.cancel_scope.cancel()


async def test_a_recent_success_keeps_a_reconnecting_client_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=1.0) as client:
                await client.process(invite())
                state = grpc.ChannelConnectivity.CONNECTING
                monkeypatch.setattr(
                    GrpcProcessorClient, "connectivity", property(lambda _client: state)
                )
                assert client.ready()
                assert not client.ready(within=0.0)
                state = grpc.ChannelConnectivity.TRANSIENT_FAILURE
                assert not client.ready()
            nursery.cancel_scope.cancel()


def threads_in(function: str) -> list[int]:
    """The threads of this process running ``function`` (anywhere in their stack)."""
    found: list[int] = []
    for thread_id, frame in sys._current_frames().items():
        walker: FrameType | None = frame
        while walker is not None:
            if walker.f_code.co_name == function:
                found.append(thread_id)
                break
            walker = walker.f_back
    return found


async def test_a_connected_client_keeps_no_thread_watching_its_connection() -> None:
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            baseline = threads_but_the_processors()
            async with open_processor_client(running.addr, timeout=1.0) as client:
                await eventually(client.ready)
                # grpcio's watcher (channel.subscribe) would wake every 0.2 s for as
                # long as the client lives; the state is read when asked instead.
                assert threads_in("_poll_connectivity") == []
                assert threads_but_the_processors() == baseline
                port = running.port
                await running.stop()
                await eventually(lambda: not client.ready())
                assert threads_in("_poll_connectivity") == []
                running = await start_processor(nursery, processor, port=port)
                await eventually(client.ready)
                await client.process(invite())
            nursery.cancel_scope.cancel()


async def test_an_idle_client_lets_grpcios_completion_thread_end_and_starts_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor_module, "SPIN_IDLE_RELEASE", 0.3)
    processor = ScriptableProcessor(tag_with_ref)
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=1.0) as client:
                for round_ in range(2):
                    await client.process(invite(f"round-{round_}"))
                    await client.process(invite(f"round-{round_}-again"))
                    assert len(threads_in("channel_spin")) == 1  # kept between calls
                    # No call for a while: the thread ends (it would wake 5 times a
                    # second, waiting for nothing); the next call starts one again.
                    await eventually(lambda: threads_in("channel_spin") == [])
                assert len(processor.requests) == 4
            nursery.cancel_scope.cancel()


async def test_a_closed_client_fails_calls_as_unavailable() -> None:
    processor = ScriptableProcessor()
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            running = await start_processor(nursery, processor)
            async with open_processor_client(running.addr, timeout=1.0) as client:
                await client.process(invite())
            with pytest.raises(ProcessorUnavailable, match="closed"):
                await client.process(invite())
            nursery.cancel_scope.cancel()


def test_a_completion_after_the_trio_run_ended_is_dropped_quietly() -> None:
    async def capture() -> tuple[trio.lowlevel.Task, trio.lowlevel.TrioToken]:
        return trio.lowlevel.current_task(), trio.lowlevel.current_trio_token()

    task, token = trio.run(capture)
    future = object()  # the call itself is not looked at
    pending = _PendingCall(future, task, _Completions(token))  # type: ignore[arg-type]
    pending.on_done(future)  # type: ignore[arg-type]  # must not raise trio.RunFinishedError


def test_timeout_must_be_positive() -> None:
    async def build(timeout: float) -> None:
        GrpcProcessorClient("127.0.0.1", 1, timeout=timeout)

    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            trio.run(build, bad)


# --- in process -----------------------------------------------------------------


async def test_in_process_client_calls_the_handler_and_counts() -> None:
    seen: list[MessageRequest] = []

    def handler(request: MessageRequest) -> MessageResponse:
        seen.append(request)
        return tag_with_ref(request)

    client = InProcessProcessorClient(handler)
    assert client.ready()
    assert client.name == "builtin"
    reply = await client.process(invite("in-process"))
    assert reply.metadata["ref"] == "in-process"
    assert seen == [invite("in-process")]
    assert (client.calls, client.errors) == (1, 0)
    client.close()
    assert not client.ready()
    with pytest.raises(ProcessorUnavailable):
        await client.process(invite())


async def test_in_process_handler_crash_is_processor_failed() -> None:
    def crash(request: MessageRequest) -> MessageResponse:
        raise KeyError("a bug")

    client = InProcessProcessorClient(crash)
    with pytest.raises(ProcessorFailed) as caught:
        await client.process(invite())
    assert caught.value.status_name == "INTERNAL"
    assert client.errors == 1


async def test_default_config_serves_the_builtin_processor_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_grpc_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("a gRPC server was started")

    monkeypatch.setattr(grpc, "server", no_grpc_server)
    monkeypatch.setattr(grpc, "insecure_channel", no_grpc_server)
    config = default_config()
    assert config.processor.addr == "builtin"
    # The default's listeners, on ports the OS picks (5060 may be taken here).
    config = dataclasses.replace(
        config,
        transports=(TransportConfig(Transport.UDP, 0, "127.0.0.1"),),
        bind_addr="127.0.0.1",
        localnets=("127.0.0.0/8",),
    )
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            server: RunningServer = await nursery.start(serve, config)
            assert isinstance(server.processor, InProcessProcessorClient)
            assert server.processor.ready()
            edge = ("127.0.0.1", server.listening_points[0].port)
            ua = await UdpUA.open(edge)
            await ua.send(
                sip(
                    f"""REGISTER sip:127.0.0.1:{edge[1]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-inproc-1;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=inproc1
To: <sip:alice@127.0.0.1>
Call-ID: inproc-1@test
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:{ua.port}>
Expires: 300
Content-Length: 0

"""
                )
            )
            ok = await ua.receive()
            ua_port = ua.port
            ua.close()
            assert server.processor.calls == 1
            nursery.cancel_scope.cancel()
    assert ok.status == 200, ok.text
    assert ok.header("Call-ID") == "inproc-1@test"
    assert f"127.0.0.1:{ua_port}" in ok.header("Contact")


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


def test_calls_that_end_before_the_loop_runs_wake_it_once() -> None:
    # Each hand-over from a grpcio thread costs a wake-up of the trio loop (a
    # write on a socket pair); calls that end while one is pending share it.
    scheduled: list[Callable[[], object]] = []

    class CountingToken:
        def run_sync_soon(self, fn: Callable[[], object]) -> None:
            scheduled.append(fn)

    woken: list[int] = []

    class Waiting:
        def __init__(self, n: int) -> None:
            self.n = n

        def wake(self) -> None:
            woken.append(self.n)

    completions = _Completions(CountingToken())  # type: ignore[arg-type]
    for n in range(3):
        completions.ended(Waiting(n))  # type: ignore[arg-type]
    assert len(scheduled) == 1
    scheduled[0]()
    assert woken == [0, 1, 2]
    completions.ended(Waiting(3))  # type: ignore[arg-type]
    assert len(scheduled) == 2
    scheduled[1]()
    assert woken == [0, 1, 2, 3]
