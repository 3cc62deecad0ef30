"""HEP v3 (Homer Encapsulation Protocol) packets: encoding and a strict decoder.

Sans-IO. A HEP v3 packet is the ASCII magic ``HEP3``, a 16-bit total length,
then chunks; each chunk is a 16-bit vendor id (0 = generic), a 16-bit chunk
type, a 16-bit length that counts the 6-byte chunk header, and the value.
All integers are in network byte order. The chunk types used here are the
generic ones every Homer collector reads: address family, IP protocol,
addresses, ports, timestamp (seconds and microseconds), payload type,
capture agent id, auth key, payload and correlation id.

Every length field is 16 bits, so one packet carries at most 65,535 bytes,
headers and chunks included: a SIP message over TCP may be larger (up to
1 MiB), and its copy cannot be sent. :func:`encode` checks every size and
value before packing anything and raises :class:`HepError`, and nothing
else, for any input it cannot encode.
"""

from __future__ import annotations

import math
import re
import socket
import struct
from dataclasses import dataclass
from typing import Final

from edgeport.sip.transport import Transport

MAGIC: Final = b"HEP3"
HEADER_SIZE: Final = 6
CHUNK_HEADER_SIZE: Final = 6
MAX_PACKET_SIZE: Final = 0xFFFF  # bytes; the packet length field is 16 bits
MAX_CHUNK_VALUE_BYTES: Final = 0xFFFF - CHUNK_HEADER_SIZE  # a chunk length field is 16 bits
# The largest payload any packet can carry (no other chunk could be smaller
# than nothing); the real bound is lower by the size of the other chunks.
MAX_PAYLOAD_BYTES: Final = MAX_PACKET_SIZE - HEADER_SIZE - CHUNK_HEADER_SIZE

# Generic chunk types (vendor 0x0000).
CHUNK_IP_FAMILY: Final = 0x0001
CHUNK_IP_PROTOCOL: Final = 0x0002
CHUNK_IPV4_SRC: Final = 0x0003
CHUNK_IPV4_DST: Final = 0x0004
CHUNK_IPV6_SRC: Final = 0x0005
CHUNK_IPV6_DST: Final = 0x0006
CHUNK_SRC_PORT: Final = 0x0007
CHUNK_DST_PORT: Final = 0x0008
CHUNK_TIME_SECONDS: Final = 0x0009
CHUNK_TIME_MICROSECONDS: Final = 0x000A
CHUNK_PAYLOAD_TYPE: Final = 0x000B
CHUNK_CAPTURE_ID: Final = 0x000C
CHUNK_AUTH_KEY: Final = 0x000E
CHUNK_PAYLOAD: Final = 0x000F
CHUNK_CORRELATION_ID: Final = 0x0011

FAMILY_IPV4: Final = 2  # AF_INET
FAMILY_IPV6: Final = 10  # AF_INET6 as Linux numbers it; HEP uses these values
PROTOCOL_TCP: Final = 6
PROTOCOL_UDP: Final = 17
PAYLOAD_SIP: Final = 1

# HEP has no chunk for TLS or WebSocket: they travel over TCP, and the
# payload is the SIP message after decryption and de-framing.
IP_PROTOCOLS: Final = {
    Transport.UDP: PROTOCOL_UDP,
    Transport.TCP: PROTOCOL_TCP,
    Transport.TLS: PROTOCOL_TCP,
    Transport.WS: PROTOCOL_TCP,
    Transport.WSS: PROTOCOL_TCP,
}

_CALL_ID_RE: Final = re.compile(rb"\r?\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")
MAX_CORRELATION_BYTES: Final = 256


class HepError(ValueError):
    """A packet that cannot be encoded or decoded; the message says why."""


class PacketTooLarge(HepError):
    """The packet would exceed 65,535 bytes (a 16-bit length field overflows)."""


@dataclass(frozen=True, slots=True)
class Capture:
    """One SIP message as seen on the wire, ready to encode."""

    payload: bytes
    transport: Transport
    src_host: str
    src_port: int
    dst_host: str
    dst_port: int
    timestamp: float  # seconds since the epoch


def find_call_id(data: bytes) -> str | None:
    """The Call-ID (long or compact form) from the header section, if any."""
    end = _HEADER_END.search(data)
    head = data if end is None else data[: end.start() + 2]
    match = _CALL_ID_RE.search(head)
    if match is None:
        return None
    value = match.group(1).strip()[:MAX_CORRELATION_BYTES]
    return value.decode("utf-8", "replace") or None


def _chunk(chunk_type: int, value: bytes) -> bytes:
    if len(value) > MAX_CHUNK_VALUE_BYTES:
        raise PacketTooLarge(
            f"chunk {chunk_type:#06x} of {len(value)} bytes exceeds the HEP v3 limit "
            f"of {MAX_CHUNK_VALUE_BYTES}"
        )
    return struct.pack("!HHH", 0, chunk_type, CHUNK_HEADER_SIZE + len(value)) + value


def _u16(name: str, value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise HepError(f"{name} {value} is not a 16-bit value")
    return struct.pack("!H", value)


def _text(name: str, value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise HepError(f"{name} is not encodable as UTF-8") from None


def encode(
    capture: Capture,
    *,
    agent_id: int,
    password: str | None = None,
    correlation_id: str | None = None,
) -> bytes:
    """One HEP v3 packet.

    Raises :class:`HepError`, and nothing else, when the packet cannot be
    made: mixed address families, a host that is not an IP address, a port
    or time out of range, or a packet over 65,535 bytes (a payload too large
    for one packet). Sizes are checked before anything is packed.
    """
    protocol = IP_PROTOCOLS.get(capture.transport)
    if protocol is None:
        raise HepError(f"no IP protocol for transport {capture.transport!r}")
    if not math.isfinite(capture.timestamp) or capture.timestamp < 0:
        raise HepError(f"timestamp {capture.timestamp!r} is not a time since the epoch")
    src, dst = _packed(capture.src_host), _packed(capture.dst_host)
    if len(src) != len(dst):
        src, dst = _unmapped(src), _unmapped(dst)
        if len(src) != len(dst):
            raise HepError(
                f"source {capture.src_host} and destination {capture.dst_host} "
                "are of different families"
            )
    if len(src) == 4:
        family, src_type, dst_type = FAMILY_IPV4, CHUNK_IPV4_SRC, CHUNK_IPV4_DST
    else:
        family, src_type, dst_type = FAMILY_IPV6, CHUNK_IPV6_SRC, CHUNK_IPV6_DST
    seconds = int(capture.timestamp)
    microseconds = min(round((capture.timestamp - seconds) * 1_000_000), 999_999)
    chunks = [
        _chunk(CHUNK_IP_FAMILY, bytes([family])),
        _chunk(CHUNK_IP_PROTOCOL, bytes([protocol])),
        _chunk(src_type, src),
        _chunk(dst_type, dst),
        _chunk(CHUNK_SRC_PORT, _u16("source port", capture.src_port)),
        _chunk(CHUNK_DST_PORT, _u16("destination port", capture.dst_port)),
        _chunk(CHUNK_TIME_SECONDS, struct.pack("!I", seconds & 0xFFFFFFFF)),
        _chunk(CHUNK_TIME_MICROSECONDS, struct.pack("!I", microseconds)),
        _chunk(CHUNK_PAYLOAD_TYPE, bytes([PAYLOAD_SIP])),
        _chunk(CHUNK_CAPTURE_ID, struct.pack("!I", agent_id & 0xFFFFFFFF)),
    ]
    if password:
        chunks.append(_chunk(CHUNK_AUTH_KEY, _text("password", password)))
    if correlation_id:
        chunks.append(_chunk(CHUNK_CORRELATION_ID, _text("correlation id", correlation_id)))
    # The payload goes last, and its size is checked before it is packed.
    total = (
        HEADER_SIZE + sum(len(chunk) for chunk in chunks) + CHUNK_HEADER_SIZE + len(capture.payload)
    )
    if total > MAX_PACKET_SIZE:
        raise PacketTooLarge(
            f"a {len(capture.payload)}-byte message makes a packet of {total} bytes, "
            f"which exceeds the HEP v3 limit of {MAX_PACKET_SIZE}"
        )
    chunks.append(_chunk(CHUNK_PAYLOAD, capture.payload))
    return MAGIC + struct.pack("!H", total) + b"".join(chunks)


def _packed(host: str) -> bytes:
    """The address in network order: 4 bytes for IPv4, 16 for IPv6."""
    try:
        return socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError):  # ValueError: a NUL character
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        raise HepError(f"not an IP address: {host[:64]!r}") from None


_V4_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"


def _unmapped(packed: bytes) -> bytes:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its IPv4 address."""
    return packed[12:] if packed[:12] == _V4_MAPPED_PREFIX else packed


def decode_chunks(packet: bytes) -> dict[tuple[int, int], bytes]:
    """(vendor, type) -> value for every chunk; raises HepError on a malformed packet."""
    if len(packet) < HEADER_SIZE or packet[:4] != MAGIC:
        raise HepError("not a HEP v3 packet")
    (total,) = struct.unpack_from("!H", packet, 4)
    if total != len(packet):
        raise HepError(f"length field says {total} bytes, packet has {len(packet)}")
    chunks: dict[tuple[int, int], bytes] = {}
    offset = HEADER_SIZE
    while offset < total:
        if total - offset < CHUNK_HEADER_SIZE:
            raise HepError(f"truncated chunk header at byte {offset}")
        vendor, chunk_type, length = struct.unpack_from("!HHH", packet, offset)
        if length < CHUNK_HEADER_SIZE or offset + length > total:
            raise HepError(f"chunk {chunk_type:#06x} at byte {offset} has a bad length {length}")
        chunks[(vendor, chunk_type)] = packet[offset + CHUNK_HEADER_SIZE : offset + length]
        offset += length
    return chunks
