"""STUN on the SIP UDP port: the fuzzer's STUN datagrams and the verdict on the answers.

RFC 5389 §6: a STUN message starts with two zero bits (first byte 0x00 or
0x01), carries the magic cookie 0x2112A442 in bytes 4 to 8 and a 96-bit
transaction ID in bytes 8 to 20; its length (a multiple of 4) counts the
attributes after the 20-byte header, each a type, a length and a value
padded to 4 bytes (§15). RFC 5626 §8: edgeport answers a Binding request on
its SIP UDP port (a keep-alive) and nothing else STUN.

:func:`generate` makes one datagram of a kind of :data:`KINDS`: valid
Binding requests with known, random, huge and truncated attributes, wrong
lengths, a wrong cookie, other methods and classes, a STUN header with SIP
after it, SIP after one to eight 0x00/0x01 bytes, byte flips. Each is built
here, from the RFC's layout, never by edgeport's code.

:func:`judge_answer` is the verdict on one answer, the same in-process (on
what ``edgeport.transports.stun.answer`` returns) and live (on a datagram
edgeport sent back): an answer only for a Binding request the fuzzer sent,
with its transaction ID; a success of at most :data:`MAX_SUCCESS_BYTES`
carrying the requester's address in XOR-MAPPED-ADDRESS; a 420 (unknown
comprehension-required attributes, §7.3.1) no larger than
:func:`max_error_bytes`. :class:`StunLedger` remembers what was sent, bounded.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Final

COOKIE: Final = b"\x21\x12\xa4\x42"
HEADER_BYTES: Final = 20
BINDING_REQUEST: Final = 0x0001
BINDING_SUCCESS: Final = 0x0101
BINDING_ERROR: Final = 0x0111
XOR_MAPPED_ADDRESS: Final = 0x0020
ERROR_CODE: Final = 0x0009
UNKNOWN_ATTRIBUTES: Final = 0x000A
# A success carries one XOR-MAPPED-ADDRESS: 20 + 4 + 8 bytes for IPv4, 20 + 4 + 20 for IPv6.
MAX_SUCCESS_BYTES: Final = 44
MAX_UDP_PAYLOAD_BYTES: Final = 65_507
MAX_LEDGER_ENTRIES: Final = 200_000  # transaction IDs remembered: about 20 MiB at most

# Attribute types (RFC 5389 §18.2, RFC 5245 §19.1): comprehension-required below 0x8000.
_ATTRIBUTE_TYPES: Final = (
    0x0001,  # MAPPED-ADDRESS
    0x0006,  # USERNAME
    0x0008,  # MESSAGE-INTEGRITY
    0x0014,  # REALM
    0x0015,  # NONCE
    0x0020,  # XOR-MAPPED-ADDRESS
    0x0024,  # PRIORITY (ICE): unknown to a plain STUN server, so a 420
    0x0025,  # USE-CANDIDATE (ICE)
    0x8022,  # SOFTWARE
    0x8028,  # FINGERPRINT
    0x8029,  # ICE-CONTROLLED
    0x802A,  # ICE-CONTROLLING
)
_OTHER_TYPES: Final = (0x0011, 0x0101, 0x0111, 0x0003, 0x0004, 0x0008, 0x0009, 0x0002, 0x3FEF)

KINDS: Final = (
    "binding",
    "binding-attributes",
    "binding-random-attributes",
    "binding-huge-attribute",
    "binding-many-unknown",
    "truncated",
    "wrong-length",
    "wrong-cookie",
    "other-type",
    "stun-then-sip",
    "sip-after-zero-bytes",
    "flipped",
)


def header(kind: int, length: int, transaction: bytes, cookie: bytes = COOKIE) -> bytes:
    return struct.pack("!HH", kind, length) + cookie + transaction


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def message(kind: int, transaction: bytes, attributes: bytes, cookie: bytes = COOKIE) -> bytes:
    return header(kind, len(attributes), transaction, cookie) + attributes


def _transaction(rng: random.Random) -> bytes:
    return rng.randbytes(12)


def _attributes(rng: random.Random, count: int, types: tuple[int, ...] = _ATTRIBUTE_TYPES) -> bytes:
    return b"".join(
        attribute(rng.choice(types), rng.randbytes(rng.choice((0, 1, 4, 8, 20, 33))))
        for _ in range(count)
    )


def generate(rng: random.Random, sip: bytes) -> tuple[str, bytes]:
    """One STUN (or STUN-looking) datagram and its kind; ``sip`` is a SIP message for
    the kinds that carry one (its Call-ID must never reach the processor)."""
    kind = rng.choice(KINDS)
    tid = _transaction(rng)
    if kind == "binding":
        return kind, message(BINDING_REQUEST, tid, b"")
    if kind == "binding-attributes":
        return kind, message(BINDING_REQUEST, tid, _attributes(rng, rng.randint(1, 4)))
    if kind == "binding-random-attributes":
        types = tuple(rng.randrange(0x10000) for _ in range(4))
        return kind, message(BINDING_REQUEST, tid, _attributes(rng, rng.randint(1, 12), types))
    if kind == "binding-huge-attribute":
        # Up to the largest datagram: 20 + 4 + the value padded to 4 bytes.
        size = rng.choice((300, 524, 525, 528, 1_400, 9_000, MAX_UDP_PAYLOAD_BYTES - 28))
        value = rng.randbytes(size)
        return kind, message(BINDING_REQUEST, tid, attribute(rng.choice(_ATTRIBUTE_TYPES), value))
    if kind == "binding-many-unknown":
        # Distinct unknown comprehension-required types, each with an empty value.
        types = rng.sample(range(0x0030, 0x7FFF), rng.randint(5, 130))
        return kind, message(BINDING_REQUEST, tid, b"".join(attribute(t, b"") for t in types))
    if kind == "truncated":
        whole = message(BINDING_REQUEST, tid, _attributes(rng, rng.randint(1, 4)))
        return kind, whole[: rng.randrange(len(whole))]
    if kind == "wrong-length":
        attributes = _attributes(rng, rng.randint(0, 3))
        length = len(attributes) + rng.choice((-4, -1, 1, 2, 3, 4, 400, 65_535 - len(attributes)))
        return kind, header(BINDING_REQUEST, max(0, min(length, 65_535)), tid) + attributes
    if kind == "wrong-cookie":
        cookie = bytearray(COOKIE)
        cookie[rng.randrange(4)] ^= 1 << rng.randrange(8)
        return kind, message(BINDING_REQUEST, tid, _attributes(rng, rng.randint(0, 2)), cookie)
    if kind == "other-type":
        return kind, message(rng.choice(_OTHER_TYPES), tid, _attributes(rng, rng.randint(0, 2)))
    if kind == "stun-then-sip":
        padded = sip + b"\x00" * (-len(sip) % 4)
        length = rng.choice((len(padded), len(sip), 0))
        return kind, header(BINDING_REQUEST, min(length, 65_535), tid) + padded
    if kind == "sip-after-zero-bytes":
        return kind, bytes(rng.choice((0, 1)) for _ in range(rng.randint(1, 8))) + sip
    # "flipped": a valid request with a few bytes changed anywhere, the header too.
    data = bytearray(message(BINDING_REQUEST, tid, _attributes(rng, rng.randint(0, 3))))
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return kind, bytes(data)


def looks_like_stun(data: bytes) -> bool:
    """RFC 5389 §6: two zero bits, then the cookie in bytes 4 to 8."""
    return len(data) >= HEADER_BYTES and data[0] < 0x02 and data[4:8] == COOKIE


@dataclass(frozen=True, slots=True)
class SentStun:
    """What the verdict needs of a sent datagram."""

    binding_request: bool  # a Binding request by its header (type, cookie, length field)
    size: int


def sent(data: bytes) -> SentStun:
    binding = looks_like_stun(data) and struct.unpack_from("!H", data)[0] == BINDING_REQUEST
    return SentStun(binding, len(data))


def max_error_bytes(request_bytes: int) -> int:
    """The largest 420 that is no amplification: the request's size, or what a success
    may take. RFC 5389 §7.3.1 has a 420 list every unknown comprehension-required
    attribute (2 bytes each in UNKNOWN-ATTRIBUTES, 4 in the request)."""
    return max(MAX_SUCCESS_BYTES, request_bytes)


def judge_answer(request: SentStun | None, answer: bytes, host: str, port: int) -> str | None:
    """What is wrong with ``answer`` to ``request`` sent from ``host``:``port`` (None when
    the request is unknown: no such transaction was sent), or None when it is right."""
    if request is None:
        return f"an answer for a transaction never sent: {answer[:24].hex()}"
    if not request.binding_request:
        return f"an answer to a STUN message that is no Binding request: {answer[:24].hex()}"
    if not looks_like_stun(answer):
        return f"an answer that is not STUN: {answer[:24].hex()}"
    kind, length = struct.unpack_from("!HH", answer)
    if HEADER_BYTES + length != len(answer):
        return f"an answer whose length field says {length} for {len(answer)} bytes"
    if kind == BINDING_SUCCESS:
        if len(answer) > MAX_SUCCESS_BYTES:
            return f"a Binding success of {len(answer)} bytes (at most {MAX_SUCCESS_BYTES})"
        mapped = xor_mapped_address(answer)
        if mapped != (ipaddress.ip_address(host), port):
            return f"XOR-MAPPED-ADDRESS says {mapped}, the request came from {host}:{port}"
        return None
    if kind == BINDING_ERROR:
        if len(answer) > max_error_bytes(request.size):
            return f"a Binding error of {len(answer)} bytes for a request of {request.size}"
        if _attributes_of(answer).get(ERROR_CODE, b"")[2:4] != bytes((4, 20)):
            return "a Binding error that is no 420"
        return None
    return f"an answer of type {kind:#06x}"


def _attributes_of(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = HEADER_BYTES
    while offset + 4 <= len(data):
        kind, length = struct.unpack_from("!HH", data, offset)
        found.setdefault(kind, data[offset + 4 : offset + 4 + length])
        offset += 4 + length + (-length % 4)
    return found


def xor_mapped_address(
    answer: bytes,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """RFC 5389 §15.2, read back: X-Port XOR the cookie's top 16 bits, X-Address XOR the
    cookie (IPv4) or the cookie and the transaction ID (IPv6)."""
    value = _attributes_of(answer).get(XOR_MAPPED_ADDRESS)
    if value is None or len(value) not in (8, 20):
        return None
    family, xport = struct.unpack_from("!xBH", value)
    mask = COOKIE + answer[8:20]
    address = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
    if (family, len(address)) not in ((1, 4), (2, 16)):
        return None
    return ipaddress.ip_address(address), xport ^ 0x2112


class StunLedger:
    """Transaction ID -> (source, what was sent), bounded; the live verdict on answers."""

    def __init__(self) -> None:
        self._sent: dict[bytes, tuple[str, SentStun]] = {}
        self.kinds: Counter[str] = Counter()  # datagrams sent, by kind
        self.answers: Counter[str] = Counter()  # "success", "420", "judged wrong"
        self.not_remembered = 0  # sent past MAX_LEDGER_ENTRIES: answers go unjudged
        self.wrong: list[str] = []

    def record(self, kind: str, source: str, data: bytes) -> None:
        self.kinds[kind] += 1
        if len(data) < HEADER_BYTES:
            return  # nothing edgeport may answer
        if len(self._sent) >= MAX_LEDGER_ENTRIES:
            self.not_remembered += 1
            return
        self._sent[data[8:20]] = (source, sent(data))

    def answer(self, data: bytes, host: str, port: int, *, keep: int) -> None:
        """Judge a STUN answer received on the socket bound to ``host``:``port``."""
        entry = self._sent.get(data[8:20])
        problem: str | None
        if entry is not None and entry[0] != host:
            problem = f"an answer to a request from {entry[0]} came to {host}"
        else:
            problem = judge_answer(entry[1] if entry else None, data, host, port)
        if problem is None:
            kind = struct.unpack_from("!H", data)[0]
            self.answers["success" if kind == BINDING_SUCCESS else "420"] += 1
            return
        if entry is None and self.not_remembered:
            self.answers["unjudged"] += 1
            return
        self.answers["judged wrong"] += 1
        if len(self.wrong) < keep:
            self.wrong.append(problem)
