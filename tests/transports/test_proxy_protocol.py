"""The PROXY protocol parser, without sockets: literal v1 lines and v2 bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgeport.transports import proxy_protocol
from edgeport.transports.proxy_protocol import (
    MAX_V2_PAYLOAD_BYTES,
    V1_MAX_BYTES,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    build_v1,
    build_v2,
    parse_proxy_header,
)
from tests.sip.test_sans_io_imports import forbidden_imports

SIP = b"OPTIONS sip:edge SIP/2.0\r\n"


def whole_and_byte_by_byte(data: bytes) -> tuple[ProxyHeader, int]:
    """Parse ``data`` whole, and fed one byte more at a time: the same header, and
    "need more" (None) on every shorter prefix."""
    result = parse_proxy_header(data)
    assert result is not None
    _header, used = result
    for n in range(1, used):
        assert parse_proxy_header(data[:n]) is None, n
    assert parse_proxy_header(data[:used]) == result
    return result


# -- version 1 ----------------------------------------------------------------------


def test_v1_tcp4() -> None:
    line = b"PROXY TCP4 203.0.113.9 192.0.2.1 40001 5060\r\n"
    header, used = whole_and_byte_by_byte(line + SIP)
    assert header == ProxyHeader(1, ("203.0.113.9", 40001), ("192.0.2.1", 5060))
    assert used == len(line)


def test_v1_tcp6_is_normalised() -> None:
    line = b"PROXY TCP6 2001:DB8:0:0::9 2001:db8::1 65535 0\r\n"
    header, used = whole_and_byte_by_byte(line)
    assert header == ProxyHeader(1, ("2001:db8::9", 65535), ("2001:db8::1", 0))
    assert used == len(line)


@pytest.mark.parametrize("line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ff:: 1.2.3.4 1 2\r\n"])
def test_v1_unknown_keeps_the_real_peer(line: bytes) -> None:
    header, used = whole_and_byte_by_byte(line + SIP)
    assert header == ProxyHeader(1, None)
    assert used == len(line)


def test_v1_worst_case_length_is_accepted() -> None:
    addr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = f"PROXY TCP6 {addr} {addr} 65535 65535\r\n".encode()
    header, _ = whole_and_byte_by_byte(line)
    assert header.source == (addr, 65535)
    # The spec's worst case: UNKNOWN with every optional field at its longest.
    line = f"PROXY UNKNOWN {addr} {addr} 65535 65535\r\n".encode()
    assert len(line) == V1_MAX_BYTES
    assert whole_and_byte_by_byte(line) == (ProxyHeader(1, None), V1_MAX_BYTES)


def test_v1_longer_than_107_bytes_without_crlf_is_refused() -> None:
    with pytest.raises(ProxyProtocolError, match="longer than 107"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * 93)  # 107 bytes, no CRLF


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 40001\r\n", "fields"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 40001 5060 extra\r\n", "fields"),
        (b"PROXY TCP4  203.0.113.9 192.0.2.1 40001 5060\r\n", "fields"),
        (b"PROXY UDP4 203.0.113.9 192.0.2.1 40001 5060\r\n", "unknown protocol"),
        (b"PROXY TCP4 2001:db8::9 192.0.2.1 40001 5060\r\n", "bad address"),
        (b"PROXY TCP6 203.0.113.9 2001:db8::1 40001 5060\r\n", "bad address"),
        (b"PROXY TCP6 fe80::1%eth0 2001:db8::1 40001 5060\r\n", "bad address"),
        (b"PROXY TCP4 203.0.113.256 192.0.2.1 40001 5060\r\n", "bad address"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 65536 5060\r\n", "bad port"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 04001 5060\r\n", "bad port"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 -1 5060\r\n", "bad port"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 4000\xb9 5060\r\n", "not ASCII"),
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 40001 5060\n", "CRLF"),
        (b"PROXY TCP4 203.0.113.9\r192.0.2.1 40001 5060\r\n", "CRLF"),
    ],
)
def test_v1_malformed(line: bytes, reason: str) -> None:
    with pytest.raises(ProxyProtocolError, match=reason):
        parse_proxy_header(line)


def test_v1_truncated_needs_more() -> None:
    assert parse_proxy_header(b"PROXY TCP4 203.0.113.9 192.0") is None
    assert parse_proxy_header(b"PROXY TCP4 203.0.113.9 192.0.2.1 40001 5060\r") is None


@pytest.mark.parametrize(
    "data",
    [
        SIP,
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"proxy TCP4 203.0.113.9 192.0.2.1 40001 5060\r\n",
        b"\r\n\r\n\x00\r\nQUIX\n" + bytes(4),
    ],
)
def test_no_signature(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError, match="signature"):
        parse_proxy_header(data)


def test_nothing_yet_needs_more() -> None:
    assert parse_proxy_header(b"") is None
    assert parse_proxy_header(b"\r\n\r\n") is None
    assert parse_proxy_header(b"PRO") is None


# -- version 2 ----------------------------------------------------------------------


def v2(command: int, family: int, payload: bytes, *, version: int = 2) -> bytes:
    return (
        V2_SIGNATURE
        + bytes([(version << 4) | command, family])
        + struct.pack("!H", len(payload))
        + payload
    )


def test_v2_ipv4_literal() -> None:
    payload = bytes([203, 0, 113, 9, 192, 0, 2, 1]) + struct.pack("!HH", 40001, 5060)
    data = v2(0x1, 0x11, payload) + SIP
    header, used = whole_and_byte_by_byte(data)
    assert header == ProxyHeader(2, ("203.0.113.9", 40001), ("192.0.2.1", 5060))
    assert used == 16 + 12
    assert data[used:] == SIP


def test_v2_ipv6() -> None:
    data = build_v2(("2001:db8::9", 40002), ("2001:db8::1", 5061))
    assert data[13] == 0x21
    header, used = whole_and_byte_by_byte(data)
    assert header == ProxyHeader(2, ("2001:db8::9", 40002), ("2001:db8::1", 5061))
    assert used == 16 + 36


def test_v2_tlvs_are_skipped() -> None:
    # PP2_TYPE_ALPN "sip" and PP2_TYPE_UNIQUE_ID, after the addresses.
    tlvs = b"\x01\x00\x03sip" + b"\x05\x00\x04abcd"
    data = build_v2(("198.51.100.7", 1234), ("192.0.2.1", 5060), tlvs=tlvs) + SIP
    header, used = whole_and_byte_by_byte(data)
    assert header.source == ("198.51.100.7", 1234)
    assert data[used:] == SIP


def test_v2_local_keeps_the_real_peer() -> None:
    # A balancer's own health check: LOCAL, even with addresses present.
    payload = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!HH", 1, 2)
    header, used = whole_and_byte_by_byte(v2(0x0, 0x11, payload) + SIP)
    assert header == ProxyHeader(2, None)
    assert used == 28
    header, used = whole_and_byte_by_byte(build_v2(None))
    assert (header, used) == (ProxyHeader(2, None), 16)


@pytest.mark.parametrize("family", [0x00, 0x31])  # UNSPEC; AF_UNIX stream
def test_v2_unspec_and_unix_keep_the_real_peer(family: int) -> None:
    header, _ = whole_and_byte_by_byte(v2(0x1, family, bytes(216 if family else 0)))
    assert header == ProxyHeader(2, None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (v2(0x1, 0x11, bytes(12), version=1), "version"),
        (v2(0x2, 0x11, bytes(12)), "command"),
        (v2(0x1, 0x11, bytes(8)), "IPv4 addresses truncated"),
        (v2(0x1, 0x21, bytes(32)), "IPv6 addresses truncated"),
        (v2(0x1, 0x12, bytes(12)), "not a stream"),
        (v2(0x1, 0x41, bytes(12)), "address family"),
    ],
)
def test_v2_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyProtocolError, match=reason):
        parse_proxy_header(data)


def test_v2_oversized_is_refused_before_it_is_read() -> None:
    head = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2_PAYLOAD_BYTES + 1)
    with pytest.raises(ProxyProtocolError, match="too many"):
        parse_proxy_header(head)
    # The largest allowed is read in full.
    at_cap = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", MAX_V2_PAYLOAD_BYTES)
    assert parse_proxy_header(at_cap) is None
    assert parse_proxy_header(at_cap + bytes(MAX_V2_PAYLOAD_BYTES)) == (
        ProxyHeader(2, ("0.0.0.0", 0), ("0.0.0.0", 0)),
        16 + MAX_V2_PAYLOAD_BYTES,
    )


def test_v2_truncated_needs_more() -> None:
    data = build_v2(("198.51.100.7", 1234), ("192.0.2.1", 5060))
    assert parse_proxy_header(data[:15]) is None
    assert parse_proxy_header(data[:-1]) is None


def test_v1_builder_round_trip() -> None:
    line = build_v1(("198.51.100.7", 1234), ("192.0.2.1", 5060))
    assert line == b"PROXY TCP4 198.51.100.7 192.0.2.1 1234 5060\r\n"
    assert parse_proxy_header(line) == (
        ProxyHeader(1, ("198.51.100.7", 1234), ("192.0.2.1", 5060)),
        len(line),
    )


def test_the_parser_is_sans_io() -> None:
    module = Path(proxy_protocol.__file__).read_text()
    assert forbidden_imports(module) == []
