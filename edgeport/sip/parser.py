"""Bytes to a Request or Response (RFC 3261 §7, §7.3.1, §7.4.1, §7.5, §8.1.1, §18.3).

``parse_message`` takes one complete message (a datagram, or a frame the
stream framer cut by Content-Length) and returns a message whose header
lines are split and kept raw. The headers every message must carry (top
Via, From, To, Call-ID, CSeq, and Max-Forwards when present) are parsed
and checked here, and their typed views cached, so a message that comes out
is fit to route; every other structured header (Contact, Route...) is
parsed on first access. Everything wrong becomes a SipParseError with a
status hint and, when the start line and headers could be read, the
partial message so a proxy can still answer ``400``. A partial request
whose Request-URI could not be parsed carries it as ``OpaqueUri("", text)``.
"""

from __future__ import annotations

from itertools import islice
from typing import Final

from edgeport.sip.errors import MAX_MESSAGE_BYTES, SipParseError
from edgeport.sip.headers import (
    CANONICAL_NAMES,
    COMPACT_KEYS,
    TOKEN_CHARS,
    header_key,
    parse_call_id,
    parse_cseq,
    parse_int_value,
    parse_name_addr,
    parse_via,
    split_header_values,
)
from edgeport.sip.message import Headers, Request, Response
from edgeport.sip.uri import OpaqueUri, Uri, parse_uri

__all__ = ["parse_message"]

_SIP_VERSION: Final = "SIP/2.0"
_DIGITS: Final = "0123456789"
# RFC 3261 §8.1.1: "A valid SIP request formulated by a UAC MUST, at a minimum,
# contain the following header fields: To, From, CSeq, Call-ID, Max-Forwards,
# and Via". Max-Forwards is left out: a proxy adds it when absent (§16.6 step 3).
_MANDATORY: Final = (
    ("via", "Via"),
    ("from", "From"),
    ("to", "To"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
)


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete SIP message; raise SipParseError when it is not one.

    The body is Content-Length bytes long. RFC 3261 §18.3: "If there are
    additional bytes in the transport packet beyond the end of the body, they
    MUST be discarded. If the transport packet ends before the end of the
    message body, this is considered an error." Without Content-Length the
    body is the rest of the data.
    """
    # Routr refuses a SIP message over 1 MiB; RFC 3261 §21.5.14 names the code.
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("Message Too Large", 513)
    start = 0
    size = len(data)
    # RFC 3261 §7.5: "Implementations processing SIP messages over
    # stream-oriented transports MUST ignore any CRLF appearing before the
    # start-line".
    while start < size and data[start] in b"\r\n":
        start += 1
    if start == size:
        raise SipParseError("Empty message")
    head_end = data.find(b"\r\n\r\n", start)
    body_start = head_end + 4
    lf_end = data.find(b"\n\n", start, None if head_end < 0 else head_end)
    if lf_end >= 0:  # a blank line written with bare LF, tolerated (RFC 3261 §7 says CRLF)
        head_end, body_start = lf_end, lf_end + 2
    if head_end < 0:
        raise SipParseError("Missing empty line after headers")
    try:
        head = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("Invalid UTF-8 in headers") from None
    if "\x00" in head:
        raise SipParseError("NUL byte in message")
    lines = _split_lines(head)
    items, index, header_error = _parse_header_lines(lines)
    headers = Headers.from_keyed(items, index)
    message, version_error = _parse_start_line(lines[0], headers)
    if version_error is not None:
        raise SipParseError(version_error, 505, message)
    if header_error is not None:
        raise SipParseError(header_error, 400, message)
    if (
        isinstance(message, Request)
        and isinstance(message.uri, OpaqueUri)
        and not message.uri.scheme
    ):
        raise SipParseError("Invalid Request-URI", 400, message)

    body = data[body_start:]
    length: int | None = None
    lengths = index.get("content-length")
    if lengths is not None:
        try:
            length = parse_int_value(lengths[0], "Content-Length")
            for value in lengths[1:]:
                if parse_int_value(value, "Content-Length") != length:
                    raise SipParseError("Conflicting Content-Length")
        except SipParseError as exc:
            raise SipParseError(exc.reason, 400, message) from None
        if length > len(body):  # a stream framer never hands over a short body
            raise SipParseError("Content-Length larger than body", 400, message)
        if length < len(body):
            body = body[:length]
    message.body = body
    try:
        views = _check_mandatory(message, index)
    except SipParseError as exc:
        raise SipParseError(exc.reason, exc.status_code, message) from None
    views["content-length"] = length
    message._prime_cache(views)
    return message


def _split_lines(head: str) -> list[str]:
    lines = head.split("\r\n")
    # Every line end a CRLF: no CR or LF is left in the lines (joined, a
    # search for one character is far quicker than counting it in the head).
    unbroken = "".join(lines)
    if "\n" not in unbroken and "\r" not in unbroken:
        return lines
    # Bare LF line ends are tolerated; a bare CR is not a line end anywhere.
    lines = [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
    for line in lines:
        if "\r" in line:
            raise SipParseError("Bare CR in message")
    return lines


def _parse_start_line(line: str, headers: Headers) -> tuple[Request | Response, str | None]:
    """The start line as a bodiless Request or Response, and a 505 reason if any."""
    if line[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
        parts = line.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError("Malformed Status-Line")
        version, code = parts[0], parts[1]
        reason = parts[2] if len(parts) == 3 else ""
        if len(code) != 3 or code.strip(_DIGITS) or not 100 <= int(code) <= 699:
            raise SipParseError("Invalid Status-Code")
        return Response(int(code), reason, headers), _check_version(version)
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise SipParseError("Malformed Request-Line")
    method, uri_text, version = parts
    if not method or method.strip(TOKEN_CHARS):
        raise SipParseError("Invalid method")
    version_error = _check_version(version)
    uri: Uri
    try:
        uri = parse_uri(uri_text)
    except SipParseError:
        uri = OpaqueUri("", uri_text)  # kept for the partial message; refused later
    return Request(method, uri, headers), version_error


def _check_version(version: str) -> str | None:
    # SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; "SIP" is case-insensitive.
    if version.upper() == _SIP_VERSION:
        return None
    major, dot, minor = version[4:].partition(".")
    if (
        version[:4].upper() == "SIP/"
        and dot
        and major
        and minor
        and not major.strip(_DIGITS)
        and not minor.strip(_DIGITS)
    ):
        # RFC 3261 §21.5.6: 505 Version Not Supported.
        return "Version Not Supported"
    raise SipParseError("Invalid SIP version")


# Header name as written -> lookup key, for names already seen valid. Seeded
# with the usual spellings; unknown names join it until the bound is reached.
def _seed_key_cache() -> dict[str, str]:
    cache = dict(COMPACT_KEYS)
    for key, name in CANONICAL_NAMES.items():
        for spelling in (name, key, name.title(), name.upper()):
            cache[spelling] = key
    return cache


_KEY_CACHE: Final = _seed_key_cache()
_KEY_CACHE_MAX: Final = 2048  # entries; past it an unknown name is resolved each time

# A whole header line as received -> its (name as written, lookup key, value).
# Most lines come back message after message (a client's Contact, Allow and
# User-Agent; a dialog's From, To and route set), so a line seen before costs
# one lookup instead of a split, a key lookup and a strip; the same tuple is
# handed out each time (it is immutable), which also makes the codec's own
# per-line caches compare by identity. The lines that are new in every
# message (Via, with its branch, and Call-ID) are not kept, nor lines over
# _LINE_TEXT_MAX characters, so the table stays small whatever peers send.
_LINES: Final[dict[str, tuple[str, str, str]]] = {}
_LINES_MAX: Final = 2048  # entries; when full it is emptied and fills again
_LINE_TEXT_MAX: Final = 256  # characters of a header line
_UNKEPT_LINE_KEYS: Final = frozenset({"via", "call-id"})


def _parse_header_lines(
    lines: list[str],
) -> tuple[list[tuple[str, str, str]], dict[str, list[str]], str | None]:
    """Header lines after the start line, unfolded; their key -> values index;
    the first problem, if any.

    A bad line is skipped so the partial message keeps the others.
    """
    items: list[tuple[str, str, str]] = []
    index: dict[str, list[str]] = {}
    error: str | None = None
    cache = _KEY_CACHE
    known = _LINES
    for line in islice(lines, 1, None):  # after the start line
        seen = known.get(line)
        if seen is not None:
            items.append(seen)
            values = index.get(seen[1])
            if values is None:
                index[seen[1]] = [seen[2]]
            else:
                values.append(seen[2])
            continue
        if not line:
            error = error or "Malformed header line"
            continue
        if line[0] in " \t":
            # RFC 3261 §7.3.1: a value may be folded onto lines starting with SP
            # or HTAB; the fold is equivalent to a single SP.
            if not items:
                error = error or "Continuation line before any header"
                continue
            folded = line.strip(" \t")
            if folded:
                last_name, last_key, last_value = items[-1]
                last_value = f"{last_value} {folded}" if last_value else folded
                items[-1] = (last_name, last_key, last_value)
                index[last_key][-1] = last_value
            continue
        # HCOLON = *( SP / HTAB ) ":" SWS
        name, colon, value = line.partition(":")
        cached_key = cache.get(name)
        if cached_key is None:
            if name and name[-1] in " \t":
                name = name.rstrip(" \t")
            if not colon or not name or name.strip(TOKEN_CHARS):
                error = error or "Malformed header line"
                continue
            key = header_key(name)
            if len(cache) < _KEY_CACHE_MAX:
                cache[name] = key
        elif not colon:
            error = error or "Malformed header line"
            continue
        else:
            key = cached_key
        value = value.strip(" \t")
        item = (name, key, value)
        items.append(item)
        if len(line) <= _LINE_TEXT_MAX and key not in _UNKEPT_LINE_KEYS:
            if len(known) >= _LINES_MAX:
                known.clear()
            known[line] = item
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return items, index, error


def _check_mandatory(message: Request | Response, index: dict[str, list[str]]) -> dict[str, object]:
    """Check and parse the headers every message must carry; return the typed views."""
    for key, name in _MANDATORY:
        values = index.get(key)
        if values is None:
            raise SipParseError(f"Missing {name}")
        # RFC 3261 §7.3.1: only a header whose value is a comma-separated list
        # may appear on several lines; From, To, Call-ID and CSeq are single.
        if len(values) > 1 and key != "via":
            raise SipParseError(f"Multiple {name} headers")
    cseq = parse_cseq(index["cseq"][0])
    if isinstance(message, Request) and cseq.method != message.method:
        # RFC 3261 §8.1.1.5: "The method MUST match that of the request."
        raise SipParseError("CSeq method does not match")
    via_lines = index["via"]
    vias = split_header_values(via_lines[0])
    if not vias:
        raise SipParseError("Missing Via")
    top_via = parse_via(vias[0])
    views: dict[str, object] = {
        "cseq": cseq,
        "top_via": top_via,
        "from": parse_name_addr(index["from"][0]),
        "to": parse_name_addr(index["to"][0]),
        "call_id": parse_call_id(index["call-id"][0]),
    }
    if len(vias) == 1 and len(via_lines) == 1:
        views["via"] = [top_via]  # the whole Via list: one line holding one value
    max_forwards = index.get("max-forwards")
    # Max-Forwards above 255 is refused, as the RFC 4475 §3.1.2.4 torture case does.
    views["max-forwards"] = (
        None if max_forwards is None else parse_int_value(max_forwards[0], "Max-Forwards", 255)
    )
    return views
