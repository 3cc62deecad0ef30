"""SIP transports: UDP, TCP, TLS, WS and WSS listeners and connections (RFC 3261 §18, RFC 7118).

Transports move raw message bytes; parsing is the caller's job.
"""

from edgeport.transports.base import Connection, Handler, InboundMessage, Peer
from edgeport.transports.connections import ConnectionTable
from edgeport.transports.errors import (
    BindError,
    ConnectionLost,
    NoRoute,
    SendError,
    TransportError,
)
from edgeport.transports.layer import TransportLayer, serve_transports
from edgeport.transports.plugins import CaptureSink, RemoteHolder

__all__ = [
    "BindError",
    "CaptureSink",
    "Connection",
    "ConnectionLost",
    "ConnectionTable",
    "Handler",
    "InboundMessage",
    "NoRoute",
    "Peer",
    "RemoteHolder",
    "SendError",
    "TransportError",
    "TransportLayer",
    "serve_transports",
]
