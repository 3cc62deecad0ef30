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


async def test_stalled_event_loop_fails_healthz(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.rate = 1.0  # real pace, so fail_after still guards the sockets
    heartbeat = Heartbeat(max_age=1.0)
    heartbeat.beat()  # its task is not run: the loop never lets it beat again
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await _start(nursery, HealthChecks(), heartbeat)
            fresh = await _get(port, "/healthz")
            mock_clock.jump(2.5)
            stalled = await _get(port, "/healthz")
            heartbeat.beat()
            recovered = await _get(port, "/healthz")
            nursery.cancel_scope.cancel()
    assert fresh[0] == "HTTP/1.1 200 OK"
    assert stalled[0] == "HTTP/1.1 503 Service Unavailable"
    body = json.loads(stalled[2])
    assert body["status"] == "FAIL"
    # The clock runs at real pace too: a busy machine adds a little to the 2.5 s jump.
    (problem,) = body["problems"]
    stalled_for = re.fullmatch(r"event loop did not answer for (\d+\.\d) s", problem)
    assert stalled_for is not None, problem
    assert 2.5 <= float(stalled_for.group(1)) < 5.0
    assert recovered[0] == "HTTP/1.1 200 OK"


async def test_the_built_in_heartbeat_keeps_beating(autojump_clock: trio.testing.MockClock) -> None:
    heartbeat = Heartbeat(interval=0.2, max_age=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(heartbeat.serve)
        await trio.sleep(30)  # virtual time: the heartbeat task beats all along
        assert heartbeat.problem() is None
        nursery.cancel_scope.cancel()
    await trio.sleep(5)  # with its task gone, the beat grows old
    problem = heartbeat.problem()
    assert problem is not None
    assert problem.startswith("event loop did not answer for 5.")


async def test_too_slow_client_is_dropped(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        port = await _start(nursery, HealthChecks(), Heartbeat())
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\n")  # and never the end of the head
            assert await stream.receive_some(1024) == b""  # closed at the connection deadline
        nursery.cancel_scope.cancel()
