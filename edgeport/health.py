"""Health and metrics over HTTP: ``/healthz``, ``/readyz`` and ``/metrics``.

A deliberately small HTTP/1.1 server on raw trio streams (RFC 9112): one
request per connection, a bounded request head, a deadline per connection,
``Connection: close`` on every answer. Orchestrators probe it; Prometheus
scrapes it.

``/healthz`` is liveness: every registered check passes and the event loop
is responsive. Responsiveness is measured when ``/healthz`` is asked, not
sampled all along (an idle edgeport wakes for nothing): the answer waits
for one turn of the event loop (:class:`Heartbeat`), and a wait longer than
``HEARTBEAT_MAX_AGE`` means tasks wait too long for their turn (a saturated
loop). A loop blocked outright answers nothing at all, and the probe's own
timeout reports it. ``/readyz`` is readiness: one callback, typically "the
processor answered recently". Both documents carry the checks' details
(:meth:`HealthChecks.set_details`: the configuration generation, the
workers').

``POST /reload``, where the caller of :func:`serve_health` gives a
``reload`` (a worker's socket, for its supervisor), reloads the
configuration and answers with the reload's result as JSON.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

from edgeport.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

HEARTBEAT_MAX_AGE: Final = 1.0  # seconds a task may wait for its turn before the loop is stalled
MAX_REQUEST_HEAD_BYTES: Final = 8192  # request line and headers; probes send a few hundred
MAX_HEADER_LINES: Final = 100
CONNECTION_TIMEOUT: Final = 5.0  # seconds for a client to send its request and take the answer
MAX_CONNECTIONS: Final = 32  # concurrent; a probe or a scrape needs one
JSON_CONTENT_TYPE: Final = "application/json"
ALLOWED_METHODS: Final = ("GET", "HEAD")
RELOAD_PATH: Final = "/reload"

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HealthChecks:
    """Named liveness checks and one readiness check, each a callable returning bool."""

    def __init__(self) -> None:
        self._liveness: dict[str, tuple[Callable[[], bool], str]] = {}
        self._readiness: tuple[Callable[[], bool], str] | None = None
        self._details: Callable[[], dict[str, object]] | None = None

    def set_details(self, details: Callable[[], dict[str, object]]) -> None:
        """More keys for the ``/healthz`` and ``/readyz`` documents."""
        self._details = details

    def details(self) -> dict[str, object]:
        if self._details is None:
            return {}
        try:
            return self._details()
        except Exception:
            logger.exception("health details raised")
            return {}

    def add_liveness(
        self, name: str, check: Callable[[], bool], *, problem: str | None = None
    ) -> None:
        """Register ``check``; when it returns False, ``/healthz`` reports ``problem``.

        The default problem is ``"<name> is not running"``.
        """
        self._liveness[name] = (check, problem or f"{name} is not running")

    def set_readiness(self, check: Callable[[], bool], *, problem: str = "not ready") -> None:
        self._readiness = (check, problem)

    def liveness_problems(self) -> list[str]:
        return [
            problem for name, (check, problem) in self._liveness.items() if not _passes(name, check)
        ]

    def readiness_problems(self) -> list[str]:
        """What keeps the service from being ready; none when no readiness check is set."""
        if self._readiness is None:
            return []
        check, problem = self._readiness
        return [] if _passes("readiness", check) else [problem]


def _passes(name: str, check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        logger.exception("health check %s raised", name)
        return False


class Heartbeat:
    """How long a task waits for its turn in the event loop, measured when asked.

    :meth:`measure` yields to the loop once and times how long the loop took
    to come back to it: every task made runnable meanwhile runs first, so
    that is how long any task waits for its turn now. Nothing runs between
    two measures, so an idle loop is not woken for it.
    """

    def __init__(self, *, max_age: float = HEARTBEAT_MAX_AGE) -> None:
        self.max_age = max_age
        self.last_wait: float | None = None  # seconds, of the last measure

    async def measure(self) -> None:
        asked = trio.current_time()
        await trio.lowlevel.cancel_shielded_checkpoint()
        self.last_wait = trio.current_time() - asked

    def problem(self) -> str | None:
        """What :meth:`measure` found wrong, if anything."""
        if self.last_wait is None:
            return "event loop heartbeat was not measured"
        if self.last_wait > self.max_age:
            return f"event loop did not answer for {self.last_wait:.1f} s"
        return None


async def serve_health(
    port: int,
    *,
    host: str,
    checks: HealthChecks,
    render_metrics: Callable[[], str],
    heartbeat: Heartbeat | None = None,
    refresh: Callable[[], Awaitable[None]] | None = None,
    unix_path: str | None = None,
    reload: Callable[[], Awaitable[dict[str, object]]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the health endpoints on ``host:port`` until cancelled; report the bound port.

    ``host`` is required: the caller says where (edgeport: ``HEALTHCHECK_BIND_ADDR``,
    else ``spec.bindAddr``), so the probes are never exposed on every interface
    by default.

    ``heartbeat`` measures the event loop's responsiveness for ``/healthz``
    (default: a :class:`Heartbeat` of its own). ``refresh`` is awaited
    before each answer (to gather what the checks and metrics read). With
    ``unix_path`` the server listens on that Unix socket instead (reports 0).
    ``reload`` answers ``POST /reload`` (404 without it).
    """
    async with trio.open_nursery() as nursery:
        if heartbeat is None:
            heartbeat = Heartbeat()
        server = _HealthServer(checks, render_metrics, heartbeat, refresh, reload)
        if unix_path is not None:
            listener = await _unix_listener(unix_path)
            await nursery.start(trio.serve_listeners, server.handle, [listener])
            logger.debug("health endpoints on unix:%s", unix_path)
            task_status.started(0)
            return
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, server.handle, port, host=host)
        )
        bound_port: int = listeners[0].socket.getsockname()[1]
        logger.info("health endpoints on http://%s:%d", host, bound_port)
        task_status.started(bound_port)


async def _unix_listener(path: str) -> trio.SocketListener:
    """A listener on the Unix socket ``path``; a socket file left there by a dead process goes."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(MAX_CONNECTIONS)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _HealthServer:
    def __init__(
        self,
        checks: HealthChecks,
        render_metrics: Callable[[], str],
        heartbeat: Heartbeat,
        refresh: Callable[[], Awaitable[None]] | None = None,
        reload: Callable[[], Awaitable[dict[str, object]]] | None = None,
    ) -> None:
        self._checks = checks
        self._render_metrics = render_metrics
        self._heartbeat = heartbeat
        self._refresh = refresh
        self._reload = reload
        self._limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def handle(self, stream: trio.SocketStream) -> None:  # a TCP or Unix stream
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            logger.warning("health server: %d connections open, closing one more", MAX_CONNECTIONS)
            await stream.aclose()
            return
        try:
            with trio.move_on_after(CONNECTION_TIMEOUT) as scope:
                head = await _receive_head(stream)
                if head is not None:
                    answer = await self._reloaded(head)
                    if answer is None:
                        if self._refresh is not None:
                            await self._refresh()
                        await self._heartbeat.measure()
                        answer = self._answer(head)
                    await stream.send_all(answer)
            if scope.cancelled_caught:
                logger.debug("health server: a client took over %.1f s", CONNECTION_TIMEOUT)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            logger.debug("health server: client went away: %r", exc)
        except Exception:
            logger.exception("health server: answering a request failed")
        finally:
            self._limiter.release()
            await stream.aclose()

    async def _reloaded(self, head: bytes | _BadRequest) -> bytes | None:
        """The answer to ``POST /reload`` when this server takes it, else None."""
        if self._reload is None or isinstance(head, _BadRequest):
            return None
        try:
            method, path = _parse_head(head)
        except _BadRequest:
            return None
        if path != RELOAD_PATH:
            return None
        if method != "POST":
            return _response(
                405,
                _json({"status": "FAIL", "problems": [f"method {method} is not allowed"]}),
                extra_headers=(("Allow", "POST"),),
            )
        return _response(200, _json(await self._reload()))

    def _answer(self, head: bytes | _BadRequest) -> bytes:
        if isinstance(head, _BadRequest):
            return _response(head.status, _json({"status": "FAIL", "problems": [str(head)]}))
        try:
            method, path = _parse_head(head)
        except _BadRequest as exc:
            return _response(exc.status, _json({"status": "FAIL", "problems": [str(exc)]}))
        route = {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics}
        endpoint = route.get(path)
        if endpoint is None:
            return _response(404, _json({"status": "FAIL", "problems": [f"no page {path}"]}))
        if method not in ALLOWED_METHODS:
            return _response(
                405,
                _json({"status": "FAIL", "problems": [f"method {method} is not allowed"]}),
                extra_headers=(("Allow", ", ".join(ALLOWED_METHODS)),),
            )
        status, content_type, body = endpoint()
        return _response(status, body, content_type=content_type, with_body=method == "GET")

    def _healthz(self) -> tuple[int, str, bytes]:
        problems = self._checks.liveness_problems()
        stalled = self._heartbeat.problem()
        if stalled is not None:
            problems.append(stalled)
        return _status_document(problems, self._checks.details())

    def _readyz(self) -> tuple[int, str, bytes]:
        return _status_document(self._checks.readiness_problems(), self._checks.details())

    def _metrics(self) -> tuple[int, str, bytes]:
        try:
            text = self._render_metrics()
        except Exception:
            logger.exception("rendering metrics failed")
            return 500, JSON_CONTENT_TYPE, _json({"status": "FAIL", "problems": ["metrics"]})
        return 200, METRICS_CONTENT_TYPE, text.encode()


def _status_document(
    problems: list[str], details: dict[str, object] | None = None
) -> tuple[int, str, bytes]:
    if problems:
        document: dict[str, object] = {"status": "FAIL", "problems": problems}
        return 503, JSON_CONTENT_TYPE, _json(document | (details or {}))
    return 200, JSON_CONTENT_TYPE, _json({"status": "OK"} | (details or {}))


def _json(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


async def _receive_head(stream: trio.SocketStream) -> bytes | _BadRequest | None:
    """The request head up to the empty line; None when the client sent nothing."""
    buffer = bytearray()
    while True:
        end = buffer.find(b"\r\n\r\n")
        if 0 <= end <= MAX_REQUEST_HEAD_BYTES:
            return bytes(buffer[:end])
        if len(buffer) > MAX_REQUEST_HEAD_BYTES:
            return _BadRequest(431, "request head too large")
        data = await stream.receive_some(MAX_REQUEST_HEAD_BYTES)
        if not data:
            return _BadRequest(400, "incomplete request") if buffer else None
        buffer += data


def _parse_head(head: bytes) -> tuple[str, str]:
    """Method and path of a request head (RFC 9112 §3, §5)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/"):
        raise _BadRequest(400, "malformed request line")
    if not version.startswith("HTTP/1."):
        raise _BadRequest(505, f"{version} is not supported")
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise _BadRequest(431, "too many header fields")
    for line in lines[1:]:
        name, colon, _ = line.partition(":")
        # RFC 9112 §5.1: "No whitespace is allowed between the field name and colon."
        if not colon or not name or name != name.strip() or " " in name:
            raise _BadRequest(400, "malformed header field")
    if target.startswith("/"):
        path = target.partition("?")[0]
    elif target.startswith(("http://", "https://")):
        path = urlsplit(target).path or "/"
    else:
        raise _BadRequest(400, "unsupported request target")
    return method, path


def _response(
    status: int,
    body: bytes,
    *,
    content_type: str = JSON_CONTENT_TYPE,
    with_body: bool = True,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
        *extra_headers,
    ]
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    return head.encode("latin-1") + b"\r\n" + (body if with_body else b"")
