"""PROXY protocol headers the fuzzer sends as a load balancer: valid, invalid, mutated.

Written here from the spec (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt),
not with edgeport's own builder, so that a header edgeport misreads is not
also built wrong. Each header carries what the spec says of it:

- ``VALID``: version 1 (TCP4, TCP6, UNKNOWN) or 2 (PROXY over IPv4 or IPv6,
  with or without TLVs, or LOCAL). The SIP that follows is judged as on any
  connection.
- ``INVALID``: a header the spec forbids, complete so that a receiver can tell
  at once (no signature, a v1 line over 107 bytes or without CRLF, a wrong
  field count or protocol, a port out of range or with a leading zero, a bad
  address; a v2 version other than 2, an unknown command, addresses shorter
  than their family needs). The connection must close: nothing sent on it may
  reach the processor.
- ``MUTATED``: a valid header with bytes flipped, cut or inserted. The spec
  may or may not allow the result, and a cut header makes the receiver take
  the SIP that follows as the rest of it: what reaches the processor is not
  judged, only that edgeport stays up.
"""

from __future__ import annotations

import enum
import ipaddress
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

SIGNATURE_V2: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX_BYTES: Final = 107  # the spec's worst-case v1 line, CRLF included


class HeaderVerdict(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    MUTATED = "mutated"


@dataclass(frozen=True)
class ProxyHeader:
    data: bytes
    verdict: HeaderVerdict
    kind: str  # for the report: "v1", "v2-local", "invalid: v1 port 65536", ...


def v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    family = "TCP6" if ":" in source[0] else "TCP4"
    line = f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    *,
    tlvs: bytes = b"",
    version_command: int = 0x21,
    family_protocol: int | None = None,
) -> bytes:
    """A v2 header; ``source`` None is the LOCAL command (a balancer's own health check)."""
    if source is None:
        return SIGNATURE_V2 + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    src = ipaddress.ip_address(source[0])
    destination = destination or (("::1" if src.version == 6 else "127.0.0.1"), 5060)
    dst = ipaddress.ip_address(destination[0])
    family = 0x21 if src.version == 6 else 0x11  # AF_INET6 / AF_INET, STREAM
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1]) + tlvs
    return (
        SIGNATURE_V2
        + bytes([version_command, family if family_protocol is None else family_protocol])
        + struct.pack("!H", len(body))
        + body
    )


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def valid(rng: random.Random, source: tuple[str, int], port: int) -> ProxyHeader:
    """A header naming ``source`` as the client, to edgeport's ``port``."""
    six = ":" in source[0]
    destination = ("::1" if six else "127.0.0.1", port)
    choice = rng.randrange(6)
    if choice == 0:
        return ProxyHeader(v1(source, destination), HeaderVerdict.VALID, "v1")
    if choice == 1:
        tail = rng.choice(("", " TCP4 1.2.3.4 5.6.7.8 1 2", " anything"))
        return ProxyHeader(f"PROXY UNKNOWN{tail}\r\n".encode(), HeaderVerdict.VALID, "v1-unknown")
    if choice == 2:
        return ProxyHeader(v2(None), HeaderVerdict.VALID, "v2-local")
    if choice == 3:
        tlvs = _tlv(0x01, b"sip") + _tlv(0x02, b"edge.example") + _tlv(0x05, rng.randbytes(16))
        return ProxyHeader(v2(source, destination, tlvs=tlvs), HeaderVerdict.VALID, "v2-tlvs")
    return ProxyHeader(v2(source, destination), HeaderVerdict.VALID, "v2")


INVALID_HEADERS: Final[tuple[tuple[str, Callable[[tuple[str, int], int], bytes]], ...]] = (
    ("no signature", lambda s, p: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("v1 too long", lambda s, p: b"PROXY TCP4 " + b"1" * V1_MAX_BYTES + b"\r\n"),
    ("v1 LF only", lambda s, p: v1(s, ("127.0.0.1", p))[:-2] + b"\n"),
    ("v1 five fields", lambda s, p: b"PROXY TCP4 192.0.2.1 127.0.0.1 5060\r\n"),
    ("v1 UDP4", lambda s, p: b"PROXY UDP4 192.0.2.1 127.0.0.1 5060 %d\r\n" % p),
    ("v1 port 65536", lambda s, p: b"PROXY TCP4 192.0.2.1 127.0.0.1 65536 %d\r\n" % p),
    ("v1 leading zero", lambda s, p: b"PROXY TCP4 192.0.2.1 127.0.0.1 05060 %d\r\n" % p),
    ("v1 bad address", lambda s, p: b"PROXY TCP4 192.0.2.256 127.0.0.1 5060 %d\r\n" % p),
    ("v1 IPv6 as TCP4", lambda s, p: b"PROXY TCP4 2001:db8::1 127.0.0.1 5060 %d\r\n" % p),
    ("v2 version 1", lambda s, p: v2(("192.0.2.1", 5060), version_command=0x11)),
    ("v2 command 2", lambda s, p: v2(("192.0.2.1", 5060), version_command=0x22)),
    ("v2 IPv4 short", lambda s, p: SIGNATURE_V2 + b"\x21\x11\x00\x08" + bytes(8)),
    ("v2 IPv6 short", lambda s, p: SIGNATURE_V2 + b"\x21\x21\x00\x20" + bytes(32)),
)


def every_invalid(source: tuple[str, int], port: int) -> list[ProxyHeader]:
    return [
        ProxyHeader(build(source, port), HeaderVerdict.INVALID, f"invalid: {name}")
        for name, build in INVALID_HEADERS
    ]


def invalid(rng: random.Random, source: tuple[str, int], port: int) -> ProxyHeader:
    name, build = rng.choice(INVALID_HEADERS)
    return ProxyHeader(build(source, port), HeaderVerdict.INVALID, f"invalid: {name}")


def mutated(rng: random.Random, source: tuple[str, int], port: int) -> ProxyHeader:
    data = bytearray(valid(rng, source, port).data)
    how = rng.randrange(3)
    if how == 0:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == 1:
        del data[rng.randrange(1, len(data)) :]
    else:
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.choice((b"\r\n", b" ", b"\x00", b"PROXY ", bytes(rng.randrange(1, 40))))
    return ProxyHeader(bytes(data), HeaderVerdict.MUTATED, "mutated")


def pick(
    rng: random.Random,
    sources: Sequence[tuple[str, int]],
    port: int,
    *,
    allow_mutated: bool,
) -> ProxyHeader:
    """A header naming one of ``sources``: mostly valid, some invalid, some mutated."""
    source = rng.choice(sources)
    roll = rng.random()
    if roll < 0.15:
        return invalid(rng, source, port)
    if roll < 0.30 and allow_mutated:
        return mutated(rng, source, port)
    return valid(rng, source, port)
