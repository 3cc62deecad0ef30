"""STUN Binding on the SIP UDP port: the UDP keep-alive of RFC 5626 (sans-IO).

RFC 5626 §3.5.2 and §8: a UA behind NAT keeps its UDP flow open by sending
STUN Binding requests (RFC 5389) to the SIP address and port it registered
through, and learns from the answer whether its public address changed; the
element on that port answers them. Without an answer the UA takes the flow
for dead and registers again.

This module tells a STUN message from SIP and builds the answer, bytes in,
bytes out: no sockets, no clock. RFC 5389 §6: a STUN message starts with
two zero bits (so its first byte is 0x00 or 0x01 for the Binding method,
where a SIP message starts with a letter), carries the magic cookie
0x2112A442 in bytes 4 to 8, and its length (a multiple of 4) counts the
attributes after the 20-byte header.

What is answered: a well-formed Binding Request, with a Binding Success
Response carrying XOR-MAPPED-ADDRESS, the request's source (§15.2); a
Binding Request with an unknown comprehension-required attribute, with a
420 error listing them (§7.3.1). Everything else (indications, responses,
other methods, a malformed or oversized message) gets no answer.

The answer is never much larger than the request: a 20-byte Binding
Request gets 32 bytes back for IPv4, 44 for IPv6 (with the IP and UDP
headers, 1.25 and 1.35 times the bytes in), and nothing optional (SOFTWARE,
FINGERPRINT) is added, so the port is no amplifier. edgeport does no STUN
authentication: USERNAME and MESSAGE-INTEGRITY are read past, not checked.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

MAGIC_COOKIE: Final = 0x2112A442
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
HEADER_BYTES: Final = 20
# RFC 5389 §7.1: without a known path MTU a STUN message over UDP should fit
# 576-byte IPv4 datagrams, so 548 bytes of STUN. A keep-alive is 20 to 40.
MAX_REQUEST_BYTES: Final = 548

BINDING_REQUEST: Final = 0x0001
BINDING_SUCCESS: Final = 0x0101
BINDING_ERROR: Final = 0x0111

XOR_MAPPED_ADDRESS: Final = 0x0020
ERROR_CODE: Final = 0x0009
UNKNOWN_ATTRIBUTES: Final = 0x000A
# The comprehension-required attributes RFC 5389 §18.2 registers (0x0000-0x7FFF):
# MAPPED-ADDRESS, USERNAME, MESSAGE-INTEGRITY, ERROR-CODE, UNKNOWN-ATTRIBUTES,
# REALM, NONCE, XOR-MAPPED-ADDRESS. Any other one in a request gets a 420.
_KNOWN_REQUIRED: Final = frozenset({0x0001, 0x0006, 0x0008, 0x0009, 0x000A, 0x0014, 0x0015, 0x0020})
_FAMILY_IPV4: Final = 0x01
_FAMILY_IPV6: Final = 0x02

_HEADER: Final = struct.Struct("!HHI12s")
_ATTRIBUTE: Final = struct.Struct("!HH")


def is_stun(data: bytes) -> bool:
    """Whether a datagram is a STUN message rather than SIP (first byte and cookie)."""
    return len(data) >= HEADER_BYTES and data[0] < 0x02 and data[4:8] == _COOKIE_BYTES


def answer(data: bytes, host: str, port: int) -> bytes | None:
    """The answer to a STUN datagram from ``host``:``port`` (an IP address as the
    socket reports it), or None when it gets none."""
    if not is_stun(data) or len(data) > MAX_REQUEST_BYTES:
        return None
    kind, length, _cookie, transaction = _HEADER.unpack_from(data)
    if kind != BINDING_REQUEST or length % 4 or HEADER_BYTES + length != len(data):
        return None
    unknown = _unknown_required(data)
    if unknown is None:
        return None
    if unknown:
        return _error_420(transaction, unknown)
    mapped = _xor_mapped_address(host, port, transaction)
    if mapped is None:
        return None
    return _message(BINDING_SUCCESS, transaction, mapped)


def _unknown_required(data: bytes) -> list[int] | None:
    """The unknown comprehension-required attribute types, in order; None when the
    attributes do not parse (RFC 5389 §15: type, length, value padded to 4 bytes)."""
    unknown: list[int] = []
    offset = HEADER_BYTES
    while offset < len(data):
        if offset + _ATTRIBUTE.size > len(data):
            return None
        kind, length = _ATTRIBUTE.unpack_from(data, offset)
        offset += _ATTRIBUTE.size + length + (-length % 4)
        if offset > len(data):
            return None
        if kind < 0x8000 and kind not in _KNOWN_REQUIRED and kind not in unknown:
            unknown.append(kind)
    return unknown


def _xor_mapped_address(host: str, port: int, transaction: bytes) -> bytes | None:
    """RFC 5389 §15.2: X-Port is the port XOR the cookie's top 16 bits; X-Address the
    address XOR the cookie (IPv4), or XOR the cookie and the transaction ID (IPv6)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    packed = address.packed
    family = _FAMILY_IPV4 if address.version == 4 else _FAMILY_IPV6
    mask = (_COOKIE_BYTES + transaction)[: len(packed)]
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=True))
    value = struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + xored
    return _attribute(XOR_MAPPED_ADDRESS, value)


def _error_420(transaction: bytes, unknown: list[int]) -> bytes:
    """RFC 5389 §7.3.1: 420 (Unknown Attribute) with UNKNOWN-ATTRIBUTES. The reason
    phrase is left empty, so the answer stays about the size of the request."""
    error = _attribute(ERROR_CODE, struct.pack("!HBB", 0, 4, 20))
    listed = _attribute(UNKNOWN_ATTRIBUTES, b"".join(struct.pack("!H", t) for t in unknown))
    return _message(BINDING_ERROR, transaction, error + listed)


def _attribute(kind: int, value: bytes) -> bytes:
    return _ATTRIBUTE.pack(kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def _message(kind: int, transaction: bytes, attributes: bytes) -> bytes:
    return _HEADER.pack(kind, len(attributes), MAGIC_COOKIE, transaction) + attributes
