"""How large a live input is: size classes where the limits sit, and resizing to a size.

Most inputs keep the size the mutations gave them. The rest are resized into a
class: nothing at all, a few bytes, around 65,529 bytes (the largest payload one
HEP v3 chunk carries: its 16-bit length counts its own 6-byte header) and 65,535
(any 16-bit length), between that and 1 MiB, and around 1 MiB (the largest SIP
message edgeport takes, contract §6). A datagram cannot reach the HEP limit:
the largest UDP payload over IPv4 is 65,507 bytes, so datagrams get a class
around that instead.

A message grows one of three ways: its body (Content-Length made to match, so a
well-formed message stays well-formed and is framed whole on a stream), extra
header fields (the header section then meets the 64 KiB framing limit), or
bytes appended after it.
"""

from __future__ import annotations

import enum
import random
import re
from typing import Final

from edgeport.sip.errors import MAX_MESSAGE_BYTES

MAX_UDP_PAYLOAD_BYTES: Final = 65_507  # 65,535 - 20 (IPv4 header) - 8 (UDP header)
HEP_CHUNK_PAYLOAD_BYTES: Final = 65_529  # 65,535 - 6 (the chunk's own header)
NEAR_BYTES: Final = 256  # how far around a limit a "near" size may fall
PAD_LINE_BYTES: Final = 8_000  # one X-Pad header field when growing the header section

_CONTENT_LENGTH_LINE: Final = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[^\r\n]*(?:\r\n|$)")
_FILLERS: Final = (b"a", b"0123456789", b"v=0\r\n", b"\xc3\xa9", b"\xff\xfe", b" \t")


class SizeClass(enum.Enum):
    NATURAL = "as mutated"
    EMPTY = "0 bytes"
    TINY = "1-16 bytes"
    NEAR_HEP = "65,529 +/- 256"
    LARGE = "64 KiB - 1 MiB"
    NEAR_LIMIT = "1 MiB +/- 256"
    NEAR_UDP_MAX = "65,251-65,507"


STREAM_WEIGHTS: Final = {
    SizeClass.NATURAL: 76,
    SizeClass.EMPTY: 2,
    SizeClass.TINY: 5,
    SizeClass.NEAR_HEP: 9,
    SizeClass.LARGE: 4,
    SizeClass.NEAR_LIMIT: 4,
}
DATAGRAM_WEIGHTS: Final = {
    SizeClass.NATURAL: 80,
    SizeClass.EMPTY: 3,
    SizeClass.TINY: 5,
    SizeClass.NEAR_UDP_MAX: 8,
    SizeClass.LARGE: 4,
}


def pick_class(rng: random.Random, weights: dict[SizeClass, int]) -> SizeClass:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def pick_size(rng: random.Random, size_class: SizeClass, datagram: bool) -> int | None:
    """A size in ``size_class``; None for NATURAL (keep the size as it is)."""
    if size_class is SizeClass.NATURAL:
        return None
    if size_class is SizeClass.EMPTY:
        return 0
    if size_class is SizeClass.TINY:
        return rng.randint(1, 16)
    if size_class is SizeClass.NEAR_HEP:
        return _near(rng, HEP_CHUNK_PAYLOAD_BYTES, (65_529, 65_530, 65_535, 65_536))
    if size_class is SizeClass.NEAR_LIMIT:
        limit = MAX_MESSAGE_BYTES
        return _near(rng, limit, (limit - 1, limit, limit + 1))
    if size_class is SizeClass.NEAR_UDP_MAX:
        top = MAX_UDP_PAYLOAD_BYTES
        if rng.random() < 0.5:
            return rng.choice((top, top - 1))
        return rng.randint(top - NEAR_BYTES, top)
    # LARGE: log-uniform, so that the smaller sizes are as common as the larger.
    top = MAX_UDP_PAYLOAD_BYTES if datagram else MAX_MESSAGE_BYTES - NEAR_BYTES
    bottom = 1_500 if datagram else 66_000
    return int(bottom * (top / bottom) ** rng.random())


def _near(rng: random.Random, centre: int, exact: tuple[int, ...]) -> int:
    if rng.random() < 0.5:
        return rng.choice(exact)
    return rng.randint(centre - NEAR_BYTES, centre + NEAR_BYTES)


def resize(rng: random.Random, data: bytes, size: int) -> bytes:
    """``data`` made exactly ``size`` bytes long: cut, or grown (body, header, tail)."""
    if size <= len(data):
        return data[:size]
    how = rng.choices(("body", "header", "tail"), weights=(6, 2, 2))[0]
    if how == "body" and b"\r\n\r\n" in data:
        grown = _grow_body(rng, data, size)
        if grown is not None:
            return grown
    if how == "header" and b"\r\n" in data:
        return _grow_header(rng, data, size)
    return data + _filler(rng, size - len(data))


def _filler(rng: random.Random, size: int) -> bytes:
    unit = rng.choice(_FILLERS)
    return (unit * (size // len(unit) + 1))[:size]


def _grow_body(rng: random.Random, data: bytes, size: int) -> bytes | None:
    """The header section with one Content-Length that matches a body filling ``size``."""
    head, _, _ = data.partition(b"\r\n\r\n")
    head = _CONTENT_LENGTH_LINE.sub(b"", head + b"\r\n").rstrip(b"\r\n")
    body_bytes = size - len(head) - len(b"\r\nContent-Length: \r\n\r\n")
    for _ in range(3):  # the number's own digits change the room left for the body
        length = body_bytes - len(str(max(body_bytes, 0)))
        if length < 0:
            return None
        grown = head + b"\r\nContent-Length: %d\r\n\r\n" % length + _filler(rng, length)
        if len(grown) == size:
            return grown
        body_bytes += size - len(grown)
    return None


def _grow_header(rng: random.Random, data: bytes, size: int) -> bytes:
    """X-Pad header fields after the start line, ``size`` bytes in all."""
    start, _, rest = data.partition(b"\r\n")
    room = size - len(data)
    lines: list[bytes] = []
    while room > 0:
        prefix = b"X-Pad-%d: " % len(lines)
        value = min(PAD_LINE_BYTES, room - len(prefix) - 2)
        if value < 1:  # too little room for a field of its own: lengthen the last one
            if not lines:
                return data + _filler(rng, room)
            lines[-1] = lines[-1][:-2] + b"y" * room + b"\r\n"
            break
        filler = _filler(rng, value).replace(b"\r", b"r").replace(b"\n", b"n")
        lines.append(prefix + filler + b"\r\n")
        room -= len(lines[-1])
    return start + b"\r\n" + b"".join(lines) + rest
