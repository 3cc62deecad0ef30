"""Stream framing: any chunking gives the same frames; keepalives; every limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeport.sip.framing import (
    KEEPALIVE_PING,
    FramingError,
    KeepalivePing,
    StreamFramer,
    error_response,
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 14\r\n"
    b"\r\n"
    b"v=0\r\no=alice\r\n"
)
OK_COMPACT = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"t: <sip:bob@example.com>;tag=a6c85cf\r\n"
    b"f: <sip:alice@example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"abcd"
)
OPTIONS_NO_LENGTH = (
    b"OPTIONS sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKopt\r\n"
    b"To: <sip:example.com>\r\n"
    b"From: <sip:carol@example.com>;tag=77\r\n"
    b"Call-ID: opt-1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"\r\n"
)
STREAM = b"\r\n" + INVITE + b"\r\n\r\n" + OK_COMPACT + OPTIONS_NO_LENGTH + b"\r\n\r\n"
EXPECTED = [INVITE, KEEPALIVE_PING, OK_COMPACT, OPTIONS_NO_LENGTH, KEEPALIVE_PING]


def feed_chunks(chunks: list[bytes], framer: StreamFramer | None = None) -> list[object]:
    framer = framer or StreamFramer()
    frames: list[object] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    return frames


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_whole_stream() -> None:
    assert feed_chunks([STREAM]) == EXPECTED


def test_byte_by_byte() -> None:
    assert feed_chunks([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    assert feed_chunks(split_at(STREAM, cuts)) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_any_chunking_gives_the_same_error(cuts: list[int]) -> None:
    data = INVITE + b"garbage line without version\r\n\r\n"
    framer = StreamFramer()
    frames: list[object] = []
    error: FramingError | None = None
    for chunk in split_at(data, cuts):
        try:
            frames.extend(framer.feed(chunk))
        except FramingError as exc:
            frames.extend(exc.frames)
            error = exc
            break
    assert frames == [INVITE]
    assert error is not None
    assert error.status_code == 400


def test_body_with_crlfcrlf_is_kept_whole() -> None:
    body = b"\r\n\r\nxx\r\n\r\n"
    message = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\n" + body
    assert feed_chunks([message, message]) == [message, message]


def test_lone_crlf_between_messages_is_ignored_and_waits_for_more() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.buffered == 2
    assert framer.feed(OPTIONS_NO_LENGTH) == [OPTIONS_NO_LENGTH]
    assert framer.buffered == 0


def test_double_crlf_is_a_ping() -> None:
    framer = StreamFramer()
    frames = framer.feed(b"\r\n\r\n\r\n\r\n")
    assert frames == [KEEPALIVE_PING, KEEPALIVE_PING]
    assert all(isinstance(f, KeepalivePing) for f in frames)


def test_partial_message_is_held() -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE[:-1]) == []
    assert framer.buffered == len(INVITE) - 1
    assert framer.feed(INVITE[-1:]) == [INVITE]


def test_oversized_content_length_is_513_with_head() -> None:
    framer = StreamFramer(max_message_bytes=1000)
    head = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 2000\r\n\r\n"
    with pytest.raises(FramingError) as caught:
        framer.feed(OPTIONS_NO_LENGTH + head)
    assert caught.value.status_code == 513
    assert caught.value.head == head
    assert caught.value.frames == [OPTIONS_NO_LENGTH]


def test_spent_framer_keeps_failing() -> None:
    framer = StreamFramer(max_message_bytes=100)
    with pytest.raises(FramingError):
        framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\nl: 500\r\n\r\n")
    with pytest.raises(FramingError) as caught:
        framer.feed(OPTIONS_NO_LENGTH)
    assert caught.value.frames == []


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1 2", b"", b"99999999999999999999"], ids=repr)
def test_bad_content_length_is_400(value: bytes) -> None:
    with pytest.raises(FramingError) as caught:
        StreamFramer().feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n")
    assert caught.value.status_code == 400
    assert caught.value.reason == "Bad Content-Length"


def test_conflicting_content_lengths_are_400() -> None:
    with pytest.raises(FramingError) as caught:
        StreamFramer().feed(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab")
    assert caught.value.status_code == 400


def test_header_section_too_large_without_end() -> None:
    framer = StreamFramer(max_header_bytes=1024)
    framer.feed(b"MESSAGE sip:a@b SIP/2.0\r\n")
    for _ in range(31):  # 25 + 31 * 32 bytes stay under 1024
        assert framer.feed(b"X-Filler: " + b"a" * 20 + b"\r\n") == []
    with pytest.raises(FramingError) as caught:
        framer.feed(b"X-Filler: " + b"a" * 20 + b"\r\n")
    assert caught.value.status_code == 400
    assert caught.value.reason == "Header Section Too Large"
    assert caught.value.head is None
    assert framer.buffered == 0


def test_too_many_headers() -> None:
    head = b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X-A: 1\r\n" * 11 + b"\r\n"
    with pytest.raises(FramingError) as caught:
        StreamFramer(max_headers=10).feed(head)
    assert caught.value.reason == "Too Many Headers"
    assert StreamFramer(max_headers=11).feed(head) == [head]


def test_folded_lines_count_once() -> None:
    head = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: a\r\n b\r\n\tc\r\nContent-Length: 0\r\n\r\n"
    assert StreamFramer(max_headers=2).feed(head) == [head]


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n", b"hello\r\n"],
    ids=repr,
)
def test_garbage_start_line_is_refused_at_first_line(garbage: bytes) -> None:
    with pytest.raises(FramingError) as caught:
        StreamFramer().feed(garbage)
    assert caught.value.reason == "Not a SIP Start Line"


def test_binary_garbage_without_newline_is_bounded() -> None:
    framer = StreamFramer(max_header_bytes=4096)
    assert framer.feed(b"\x00\xff" * 1024) == []
    with pytest.raises(FramingError):
        framer.feed(b"\x00\xff" * 1024)


def test_error_response_copies_the_dialog_fields_and_adds_a_to_tag() -> None:
    head = INVITE[: INVITE.index(b"\r\n\r\n") + 4]
    response = error_response(head, 513, "Message Too Large", to_tag="abc123")
    assert response == (
        b"SIP/2.0 513 Message Too Large\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
        b"To: Bob <sip:bob@example.com>;tag=abc123\r\n"
        b"From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_error_response_keeps_an_existing_to_tag_and_compact_names() -> None:
    head = (
        b"BYE sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKb\r\n"
        b"t: <sip:bob@example.com>;tag=xyz\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"i: c1\r\n"
        b"CSeq: 2 BYE\r\n"
        b"\r\n"
    )
    response = error_response(head, 400, "Bad Content-Length", to_tag="new")
    assert response is not None
    assert b"t: <sip:bob@example.com>;tag=xyz\r\n" in response
    assert b"tag=new" not in response
    assert response.startswith(b"SIP/2.0 400 Bad Content-Length\r\n")


@pytest.mark.parametrize(
    "head",
    [
        OK_COMPACT[: OK_COMPACT.index(b"\r\n\r\n") + 4],  # a response is never answered
        b"ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKa\r\nTo: <sip:b@x>\r\n"
        b"From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n",
        b"MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKa\r\n\r\n",
    ],
    ids=["response", "ack", "missing-fields"],
)
def test_error_response_declines(head: bytes) -> None:
    assert error_response(head, 513, "Message Too Large", to_tag="t") is None
