"""Accepting a connection through a load balancer that speaks the PROXY protocol.

On a listener with ``proxyProtocol: true``, the header is the first thing
read, before the TLS handshake (TLS, WSS) and before the WebSocket upgrade
(WS, WSS), within :data:`PROXY_HEADER_TIMEOUT`. Only peers in
``spec.proxyProtocol.trustedProxies`` may send one: a connection from
anyone else, or without a valid header in time, is closed. The address the
header names then stands for the connection's peer everywhere (Via
``received``/``rport``, ``sender``, the connection table, logs). Bytes that
arrived behind the header are handed on, so nothing the client sent is lost.
The parser is :mod:`edgeport.transports.proxy_protocol` (sans-IO).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from edgeport.transports.base import Peer
from edgeport.transports.proxy_protocol import ProxyProtocolError, parse_proxy_header

if TYPE_CHECKING:
    from collections.abc import Sequence

# A balancer writes the header as soon as it has connected; a few seconds
# covers a loaded one, and a client that sends nothing is dropped soon.
PROXY_HEADER_TIMEOUT: Final = 5.0  # seconds
RECEIVE_BYTES: Final = 4096  # one read while waiting for the header; the parser bounds the total


class Refusal(enum.Enum):
    """Why a connection on a PROXY protocol listener was closed (its stats key)."""

    UNTRUSTED = "proxy_protocol_untrusted"
    INVALID = "proxy_protocol_invalid"
    TIMEOUT = "proxy_protocol_timeout"


@dataclass(frozen=True, slots=True)
class Refused:
    """A connection to close: why (``reason.value`` is its stats key), and details to log."""

    reason: Refusal
    detail: str


class TrustedProxies:
    """The networks allowed to send a PROXY protocol header."""

    def __init__(self, networks: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(net, strict=False) for net in networks]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        candidates = [address] if mapped is None else [address, mapped]
        return any(a in net for a in candidates for net in self._networks)


class PrefixedStream(trio.abc.Stream):
    """A stream that first yields bytes already read from it (those behind the header)."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.transport_stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.transport_stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        self._prefix = b""
        await self.transport_stream.aclose()


async def read_proxy_header(stream: trio.abc.Stream) -> tuple[tuple[str, int] | None, bytes]:
    """Read one PROXY protocol header: (the source it names or None, the bytes after it).

    Raises ProxyProtocolError for an invalid header or a stream that ends
    first; the caller sets the deadline. Bounded: the parser refuses a header
    past 107 bytes (v1) or 16 + 2048 bytes (v2).
    """
    buffer = b""
    while True:
        result = parse_proxy_header(buffer)
        if result is not None:
            header, used = result
            return header.source, buffer[used:]
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise ProxyProtocolError("connection closed before the PROXY protocol header")
        buffer += data


async def accept_proxied(
    stream: trio.abc.Stream, peer: Peer, trusted: TrustedProxies
) -> tuple[Peer, trio.abc.Stream] | Refused:
    """The client's address as the header gives it, and the stream to go on reading;
    or why the connection must be closed."""
    if peer.host not in trusted:
        return Refused(Refusal.UNTRUSTED, "not a trusted proxy")
    with trio.move_on_after(PROXY_HEADER_TIMEOUT):
        try:
            source, rest = await read_proxy_header(stream)
        except ProxyProtocolError as exc:
            return Refused(Refusal.INVALID, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            return Refused(Refusal.INVALID, f"connection broken: {exc.__cause__ or exc}")
        client = peer if source is None else Peer(peer.transport, source[0], source[1])
        return client, (PrefixedStream(stream, rest) if rest else stream)
    return Refused(Refusal.TIMEOUT, f"no PROXY protocol header within {PROXY_HEADER_TIMEOUT} s")
