"""The errors the transport layer raises: one family for sending, OSErrors for connecting
and binding."""

from __future__ import annotations

from typing import ClassVar


class TransportError(Exception):
    """Base of the transport layer's own errors."""


class SendError(TransportError):
    """A message could not be sent; the caller decides what that means (RFC 3261 §18.4)."""


class ConnectionLost(SendError):
    """The stream connection broke or was closed; it has left the connection table."""


class NoRoute(SendError):
    """No way to reach the target: no WebSocket connection, or an unknown ``.invalid`` host."""


class TlsHandshakeError(ConnectionError):
    """An outbound TLS handshake failed; the message says why (certificate not verified...)."""


class BindError(OSError):
    """A listening point could not be bound; the server cannot start."""

    startup_error: ClassVar[bool] = True

    def __init__(self, protocol: str, addr: str, port: int, reason: str) -> None:
        host = f"[{addr}]" if ":" in addr else addr
        super().__init__(f"unable to bind {protocol}://{host}:{port}: {reason}")
        self.protocol = protocol
        self.addr = addr
        self.port = port
        self.reason = reason
