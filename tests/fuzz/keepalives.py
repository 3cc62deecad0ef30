"""Keep-alives on the stream listeners: ping bursts, and WebSocket peers edgeport pings.

RFC 5626 §4.4.1: a double-CRLF ping on a stream gets a CRLF pong; RFC 6455
§5.5.2 and §5.5.3: a WebSocket Ping gets a Pong with its payload, and an
endpoint may answer only the most recent of the Pings it has not answered
yet. edgeport answers the pings it reads together with one pong, so a burst
of ``n`` pings in one write (:func:`check_burst`, on a fresh connection from
127.0.0.1) gets between 1 and ``n`` pongs and nothing else, the last
WebSocket Pong carries the last Ping's payload, and an OPTIONS on the same
connection right after is answered 200: the burst broke nothing.

edgeport pings a WebSocket peer silent for ``webSocketPingInterval`` seconds
and closes one silent for :data:`UNANSWERED_INTERVALS` intervals (Pongs do
not count as activity, so a peer that only answers Pings is closed at the
idle timeout). :class:`QuietWebSockets` keeps, on each WebSocket listener,
one connection that answers edgeport's Pings and one that never does, each
silent after one OPTIONS (a connection that sends no SIP at all is closed
after ``spec.protection.firstMessageTimeout``): at the end the first must
have been pinged and still be open (unless the idle timeout has passed), the
second must have been pinged and closed.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from typing import Final

import trio

from tests.fuzz.listeners import Listener
from tests.fuzz.probes import CONNECTION_ERRORS, open_client, probe_message
from tests.fuzz.wsclient import ClientStream, WsClient, WsRefused

BURST_TIMEOUT: Final = 10.0  # seconds for a burst's pongs and the OPTIONS answer after it
CRLF_PING: Final = b"\r\n\r\n"
CRLF_PONG: Final = b"\r\n"
BURST_SIZES: Final = (1, 2, 7, 64, 500)  # pings in one write
MAX_PING_PAYLOAD_BYTES: Final = 125  # RFC 6455 §5.5: a control frame's payload
UNANSWERED_INTERVALS: Final = 3  # edgeport's: silence of 3 intervals closes a WebSocket
QUIET_SLACK: Final = 10.0  # seconds past 3 intervals for a silent WebSocket to be closed
RECEIVE_BYTES: Final = 65536


def ping_payloads(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(rng.choice((0, 1, 8, MAX_PING_PAYLOAD_BYTES))) for _ in range(count)]


async def check_burst(
    listener: Listener, port: int, client_tls: ssl.SSLContext, count: int, rng: random.Random
) -> str | None:
    """``count`` pings in one write on a fresh connection, then an OPTIONS; what is
    wrong with the answers, or None."""
    name = f"{listener.value}: a burst of {count} pings"
    with trio.move_on_after(BURST_TIMEOUT):
        try:
            stream, ws = await open_client(listener, port, client_tls)
        except CONNECTION_ERRORS as exc:
            return f"{name}: could not connect ({exc!r:.100})"
        try:
            if ws is None:
                return await _crlf_burst(name, stream, listener, port, count)
            return await _ws_burst(name, ws, listener, port, ping_payloads(rng, count))
        except CONNECTION_ERRORS as exc:
            return f"{name}: the connection ended ({exc!r:.100})"
        finally:
            await trio.aclose_forcefully(stream)
    return f"{name}: no pong, or no answer to the OPTIONS after it, in {BURST_TIMEOUT:g} s"


async def _crlf_burst(
    name: str, stream: ClientStream, listener: Listener, port: int, count: int
) -> str | None:
    await stream.send_all(CRLF_PING * count)
    received = b""
    while not received:
        received = bytes(await stream.receive_some(RECEIVE_BYTES))
        if not received:
            return f"{name}: closed before a pong"
    await stream.send_all(probe_message(listener, port, f"burst-{listener.value}"))
    while b"\r\n\r\n" not in received.partition(b"SIP/2.0 ")[2]:
        chunk = bytes(await stream.receive_some(RECEIVE_BYTES))
        if not chunk:
            return f"{name}: closed before the OPTIONS was answered"
        received += chunk
    pongs, _, answer = received.partition(b"SIP/2.0 ")
    n = len(pongs) // len(CRLF_PONG)
    if pongs != CRLF_PONG * n or not 1 <= n <= count:
        return f"{name}: {pongs[:40]!r} ({len(pongs)} bytes) before the answer"
    if not answer.startswith(b"200"):
        return f"{name}: the OPTIONS after it got {answer[:20]!r}"
    return None


async def _ws_burst(
    name: str, ws: WsClient, listener: Listener, port: int, payloads: list[bytes]
) -> str | None:
    await ws.send_pings(payloads)
    await ws.wait_pong()
    await ws.send_message(probe_message(listener, port, f"burst-{listener.value}").decode())
    answer = await ws.get_message()
    if not 1 <= ws.pongs_received <= len(payloads):
        return f"{name}: {ws.pongs_received} Pongs"
    if ws.last_pong != payloads[-1]:
        return f"{name}: the last Pong carries {ws.last_pong[:16]!r}, not the last Ping's"
    if not answer.startswith(b"SIP/2.0 200"):
        return f"{name}: the OPTIONS after it got {answer[:20]!r}"
    return None


@dataclass
class QuietSocket:
    listener: Listener
    answers: bool  # answers edgeport's Pings
    ws: WsClient
    stream: ClientStream
    opened: float
    closed_at: float | None = None


class QuietWebSockets:
    """Two silent WebSocket connections per WebSocket listener, read until edgeport
    closes them or the run ends."""

    def __init__(self, interval: float, idle_timeout: float) -> None:
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.sockets: list[QuietSocket] = []
        self.failed_to_open: list[str] = []

    async def open(
        self, nursery: trio.Nursery, ports: dict[Listener, int], client_tls: ssl.SSLContext
    ) -> None:
        for listener, port in ports.items():
            if not listener.websocket:
                continue
            for answers in (True, False):
                name = f"quiet-{listener.value}-{'answering' if answers else 'silent'}"
                try:
                    with trio.fail_after(BURST_TIMEOUT):
                        stream, ws = await open_client(
                            listener, port, client_tls, answer_pings=answers
                        )
                        assert ws is not None
                        # One SIP message first: a connection that sends none is closed
                        # after spec.protection.firstMessageTimeout whatever it answers.
                        await ws.send_message(probe_message(listener, port, name).decode())
                        answer = await ws.get_message()
                except (*CONNECTION_ERRORS, trio.TooSlowError) as exc:
                    self.failed_to_open.append(f"{listener.value}: {exc!r:.100}")
                    continue
                if not answer.startswith(b"SIP/2.0 200"):
                    self.failed_to_open.append(f"{name}: the OPTIONS got {answer[:20]!r}")
                quiet = QuietSocket(listener, answers, ws, stream, trio.current_time())
                self.sockets.append(quiet)
                nursery.start_soon(self._read, quiet)

    async def _read(self, quiet: QuietSocket) -> None:
        try:
            while True:
                await quiet.ws.get_message()
        except (WsRefused, *CONNECTION_ERRORS):
            quiet.closed_at = trio.current_time()
        finally:
            await trio.aclose_forcefully(quiet.stream)

    async def wait_closed(self) -> None:
        """Wait (bounded) until edgeport has had the time to close every silent one."""
        give_up = UNANSWERED_INTERVALS * self.interval + QUIET_SLACK
        for quiet in self.sockets:
            if not quiet.answers:
                with trio.move_on_at(quiet.opened + give_up):
                    while quiet.closed_at is None:  # bounded by the move_on_at
                        await trio.sleep(0.1)

    def findings(self) -> list[str]:
        found = [f"a quiet WebSocket could not open: {why}" for why in self.failed_to_open]
        now = trio.current_time()
        for quiet in self.sockets:
            what = f"{quiet.listener.value}: a silent WebSocket that " + (
                "answers Pings" if quiet.answers else "answers no Ping"
            )
            pinged = quiet.ws.pings_received
            end = quiet.closed_at if quiet.closed_at is not None else now
            if not pinged and end - quiet.opened > 2 * self.interval:
                found.append(f"{what} got no Ping in {end - quiet.opened:.1f} s")
            lived = end - quiet.opened
            if quiet.answers and quiet.closed_at is not None and lived < self.idle_timeout:
                found.append(
                    f"{what} was closed after {lived:.1f} s ({pinged} Pings), "
                    "before the idle timeout"
                )
            if not quiet.answers and quiet.closed_at is None:
                found.append(f"{what} is still open after {now - quiet.opened:.1f} s")
        return found
