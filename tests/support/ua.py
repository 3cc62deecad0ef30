"""Minimal SIP user agents for end-to-end tests: sockets that send literal SIP text.

The tests write every message themselves; these classes only move bytes and
pick out the first line and headers of what comes back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio
import trio_websocket

RECEIVE_TIMEOUT: Final = 5.0  # seconds a test waits for one message


@dataclass
class Received:
    """A received SIP message, split just enough for assertions."""

    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0]

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2\.0 (\d{3}) ", self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def headers(self, name: str) -> list[str]:
        head = self.text.split("\r\n\r\n", 1)[0]
        out = []
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                out.append(value.strip())
        return out

    def header(self, name: str) -> str:
        values = self.headers(name)
        assert values, f"no {name} in:\n{self.text}"
        return values[0]

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""


def sip(text: str) -> bytes:
    """Literal SIP text with LF line ends -> wire bytes with CRLF; Content-Length is the test's."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


class _Receiver:
    """``receive_until`` for every user agent kind: skip what does not match."""

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        raise NotImplementedError

    async def receive_until(
        self, predicate: Callable[[Received], bool], timeout: float = RECEIVE_TIMEOUT
    ) -> Received:
        """Skip messages (retransmissions, 100 Trying) until one matches ``predicate``."""
        with trio.fail_after(timeout):
            for _ in range(100):
                message = await self.receive(timeout)
                if predicate(message):
                    return message
        raise AssertionError("no matching message")


class UdpUA(_Receiver):
    """A UDP socket on 127.0.0.1 that talks to one edgeport address."""

    def __init__(self, sock: trio.socket.SocketType, server: tuple[str, int]) -> None:
        self.sock = sock
        self.server = server

    @classmethod
    async def open(cls, server: tuple[str, int]) -> UdpUA:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        return cls(sock, server)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        await self.sock.sendto(data, to or self.server)

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        with trio.fail_after(timeout):
            data, _addr = await self.sock.recvfrom(65535)
        return Received(data)

    async def nothing_within(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            data, _ = await self.sock.recvfrom(65535)
            raise AssertionError(f"unexpected message:\n{data.decode('utf-8', 'replace')}")

    def close(self) -> None:
        self.sock.close()


class TcpUA(_Receiver):
    """A TCP connection to edgeport with Content-Length framing of what comes back."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, server: tuple[str, int]) -> TcpUA:
        return cls(await trio.open_tcp_stream(*server))

    @property
    def port(self) -> int:
        return int(self.stream.socket.getsockname()[1])

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        with trio.fail_after(timeout):
            while True:
                while self.buffer.startswith(b"\r\n"):
                    self.buffer = self.buffer[2:]
                if b"\r\n\r\n" in self.buffer:
                    head, rest = self.buffer.split(b"\r\n\r\n", 1)
                    match = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    length = int(match.group(1)) if match else 0
                    if len(rest) >= length:
                        self.buffer = rest[length:]
                        return Received(head + b"\r\n\r\n" + rest[:length])
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise EOFError("connection closed")
                self.buffer += chunk

    async def close(self) -> None:
        await self.stream.aclose()


class WsUA(_Receiver):
    """A browser-like WebSocket SIP client (RFC 7118, subprotocol ``sip``)."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_message(data.decode())

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Received:
        with trio.fail_after(timeout):
            message = await self.ws.get_message()
        return Received(message.encode() if isinstance(message, str) else message)
