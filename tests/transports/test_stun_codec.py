"""The STUN Binding codec (RFC 5389), sans-IO: what is STUN, what gets which answer.

The expected XOR-MAPPED-ADDRESS bytes are the ones of RFC 5769's sample
responses (§2.2 IPv4, §2.3 IPv6): the same transaction ID and mapped
address, so the same attribute.
"""

from __future__ import annotations

import pytest

from edgeport.transports.stun import MAX_REQUEST_BYTES, answer, is_stun

COOKIE = bytes.fromhex("2112a442")
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")  # RFC 5769's transaction ID
# A Binding Request without attributes: what RFC 5626 keep-alives send.
BINDING = bytes.fromhex("0001 0000") + COOKIE + TXID
# XOR-MAPPED-ADDRESS of 192.0.2.1:32853 and [2001:db8:1234:5678:11:2233:4455:6677]:32853
# (RFC 5769 §2.2 and §2.3).
MAPPED_V4 = bytes.fromhex("0020 0008 0001 a147 e112a643")
MAPPED_V6 = bytes.fromhex("0020 0014 0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9")
V6 = "2001:db8:1234:5678:11:2233:4455:6677"


def with_attributes(*attributes: bytes, kind: str = "0001") -> bytes:
    body = b"".join(attributes)
    return bytes.fromhex(kind) + len(body).to_bytes(2, "big") + COOKIE + TXID + body


def attribute(kind: int, value: bytes) -> bytes:
    padding = b"\x00" * (-len(value) % 4)
    return kind.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value + padding


def test_a_binding_request_gets_a_success_with_the_source_as_xor_mapped_address() -> None:
    assert answer(BINDING, "192.0.2.1", 32853) == (
        bytes.fromhex("0101 000c") + COOKIE + TXID + MAPPED_V4
    )


def test_an_ipv6_source_is_xored_with_the_cookie_and_the_transaction_id() -> None:
    assert answer(BINDING, V6, 32853) == bytes.fromhex("0101 0018") + COOKIE + TXID + MAPPED_V6


def test_sip_and_crlf_are_not_stun() -> None:
    assert is_stun(BINDING)
    assert not is_stun(b"OPTIONS sip:edge@example.com SIP/2.0\r\nVia: x\r\n\r\n")
    assert not is_stun(b"\r\n\r\n")
    assert not is_stun(BINDING[:19])
    # RFC 3489's STUN, without the magic cookie, is not recognised.
    assert not is_stun(bytes.fromhex("0001 0000") + bytes(16))


def test_optional_attributes_are_read_past() -> None:
    software = attribute(0x8022, b"softphone 1.0")  # SOFTWARE: comprehension-optional
    fingerprint = attribute(0x8028, bytes(4))
    request = with_attributes(software, attribute(0x0006, b"user"), fingerprint)
    assert answer(request, "192.0.2.1", 32853) == (
        bytes.fromhex("0101 000c") + COOKIE + TXID + MAPPED_V4
    )


def test_an_unknown_required_attribute_gets_a_420_listing_it() -> None:
    request = with_attributes(attribute(0x0024, bytes(4)), attribute(0x7001, b""))
    error_code = attribute(0x0009, bytes.fromhex("0000 04 14"))  # class 4, number 20
    unknown = attribute(0x000A, bytes.fromhex("0024 7001"))
    assert answer(request, "192.0.2.1", 32853) == (
        bytes.fromhex("0111 0010") + COOKIE + TXID + error_code + unknown
    )


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(bytes.fromhex("0101 0000") + COOKIE + TXID, id="binding success response"),
        pytest.param(bytes.fromhex("0111 0000") + COOKIE + TXID, id="binding error response"),
        pytest.param(bytes.fromhex("0011 0000") + COOKIE + TXID, id="binding indication"),
        pytest.param(bytes.fromhex("0003 0000") + COOKIE + TXID, id="allocate request"),
        pytest.param(bytes.fromhex("0001 0004") + COOKIE + TXID, id="length beyond the data"),
        pytest.param(BINDING + bytes(4), id="data beyond the length"),
        pytest.param(
            bytes.fromhex("0001 0002") + COOKIE + TXID + bytes(2), id="length not a multiple of 4"
        ),
        pytest.param(
            with_attributes(bytes.fromhex("8022 0010") + bytes(4)), id="attribute past the end"
        ),
        pytest.param(with_attributes(bytes.fromhex("8022")), id="half an attribute header"),
        pytest.param(
            with_attributes(attribute(0x8022, bytes(MAX_REQUEST_BYTES))), id="oversized request"
        ),
    ],
)
def test_no_answer_to_anything_but_a_well_formed_binding_request(message: bytes) -> None:
    assert is_stun(message)
    assert answer(message, "192.0.2.1", 32853) is None


@pytest.mark.parametrize(
    "request_",
    [
        BINDING,
        with_attributes(attribute(0x8022, b"x")),
        with_attributes(attribute(0x0024, b"")),
        with_attributes(*(attribute(0x7000 + n, b"") for n in range(20))),
    ],
)
@pytest.mark.parametrize(("host", "ip_udp_header"), [("192.0.2.1", 28), (V6, 48)])
def test_an_answer_is_never_much_larger_than_its_request(
    request_: bytes, host: str, ip_udp_header: int
) -> None:
    """The port is no amplifier: on the wire, at most 1.4 times what came in."""
    reply = answer(request_, host, 32853)
    assert reply is not None
    assert len(reply) + ip_udp_header <= 1.4 * (len(request_) + ip_udp_header)
