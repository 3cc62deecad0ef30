"""Stream framing: cut a TCP/TLS byte stream into SIP messages, sans-IO.

RFC 3261 §18.3 (Content-Length on streams), §7.5 (CRLF before a start line),
RFC 5626 §4.4.1 (CRLF keepalives). Bytes in, frames out: a frame is one whole
message (header section and body) as bytes, or a :class:`KeepalivePing` the
caller answers with a CRLF "pong". Every buffer is bounded; a stream that
breaks a limit gets a :class:`FramingError` carrying a status hint.

Also here: :func:`error_response`, the minimal stateless response a transport
sends before closing a stream whose message it cannot frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from edgeport.sip.errors import MAX_MESSAGE_BYTES

MAX_HEADER_BYTES: Final = 64 * 1024  # start line + header fields + blank line
MAX_HEADERS: Final = 256  # header field lines (folded lines count once)

_CRLF: Final = b"\r\n"
_PING: Final = b"\r\n\r\n"
_LINE_SPLIT: Final = re.compile(rb"\r\n(?![ \t])")  # unfold LWS (RFC 3261 §7.3.1)
_TOKEN: Final = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")
_TAG_PARAM: Final = re.compile(rb";\s*tag\s*=", re.IGNORECASE)
_CONTENT_LENGTH_NAMES: Final = frozenset({b"content-length", b"l"})
# Header fields copied into a stateless response (RFC 3261 §8.2.6.2), by
# full and compact name.
_COPIED_NAMES: Final = {
    b"via": b"via",
    b"v": b"via",
    b"from": b"from",
    b"f": b"from",
    b"to": b"to",
    b"t": b"to",
    b"call-id": b"call-id",
    b"i": b"call-id",
    b"cseq": b"cseq",
}


@dataclass(frozen=True, slots=True)
class KeepalivePing:
    """A CRLFCRLF "ping" between messages; RFC 5626 §4.4.1 wants a CRLF back."""


KEEPALIVE_PING: Final = KeepalivePing()

Frame = bytes | KeepalivePing


class FramingError(Exception):
    """The stream cannot be framed any further; the connection must close.

    ``status_code`` is the response a request would deserve (513 or 400),
    ``head`` the complete header section when it was read (so a response can
    copy Via, From, To, Call-ID and CSeq), and ``frames`` the frames completed
    by the same ``feed`` call before the error.
    """

    def __init__(
        self,
        reason: str,
        status_code: int,
        *,
        head: bytes | None = None,
        frames: list[Frame] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.head = head
        self.frames: list[Frame] = frames if frames is not None else []


class StreamFramer:
    """Feed stream bytes, get whole SIP messages and keepalive pings back.

    After a :class:`FramingError` the framer is spent: every later ``feed``
    raises the same error (without frames).
    """

    def __init__(
        self,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_header_bytes = min(max_header_bytes, max_message_bytes)
        self.max_headers = max_headers
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for CRLFCRLF
        self._start_line_checked = False
        self._head_end = -1  # end of the current header section, once found
        self._message_end = -1  # end of the current message, once known
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete (0 between messages)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> list[Frame]:
        if self._error is not None:
            raise FramingError(self._error.reason, self._error.status_code, head=self._error.head)
        self._buffer += data
        frames: list[Frame] = []
        try:
            while self._next_frame(frames):
                pass
        except FramingError as exc:
            exc.frames = frames
            self._error = exc
            self._buffer.clear()
            raise
        return frames

    def _next_frame(self, frames: list[Frame]) -> bool:
        """Move one frame from the buffer to ``frames``; False when more data is needed."""
        buffer = self._buffer
        if self._head_end < 0:
            # RFC 3261 §7.5: "Implementations processing SIP messages over
            # stream-oriented transports MUST ignore any CRLF appearing before
            # the start-line".  RFC 5626 §4.4.1: a double CRLF is a ping.
            if buffer.startswith(_CRLF):
                if len(buffer) < 4 and _PING.startswith(buffer):
                    return False  # a lone CRLF or the start of a ping: wait
                if buffer.startswith(_PING):
                    del buffer[:4]
                    frames.append(KEEPALIVE_PING)
                else:
                    del buffer[:2]
                return True
            if not buffer:
                return False
            if not self._find_head():
                return False
        if self._message_end < 0:
            self._message_end = self._head_end + self._content_length()
        if len(buffer) < self._message_end:
            return False
        frames.append(bytes(buffer[: self._message_end]))
        del buffer[: self._message_end]
        self._head_end = self._message_end = -1
        self._scanned = 0
        self._start_line_checked = False
        return True

    def _find_head(self) -> bool:
        buffer = self._buffer
        start = max(0, self._scanned - 3)
        if not self._start_line_checked:
            line_end = buffer.find(_CRLF, max(0, self._scanned - 1), self.max_header_bytes)
            if line_end >= 0:
                _check_start_line(bytes(buffer[:line_end]))
                self._start_line_checked = True
        end = buffer.find(_PING, start, self.max_header_bytes)
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) >= self.max_header_bytes:
                raise FramingError("Header Section Too Large", 400)
            return False
        self._head_end = end + 4
        return True

    def _content_length(self) -> int:
        head = bytes(self._buffer[: self._head_end])
        lines = _LINE_SPLIT.split(head[:-4])
        if len(lines) - 1 > self.max_headers:
            raise FramingError("Too Many Headers", 400, head=head)
        length: int | None = None
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or name.strip().lower() not in _CONTENT_LENGTH_NAMES:
                continue
            text = value.strip()
            if not text.isdigit() or len(text) > 10:
                raise FramingError("Bad Content-Length", 400, head=head)
            if length is not None and length != int(text):
                raise FramingError("Bad Content-Length", 400, head=head)
            length = int(text)
        # RFC 3261 §18.3 and §20.14 make Content-Length mandatory on a
        # stream; a message that lacks it anyway is taken to have no body.
        length = length or 0
        if self._head_end + length > self.max_message_bytes:
            raise FramingError("Message Too Large", 513, head=head)
        return length


def _check_start_line(line: bytes) -> None:
    """Refuse a stream that does not open with a Request-Line or Status-Line (§7.1, §7.2)."""
    parts = line.split(b" ", 2)
    if parts[0][:4].upper() == b"SIP/":
        if len(parts) >= 2 and parts[1].isdigit():
            return
    elif len(parts) == 3 and _TOKEN.fullmatch(parts[0]) and parts[2][:4].upper() == b"SIP/":
        return
    raise FramingError("Not a SIP Start Line", 400)


def error_response(head: bytes, status_code: int, reason: str, *, to_tag: str) -> bytes | None:
    """A stateless response to the request whose header section is ``head``.

    RFC 3261 §8.2.6.2: the response copies Via, From, To, Call-ID and CSeq,
    and "the UAS MUST add a tag to the To header field in the response" when
    the request had none.  Returns None when ``head`` is not a request other
    than ACK (§17.1.1.3: an ACK is never answered) or a copied field is missing.
    """
    lines = _LINE_SPLIT.split(head.removesuffix(_PING))
    method = lines[0].split(b" ", 1)[0]
    if method[:4].upper() == b"SIP/" or method.upper() == b"ACK":
        return None
    copied: list[bytes] = []
    seen: set[bytes] = set()
    for line in lines[1:]:
        name = line.partition(b":")[0].strip().lower()
        canonical = _COPIED_NAMES.get(name)
        if canonical is None:
            continue
        seen.add(canonical)
        if canonical == b"to" and not _TAG_PARAM.search(line):
            line = line.rstrip() + b";tag=" + to_tag.encode("ascii")
        copied.append(line)
    if len(seen) != 5:
        return None
    status_line = b"SIP/2.0 %d %s" % (status_code, reason.encode("ascii"))
    return _CRLF.join([status_line, *copied, b"Content-Length: 0", b"", b""])
