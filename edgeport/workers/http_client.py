"""A minimal HTTP/1.1 client over a Unix socket: the supervisor asking a worker."""

from __future__ import annotations

from typing import Final

import trio

MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024  # a worker's metrics stay far below


class HttpError(Exception):
    """The worker did not answer, or answered something that is not HTTP."""


async def get_unix(path: str, target: str) -> tuple[int, bytes]:
    """``GET target`` on the Unix socket ``path``: status code and body (the server closes)."""
    return await request_unix(path, "GET", target)


async def request_unix(path: str, method: str, target: str) -> tuple[int, bytes]:
    """``method target`` (no body) on the Unix socket ``path``: status code and body."""
    try:
        stream = await trio.open_unix_socket(path)
    except OSError as error:
        raise HttpError(f"cannot connect to {path}: {error.strerror or error}") from None
    async with stream:
        try:
            await stream.send_all(
                f"{method} {target} HTTP/1.1\r\nHost: worker\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            received = bytearray()
            while len(received) <= MAX_RESPONSE_BYTES:
                data = await stream.receive_some(65536)
                if not data:
                    break
                received += data
        except (trio.BrokenResourceError, OSError) as error:
            raise HttpError(f"{path}: {error}") from None
    head, separator, body = bytes(received).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    well_formed = len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit()
    if not separator or not well_formed:
        raise HttpError(f"{path}: not an HTTP response")
    return int(parts[1]), body
