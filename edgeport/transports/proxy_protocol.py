"""The PROXY protocol header, versions 1 (text) and 2 (binary), sans-IO.

A load balancer in front of a stream listener (HAProxy ``send-proxy`` /
``send-proxy-v2``, AWS NLB, ...) opens each connection with one header that
names the client's address; edgeport then treats that address as the
connection's source (Via stamping, ``sender``, the connection table, logs).
Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt

:func:`parse_proxy_header` takes the bytes received so far and returns the
header and how many bytes it took, or None when more bytes are needed; it
raises :class:`ProxyProtocolError` for anything that is not a valid header.
No sockets, no clock: the caller reads, and puts a deadline around it.

Version 1: ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or
``PROXY UNKNOWN...\\r\\n``; the spec caps the line at 107 bytes, CRLF included.

Version 2: a 12-byte signature, then version/command, family/protocol, a
16-bit length and that many bytes of addresses and TLVs. The LOCAL command
(a health check of the balancer itself) and the UNSPEC or UNIX families keep
the connection's real peer; TLVs are skipped. The length is capped at
:data:`MAX_V2_PAYLOAD_BYTES`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

V1_PREFIX: Final = b"PROXY "
# "the maximum line lengths the receiver must support including the CRLF are:
#  ... - worst case (optional fields set to 0xff) : 107 chars" (§2.1)
V1_MAX_BYTES: Final = 107
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_BYTES: Final = 16  # signature, version/command, family, length
# Addresses take 36 bytes at most (IPv6); the rest is TLVs, which edgeport
# skips. HAProxy's own TLVs (ALPN, authority, unique id, SSL) fit well within.
MAX_V2_PAYLOAD_BYTES: Final = 2048

_V2_LOCAL: Final = 0x0
_V2_PROXY: Final = 0x1
_AF_UNSPEC: Final = 0x0
_AF_INET: Final = 0x1
_AF_INET6: Final = 0x2
_AF_UNIX: Final = 0x3
_PROTO_UNSPEC: Final = 0x0
_PROTO_STREAM: Final = 0x1


class ProxyProtocolError(ValueError):
    """Not a valid PROXY protocol header; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header. ``source`` is None when the real peer is to be kept
    (v1 UNKNOWN, v2 LOCAL, v2 UNSPEC or UNIX addresses)."""

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None = None


def parse_proxy_header(data: bytes) -> tuple[ProxyHeader, int] | None:
    """The header at the start of ``data`` and its length in bytes, or None for
    "need more bytes". Raises ProxyProtocolError."""
    if not data:
        return None
    if _is_prefix(data, V2_SIGNATURE):
        return _parse_v2(data)
    if _is_prefix(data, V1_PREFIX):
        return _parse_v1(data)
    raise ProxyProtocolError("no PROXY protocol signature")


def _is_prefix(data: bytes, magic: bytes) -> bool:
    """True when ``data`` starts with ``magic``, or is a beginning of it."""
    n = min(len(data), len(magic))
    return data[:n] == magic[:n]


# -- version 1 ----------------------------------------------------------------------


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX_BYTES} bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyProtocolError("v1 header not ended by CRLF")
        return None
    try:
        line = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("v1 header is not ASCII") from None
    if "\r" in line or "\n" in line:
        raise ProxyProtocolError("v1 header: CR or LF before the final CRLF")
    fields = line.split(" ")
    if fields[1:2] == ["UNKNOWN"]:
        # "the receiver must ignore anything presented before the CRLF" (§2.1)
        return ProxyHeader(1, None), end + 2
    if len(fields) != 6:
        raise ProxyProtocolError(f"v1 header has {len(fields)} fields, expected 6")
    _, family, src, dst, sport, dport = fields
    if family == "TCP4":
        version: type[ipaddress.IPv4Address | ipaddress.IPv6Address] = ipaddress.IPv4Address
    elif family == "TCP6":
        version = ipaddress.IPv6Address
    else:
        raise ProxyProtocolError(f"v1 header: unknown protocol {family[:8]!r}")
    source = (_v1_address(src, version), _v1_port(sport))
    destination = (_v1_address(dst, version), _v1_port(dport))
    return ProxyHeader(1, source, destination), end + 2


def _v1_address(text: str, version: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> str:
    try:
        if "%" in text:
            raise ValueError(text)  # a scoped IPv6 address names no remote peer
        return str(version(text))
    except ValueError:
        raise ProxyProtocolError(f"v1 header: bad address {text[:46]!r}") from None


def _v1_port(text: str) -> int:
    # "the port is always a decimal number between 0 and 65535 ... leading zeroes
    #  are not permitted" (§2.1)
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProxyProtocolError(f"v1 header: bad port {text[:8]!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"v1 header: bad port {text[:8]!r}")
    return port


# -- version 2 ----------------------------------------------------------------------


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    if len(data) < V2_HEADER_BYTES:
        return None
    version_command = data[12]
    if version_command >> 4 != 0x2:
        raise ProxyProtocolError(f"v2 header: unsupported version {version_command >> 4}")
    command = version_command & 0x0F
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyProtocolError(f"v2 header: unknown command {command}")
    family, protocol = data[13] >> 4, data[13] & 0x0F
    (length,) = struct.unpack_from("!H", data, 14)
    if length > MAX_V2_PAYLOAD_BYTES:
        raise ProxyProtocolError(f"v2 header: {length} bytes of addresses and TLVs is too many")
    total = V2_HEADER_BYTES + length
    if len(data) < total:
        return None
    payload = data[V2_HEADER_BYTES:total]
    if command == _V2_LOCAL:
        # "the receiver must accept this connection as valid and must use the
        #  real connection endpoints and discard the protocol block" (§2.2)
        return ProxyHeader(2, None), total
    if family in (_AF_UNSPEC, _AF_UNIX):
        return ProxyHeader(2, None), total
    if protocol not in (_PROTO_STREAM, _PROTO_UNSPEC):
        raise ProxyProtocolError("v2 header: not a stream connection")
    if family == _AF_INET:
        if length < 12:
            raise ProxyProtocolError("v2 header: IPv4 addresses truncated")
        src = str(ipaddress.IPv4Address(payload[0:4]))
        dst = str(ipaddress.IPv4Address(payload[4:8]))
        sport, dport = struct.unpack_from("!HH", payload, 8)
    elif family == _AF_INET6:
        if length < 36:
            raise ProxyProtocolError("v2 header: IPv6 addresses truncated")
        src = str(ipaddress.IPv6Address(payload[0:16]))
        dst = str(ipaddress.IPv6Address(payload[16:32]))
        sport, dport = struct.unpack_from("!HH", payload, 32)
    else:
        raise ProxyProtocolError(f"v2 header: unknown address family {family}")
    return ProxyHeader(2, (src, sport), (dst, dport)), total


# -- building (for tests and tools) -------------------------------------------------


def build_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v1 header for this TCP connection."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return (f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n").encode(
        "ascii"
    )


def build_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    *,
    tlvs: bytes = b"",
) -> bytes:
    """A v2 PROXY header for a TCP connection, or LOCAL when ``source`` is None."""
    if source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    destination = destination or (("::" if ":" in source[0] else "0.0.0.0"), 0)
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    family = _AF_INET6 if src.version == 6 else _AF_INET
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return (
        V2_SIGNATURE
        + bytes([0x21, (family << 4) | _PROTO_STREAM])
        + struct.pack("!H", len(body))
        + body
    )
