"""The health and metrics HTTP server, through real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import re

import pytest
import trio
import trio.testing

from edgeport.health import HealthChecks, Heartbeat, serve_health

METRICS_TEXT = "# HELP up Is it up.\n# TYPE up gauge\nup 1\n"


async def _request(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw request bytes, read until the server closes; status line, headers, body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        received = bytearray()
        while data := await stream.receive_some(65536):
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return status_line, headers, body


async def _get(port: int, path: str) -> tuple[str, dict[str, str], bytes]:
    return await _request(port, f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())


async def _start(
    nursery: trio.Nursery, checks: HealthChecks, heartbeat: Heartbeat | None = None
) -> int:
    port: int = await nursery.start(
        lambda task_status: serve_health(
            0,
            host="127.0.0.1",
            checks=checks,
            render_metrics=lambda: METRICS_TEXT,
            heartbeat=heartbeat,
            task_status=task_status,
        )
    )
    return port


async def test_healthz_ok_while_every_check_passes() -> None:
    checks = HealthChecks()
    checks.add_liveness("listener udp://0.0.0.0:5060", lambda: True)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, checks)
            status, headers, body = await _get(port, "/healthz")
            nursery.cancel_scope.cancel()
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"status": "OK"}


async def test_healthz_names_the_failing_check() -> None:
    checks = HealthChecks()
    running = {"udp": True, "tcp": True}
    checks.add_liveness("listener udp://0.0.0.0:5060", lambda: running["udp"])
    checks.add_liveness("listener tcp://0.0.0.0:5060", lambda: running["tcp"])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, checks)
            running["udp"] = False
            failing = await _get(port, "/healthz")
            running["udp"] = True
            recovered = await _get(port, "/healthz")
            nursery.cancel_scope.cancel()
    assert failing[0] == "HTTP/1.1 503 Service Unavailable"
    assert json.loads(failing[2]) == {
        "status": "FAIL",
        "problems": ["listener udp://0.0.0.0:5060 is not running"],
    }
    assert recovered[0] == "HTTP/1.1 200 OK"


async def test_a_check_that_raises_counts_as_failing() -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    checks = HealthChecks()
    checks.add_liveness("processor channel", broken, problem="processor channel is broken")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, checks)
            status, _, body = await _get(port, "/healthz")
            nursery.cancel_scope.cancel()
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert json.loads(body)["problems"] == ["processor channel is broken"]


async def test_readyz_follows_the_readiness_callback() -> None:
    checks = HealthChecks()
    ready = {"value": False}
    checks.set_readiness(lambda: ready["value"], problem="processor has not answered")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, checks)
            not_ready = await _get(port, "/readyz")
            ready["value"] = True
            now_ready = await _get(port, "/readyz")
            nursery.cancel_scope.cancel()
    assert not_ready[0] == "HTTP/1.1 503 Service Unavailable"
    assert json.loads(not_ready[2]) == {
        "status": "FAIL",
        "problems": ["processor has not answered"],
    }
    assert now_ready[0] == "HTTP/1.1 200 OK"
    assert json.loads(now_ready[2]) == {"status": "OK"}


async def test_metrics_exposition() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, HealthChecks())
            status, headers, body = await _get(port, "/metrics?name=up")
            head_status, head_headers, head_body = await _request(
                port, b"HEAD /metrics HTTP/1.1\r\nHost: probe\r\n\r\n"
            )
            nursery.cancel_scope.cancel()
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert body == METRICS_TEXT.encode()
    assert head_status == "HTTP/1.1 200 OK"
    assert head_headers["content-length"] == str(len(METRICS_TEXT))
    assert head_body == b""


@pytest.mark.parametrize(
    ("request_bytes", "expected_status", "allow"),
    [
        (b"GET /nowhere HTTP/1.1\r\nHost: probe\r\n\r\n", "HTTP/1.1 404 Not Found", None),
        (
            b"POST /healthz HTTP/1.1\r\nHost: probe\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
            "GET, HEAD",
        ),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed", "GET, HEAD"),
        (b"GET /healthz\r\n\r\n", "HTTP/1.1 400 Bad Request", None),
        (b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n", "HTTP/1.1 400 Bad Request", None),
        (b"GET /healthz HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported", None),
        (
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
            None,
        ),
    ],
)
async def test_other_requests(
    request_bytes: bytes, expected_status: str, allow: str | None
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, HealthChecks())
            status, headers, _ = await _request(port, request_bytes)
            nursery.cancel_scope.cancel()
    assert status == expected_status
    assert headers.get("allow") == allow


async def test_absolute_form_target() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, HealthChecks())
            status, _, _ = await _get(port, "http://probe:8080/healthz")
            nursery.cancel_scope.cancel()
    assert status == "HTTP/1.1 200 OK"


async def test_a_loop_slower_than_the_max_age_fails_healthz() -> None:
    # Real clock: any wait for a turn is longer than a max age of 0.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, HealthChecks(), Heartbeat(max_age=0.0))
            status, _, body = await _get(port, "/healthz")
            nursery.cancel_scope.cancel()
    assert status == "HTTP/1.1 503 Service Unavailable"
    document = json.loads(body)
    assert document["status"] == "FAIL"
    (problem,) = document["problems"]
    assert re.fullmatch(r"event loop did not answer for \d+\.\d s", problem), problem


class _SlowLoop(trio.abc.Instrument):
    """Every turn of the event loop takes ``seconds`` (of a mock clock) more."""

    def __init__(self, clock: trio.testing.MockClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds

    def after_io_wait(self, timeout: float) -> None:
        self.clock.jump(self.seconds)


async def test_the_heartbeat_reports_a_saturated_loop_and_its_recovery(
    mock_clock: trio.testing.MockClock,
) -> None:
    heartbeat = Heartbeat(max_age=1.0)
    assert heartbeat.problem() == "event loop heartbeat was not measured"
    slow = _SlowLoop(mock_clock, 1.5)
    trio.lowlevel.add_instrument(slow)
    try:
        await heartbeat.measure()
    finally:
        trio.lowlevel.remove_instrument(slow)
    assert heartbeat.problem() == "event loop did not answer for 1.5 s"
    await heartbeat.measure()
    assert heartbeat.last_wait == 0.0
    assert heartbeat.problem() is None


async def test_an_idle_health_server_schedules_no_wake_up(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        await _start(nursery, HealthChecks())
        await trio.testing.wait_all_tasks_blocked()
        # Nothing is due: no heartbeat timer keeps the loop waking while nobody asks.
        assert trio.lowlevel.current_statistics().seconds_to_next_deadline == float("inf")
        nursery.cancel_scope.cancel()


async def test_too_slow_client_is_dropped(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        port = await _start(nursery, HealthChecks(), Heartbeat())
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\n")  # and never the end of the head
            assert await stream.receive_some(1024) == b""  # closed at the connection deadline
        nursery.cancel_scope.cancel()
