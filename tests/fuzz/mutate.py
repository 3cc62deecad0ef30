"""Seed messages and the mutations applied to them: byte flips, truncation, header
duplication, reordering and deletion, huge values, invalid UTF-8, stray CR/LF, broken
Content-Length, spliced messages. Deterministic for a given ``random.Random``."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Final

from tests.sip.test_torture import (
    COMPACT,
    ESCAPED_URIS,
    MULTI_VALUE,
    UNUSUAL_NAMES,
    WHITESPACE_AND_FOLDING,
)
from tests.support.ua import sip
from tests.test_convert_replies import INVITE, OK_WITH_RECORD_ROUTE, REGISTER

OPTIONS: Final = sip(
    """OPTIONS sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-fz;rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=fz1
To: <sip:bob@127.0.0.1>
Call-ID: fz-options@127.0.0.1
CSeq: 1 OPTIONS
Accept: application/sdp
Content-Length: 0

"""
)

MESSAGE: Final = sip(
    """MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-fzm;rport
Max-Forwards: 70
From: "Alice" <sip:alice@127.0.0.1>;tag=fz2
To: <sip:bob@127.0.0.1>
Call-ID: fz-message@127.0.0.1
CSeq: 7 MESSAGE
Content-Type: text/plain;charset=utf-8
Content-Length: 11

hello world"""
)

SEEDS: Final[tuple[bytes, ...]] = (
    REGISTER.encode(),
    INVITE.encode(),
    OK_WITH_RECORD_ROUTE.encode(),
    WHITESPACE_AND_FOLDING,
    ESCAPED_URIS,
    UNUSUAL_NAMES,
    COMPACT,
    MULTI_VALUE,
    OPTIONS,
    MESSAGE,
)

# A Call-ID line with its folded continuation lines (CRLF or bare LF, then SP/HT).
_CALL_ID: Final = re.compile(rb"(?im)^(?:call-id|i)[ \t]*:((?:[^\r\n]|\r?\n[ \t])*)")
_BRANCH: Final = re.compile(rb"branch=z9hG4bK[^;,\s]*")
_INVALID_UTF8: Final = (b"\xff", b"\xfe\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80")
_STRAY: Final = (b"\r", b"\n", b"\r\n", b"\r\r\n", b"\n\r", b"\x00", b"\t", b" \r\n ")
_LENGTHS: Final = (b"-1", b"0", b"99999999", b"1e3", b"abc", b"", b"4294967296", b"5, 6")


def with_call_id(data: bytes, call_id: str) -> bytes:
    """``data`` with each Call-ID value replaced (so a sent message can be told apart) and
    each Via branch made unique (so it is a new transaction, not a retransmission)."""
    data = _BRANCH.sub(b"branch=z9hG4bK-" + call_id.encode(), data)
    return _CALL_ID.sub(
        lambda m: m.group(0)[: m.start(1) - m.start(0)] + b" " + call_id.encode(), data
    )


def call_id_of(data: bytes) -> bytes | None:
    """The first Call-ID value in the header section (up to the first empty line)."""
    end = data.find(b"\r\n\r\n")
    found = _CALL_ID.search(data if end < 0 else data[:end])
    return b"".join(found.group(1).split()) if found else None


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body if sep else b""


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def duplicate_header(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    if len(lines) > 1:
        index = rng.randrange(1, len(lines))
        lines.insert(rng.randrange(1, len(lines) + 1), lines[index])
    return _join(lines, body)


def reorder_headers(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    headers = lines[1:]
    rng.shuffle(headers)
    return _join(lines[:1] + headers, body)


def delete_header(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    if len(lines) > 1:
        del lines[rng.randrange(1, len(lines))]
    return _join(lines, body)


def huge_value(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    size = rng.choice((300, 4_000, 70_000, 1_100_000))
    filler = rng.choice((b"a", b";x=1", b"<sip:a@b>,", b" ", b"%"))
    value = (filler * (size // len(filler) + 1))[:size]
    if rng.random() < 0.5 and len(lines) > 1:
        index = rng.randrange(1, len(lines))
        lines[index] = lines[index] + value
    else:
        count = rng.choice((1, 50, 300))
        lines[1:1] = [b"X-Big-%d: " % i + value[: size // count] for i in range(count)]
    return _join(lines, body)


def invalid_utf8(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(_INVALID_UTF8) + data[at:]


def stray_line_breaks(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice(_STRAY) + data[at:]
    return data


def break_content_length(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    kept = [line for line in lines if not re.match(rb"(?i)(content-length|l)\s*:", line)]
    choice = rng.random()
    if choice < 0.3:
        kept.append(b"Content-Length: " + rng.choice(_LENGTHS))
    elif choice < 0.6:
        kept.append(b"Content-Length: %d" % max(0, len(body) + rng.randint(-10, 200)))
    elif choice < 0.8:
        kept += [b"Content-Length: %d" % len(body), b"l: %d" % (len(body) + 1)]
    # else: no Content-Length at all
    return _join(kept, body)


def mutate_start_line(rng: random.Random, data: bytes) -> bytes:
    lines, body = _split(data)
    parts = lines[0].split(b" ")
    index = rng.randrange(len(parts))
    parts[index] = rng.choice(
        (b"", b"SIP/3.0", b"sip/2.0", b"INVITE", b"FOO", b"999", b"sip:", b"<>", b"SIP/2.0 ")
    )
    lines[0] = b" ".join(parts)
    return _join(lines, body)


def splice(rng: random.Random, data: bytes) -> bytes:
    other = rng.choice(SEEDS)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


MUTATIONS: Final[tuple[Callable[[random.Random, bytes], bytes], ...]] = (
    flip_bytes,
    truncate,
    duplicate_header,
    reorder_headers,
    delete_header,
    huge_value,
    invalid_utf8,
    stray_line_breaks,
    break_content_length,
    mutate_start_line,
    splice,
)


def generate(rng: random.Random, call_id: str | None = None) -> bytes:
    """One fuzzed message: a seed (with ``call_id`` when given), 0-3 mutations.

    About one in ten is left unmutated, so that well-formed traffic is mixed in.
    """
    data = rng.choice(SEEDS)
    if call_id is not None:
        data = with_call_id(data, call_id)
    rounds = rng.choice((0, 1, 1, 1, 2, 2, 2, 3, 3, 3))
    for _ in range(rounds):
        data = rng.choice(MUTATIONS)(rng, data)
    return data
