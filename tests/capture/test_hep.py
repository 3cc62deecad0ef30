"""The HEP v3 encoder, checked chunk by chunk without sockets."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.capture.hep import (
    CHUNK_AUTH_KEY,
    CHUNK_CAPTURE_ID,
    CHUNK_CORRELATION_ID,
    CHUNK_DST_PORT,
    CHUNK_IP_FAMILY,
    CHUNK_IP_PROTOCOL,
    CHUNK_IPV4_DST,
    CHUNK_IPV4_SRC,
    CHUNK_IPV6_DST,
    CHUNK_IPV6_SRC,
    CHUNK_PAYLOAD,
    CHUNK_PAYLOAD_TYPE,
    CHUNK_SRC_PORT,
    CHUNK_TIME_MICROSECONDS,
    CHUNK_TIME_SECONDS,
    Capture,
    HepError,
    decode_chunks,
    encode,
    find_call_id,
)
from edgeport.sip.transport import Transport

OPTIONS = (
    b"OPTIONS sip:edge.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:edge.example.com>\r\n"
    b"Call-ID: opt-1@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def capture(
    payload: bytes = OPTIONS,
    transport: Transport = Transport.UDP,
    src: tuple[str, int] = ("192.0.2.10", 5070),
    dst: tuple[str, int] = ("198.51.100.1", 5060),
    timestamp: float = 1_700_000_000.25,
) -> Capture:
    return Capture(payload, transport, src[0], src[1], dst[0], dst[1], timestamp)


def u16(value: bytes) -> int:
    return int(struct.unpack("!H", value)[0])


def u32(value: bytes) -> int:
    return int(struct.unpack("!I", value)[0])


def test_every_chunk_of_a_udp_ipv4_message() -> None:
    packet = encode(capture(), agent_id=2001, password="s3cret", correlation_id="opt-1@192.0.2.10")
    assert packet[:4] == b"HEP3"
    assert u16(packet[4:6]) == len(packet)
    chunks = decode_chunks(packet)
    assert chunks[(0, CHUNK_IP_FAMILY)] == b"\x02"
    assert chunks[(0, CHUNK_IP_PROTOCOL)] == b"\x11"  # 17: UDP
    assert chunks[(0, CHUNK_IPV4_SRC)] == bytes([192, 0, 2, 10])
    assert chunks[(0, CHUNK_IPV4_DST)] == bytes([198, 51, 100, 1])
    assert u16(chunks[(0, CHUNK_SRC_PORT)]) == 5070
    assert u16(chunks[(0, CHUNK_DST_PORT)]) == 5060
    assert u32(chunks[(0, CHUNK_TIME_SECONDS)]) == 1_700_000_000
    assert u32(chunks[(0, CHUNK_TIME_MICROSECONDS)]) == 250_000
    assert chunks[(0, CHUNK_PAYLOAD_TYPE)] == b"\x01"  # SIP
    assert u32(chunks[(0, CHUNK_CAPTURE_ID)]) == 2001
    assert chunks[(0, CHUNK_AUTH_KEY)] == b"s3cret"
    assert chunks[(0, CHUNK_CORRELATION_ID)] == b"opt-1@192.0.2.10"
    assert chunks[(0, CHUNK_PAYLOAD)] == OPTIONS


def test_no_auth_key_or_correlation_chunk_when_not_given() -> None:
    chunks = decode_chunks(encode(capture(), agent_id=1))
    assert (0, CHUNK_AUTH_KEY) not in chunks
    assert (0, CHUNK_CORRELATION_ID) not in chunks


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [
        (Transport.UDP, 17),
        (Transport.TCP, 6),
        (Transport.TLS, 6),
        (Transport.WS, 6),
        (Transport.WSS, 6),
    ],
)
def test_ip_protocol_by_transport(transport: Transport, protocol: int) -> None:
    chunks = decode_chunks(encode(capture(transport=transport), agent_id=1))
    assert chunks[(0, CHUNK_IP_PROTOCOL)] == bytes([protocol])


def test_ipv6_addresses_use_the_ipv6_chunks() -> None:
    packet = encode(capture(src=("2001:db8::10", 5070), dst=("2001:db8::1", 5060)), agent_id=1)
    chunks = decode_chunks(packet)
    assert chunks[(0, CHUNK_IP_FAMILY)] == b"\x0a"
    assert chunks[(0, CHUNK_IPV6_SRC)] == bytes.fromhex("20010db8000000000000000000000010")
    assert chunks[(0, CHUNK_IPV6_DST)] == bytes.fromhex("20010db8000000000000000000000001")
    assert (0, CHUNK_IPV4_SRC) not in chunks


def test_an_ipv4_mapped_peer_on_an_ipv4_listener_is_reported_as_ipv4() -> None:
    chunks = decode_chunks(
        encode(capture(src=("::ffff:192.0.2.10", 5070), dst=("198.51.100.1", 5060)), agent_id=1)
    )
    assert chunks[(0, CHUNK_IPV4_SRC)] == bytes([192, 0, 2, 10])


def test_mixed_families_are_refused() -> None:
    with pytest.raises(HepError, match="different families"):
        encode(capture(src=("2001:db8::10", 5070)), agent_id=1)


def test_a_host_name_is_refused() -> None:
    with pytest.raises(HepError, match="not an IP address"):
        encode(capture(dst=("sip.example.com", 5060)), agent_id=1)


def test_microseconds_never_reach_a_full_second() -> None:
    chunks = decode_chunks(encode(capture(timestamp=1000.9999996), agent_id=1))
    assert u32(chunks[(0, CHUNK_TIME_SECONDS)]) == 1000
    assert u32(chunks[(0, CHUNK_TIME_MICROSECONDS)]) == 999_999


def test_a_payload_too_large_for_the_length_field_is_refused() -> None:
    with pytest.raises(HepError, match="exceeds"):
        encode(capture(payload=b"x" * 65_500), agent_id=1)


def _largest_payload(**options: Any) -> int:
    """What is left of the 65,535 bytes once every other chunk of this packet is in."""
    overhead = len(encode(capture(payload=b""), agent_id=2001, **options))
    return 0xFFFF - overhead


@pytest.mark.parametrize(
    "options",
    [{}, {"password": "s3cret", "correlation_id": "big-1@192.0.2.10"}],
    ids=["bare", "password and correlation id"],
)
def test_a_payload_that_fills_the_packet_exactly_is_encoded(options: dict[str, str]) -> None:
    size = _largest_payload(**options)
    assert 65_000 < size < 65_529
    payload = OPTIONS + b"x" * (size - len(OPTIONS))
    packet = encode(capture(payload=payload), agent_id=2001, **options)
    assert len(packet) == 0xFFFF
    assert u16(packet[4:6]) == 0xFFFF
    assert decode_chunks(packet)[(0, CHUNK_PAYLOAD)] == payload


def test_the_largest_ipv4_payload_is_what_the_chunks_leave() -> None:
    # 6 (HEP3 + length) + family 7 + protocol 7 + two IPv4 addresses 10 + 10
    # + two ports 8 + 8 + seconds 10 + microseconds 10 + payload type 7
    # + agent id 10 + the payload chunk's own header 6 = 99 bytes of overhead.
    assert _largest_payload() == 0xFFFF - 99 == 65_436


@pytest.mark.parametrize(
    "size",
    [65_437, 65_529, 65_530, 70_000, 1024 * 1024],
    ids=["one byte over", "65,529 bytes", "65,530 bytes", "70 KB", "1 MiB"],
)
def test_oversized_stream_message_is_refused_with_hep_error_only(size: int) -> None:
    # From 65,530 bytes on, the payload's chunk length no longer fits 16 bits:
    # packing it raised struct.error, which nothing caught.
    with pytest.raises(HepError, match="exceeds the HEP v3 limit"):
        encode(capture(payload=b"x" * size), agent_id=2001)


def test_an_oversized_password_or_correlation_id_is_refused_with_hep_error() -> None:
    with pytest.raises(HepError, match="exceeds"):
        encode(capture(), agent_id=1, password="p" * 70_000)
    with pytest.raises(HepError, match="exceeds"):
        encode(capture(), agent_id=1, correlation_id="c" * 70_000)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"src": ("192.0.2.10", 70_000)}, "source port"),
        ({"dst": ("198.51.100.1", -1)}, "destination port"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"timestamp": float("inf")}, "timestamp"),
        ({"timestamp": -0.5}, "timestamp"),
        ({"src": ("192.0.2.10\x00", 5070)}, "not an IP address"),
    ],
)
def test_values_out_of_range_are_refused_with_hep_error(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(HepError, match=reason):
        encode(capture(**change), agent_id=1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload_size=st.integers(min_value=0, max_value=200_000),
    transport=st.sampled_from(list(Transport)),
    src=st.one_of(st.ip_addresses().map(str), st.text(max_size=50)),
    dst=st.one_of(st.ip_addresses().map(str), st.text(max_size=50)),
    src_port=st.integers(min_value=-(2**20), max_value=2**20),
    dst_port=st.integers(min_value=-(2**20), max_value=2**20),
    timestamp=st.floats(allow_nan=True, allow_infinity=True),
    agent_id=st.integers(min_value=-(2**40), max_value=2**40),
    password=st.one_of(st.none(), st.text(max_size=70)),
    correlation_id=st.one_of(st.none(), st.text(max_size=300)),
)
def test_encode_raises_nothing_but_hep_error(
    payload_size: int,
    transport: Transport,
    src: str,
    dst: str,
    src_port: int,
    dst_port: int,
    timestamp: float,
    agent_id: int,
    password: str | None,
    correlation_id: str | None,
) -> None:
    item = Capture(b"x" * payload_size, transport, src, src_port, dst, dst_port, timestamp)
    try:
        packet = encode(item, agent_id=agent_id, password=password, correlation_id=correlation_id)
    except HepError:
        return
    assert len(packet) <= 0xFFFF
    assert decode_chunks(packet)[(0, CHUNK_PAYLOAD)] == item.payload


def test_decoder_rejects_truncated_and_foreign_packets() -> None:
    packet = encode(capture(), agent_id=1)
    with pytest.raises(HepError, match="length field"):
        decode_chunks(packet[:-1])
    with pytest.raises(HepError, match="not a HEP v3"):
        decode_chunks(b"HEP2" + packet[4:])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (OPTIONS, "opt-1@192.0.2.10"),
        (b"SIP/2.0 200 OK\r\ni: compact-7\r\nCSeq: 1 BYE\r\n\r\n", "compact-7"),
        (b"BYE sip:a@b SIP/2.0\r\ncall-id:   spaced  \r\n\r\n", "spaced"),
        (b"MESSAGE sip:a@b SIP/2.0\r\nCSeq: 1 MESSAGE\r\n\r\nCall-ID: in-the-body\r\n", None),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", None),
    ],
)
def test_call_id_for_correlation(message: bytes, expected: str | None) -> None:
    assert find_call_id(message) == expected
