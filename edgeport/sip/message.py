"""The SIP message model: Request, Response, Headers (RFC 3261 §7, §20).

A message keeps its header lines as received (name as written, raw value,
in order) and its body as bytes. Typed views (Via, From, To, CSeq...) are
parsed on first access and cached; any change to the headers drops the
cache. ``to_bytes`` writes canonical header names, recomputes
Content-Length and refuses a line break in any value (no header injection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar, cast

from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.headers import (
    TOKEN_CHARS,
    CSeq,
    DigestChallenge,
    DigestCredentials,
    NameAddr,
    Via,
    canonical_name_for_key,
    header_key,
    parse_call_id,
    parse_cseq,
    parse_digest_challenge,
    parse_digest_credentials,
    parse_int_value,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    split_header_values,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from edgeport.sip.uri import Uri

__all__ = ["REASON_PHRASES", "Headers", "Message", "Request", "Response", "make_response"]

SIP_VERSION: Final = "SIP/2.0"

_T = TypeVar("_T")
_MISSING: Final = object()
# Header name as written -> the start of its line on the wire ("Via: "), for
# names already checked to be tokens (a name's wire form depends on the name alone).
_WIRE_NAMES: Final[dict[str, str]] = {}
_WIRE_NAMES_MAX: Final = 1024  # entries; past it a new name is resolved each time


class Headers:
    """An ordered multi-map of header lines.

    Names compare case-insensitively with compact forms folded (``v`` is
    ``Via``); iteration gives ``(name as received or added, raw value)``.
    ``get_all`` returns one string per line: values are not comma-split here.
    """

    __slots__ = ("_index", "_items", "_version")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (name as given, lookup key, raw value)
        self._items: list[tuple[str, str, str]] = [
            (name, header_key(name), value) for name, value in items
        ]
        self._version = 0
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def _from_keyed(
        cls, items: list[tuple[str, str, str]], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Headers over ``(name as written, lookup key, value)`` lines (and their index)."""
        headers = cls.__new__(cls)
        headers._items = items
        headers._version = 0
        headers._index = index
        return headers

    @classmethod
    def from_keyed(cls, items: list[tuple[str, str, str]]) -> Headers:
        """Headers over ``(name as written, header_key(name), raw value)`` lines.

        The codec's fast path: the caller vouches for each key; the list is
        taken over, not copied.
        """
        return cls._from_keyed(items)

    def _lookup(self) -> dict[str, list[str]]:
        """key -> raw values in order; built on first use, dropped on change."""
        index = self._index
        if index is None:
            index = {}
            for _, key, value in self._items:
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def _changed(self) -> None:
        self._version += 1
        self._index = None

    @property
    def version(self) -> int:
        """Bumped on every change; typed views cached against an older one are stale."""
        return self._version

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, _, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return header_key(name) in self._lookup()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def canonical_items(self) -> Iterator[tuple[str, str]]:
        """``(canonical name, raw value)`` per line; unknown names as received."""
        for name, key, value in self._items:
            yield canonical_name_for_key(key, name), value

    def keyed_items(self) -> list[tuple[str, str, str]]:
        """``(name as written, lookup key, raw value)`` per line, in order (a copy)."""
        return list(self._items)

    def get(self, name: str) -> str | None:
        values = self._lookup().get(header_key(name))
        return None if values is None else values[0]

    def count(self, name: str) -> int:
        """How many lines of that name (compact forms folded) the message holds."""
        values = self._lookup().get(header_key(name))
        return 0 if values is None else len(values)

    def get_all(self, name: str) -> list[str]:
        values = self._lookup().get(header_key(name))
        return [] if values is None else list(values)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, header_key(name), value))
        self._changed()

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first line of that name, or at the top when there is none."""
        key = header_key(name)
        index = 0
        for i, (_, k, _) in enumerate(self._items):
            if k == key:
                index = i
                break
        self._items.insert(index, (name, key, value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one, at the first one's place (else at the end)."""
        key = header_key(name)
        items: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[1] != key:
                items.append(item)
            elif not placed:
                items.append((name, key, value))
                placed = True
        if not placed:
            items.append((name, key, value))
        self._items = items
        self._changed()

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._items = [item for item in self._items if item[1] != key]
        self._changed()

    def replace_first(self, name: str, value: str) -> None:
        """Rewrite the first line of that name in place, keeping its name as written."""
        key = header_key(name)
        for i, (written, k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (written, key, value)
                index = self._index
                self._changed()
                if index is not None:
                    # The first line of that name is the first value of its key:
                    # the index stays right with one entry rewritten.
                    index[key][0] = value
                    self._index = index
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        return Headers._from_keyed(list(self._items))


class Message:
    """What Request and Response share: headers, body and the typed views.

    A typed view (``via``, ``from_``, ``contacts``...) is a parsed copy of
    header values, not a live one: changing the object it returns does not
    change the message. Change the message through ``headers`` or
    ``set_top_via``; that drops every cached view.
    """

    __slots__ = ("_cache", "_cache_headers", "_cache_version", "body", "headers")

    headers: Headers
    body: bytes

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = Headers() if headers is None else headers
        self.body = body
        self._cache: dict[str, object] = {}
        self._cache_headers: Headers | None = None
        self._cache_version = -1

    # --- typed views --------------------------------------------------------

    def _views(self) -> dict[str, object]:
        """The typed-view cache, emptied first when the headers changed since it was filled."""
        headers = self.headers
        if self._cache_headers is not headers or self._cache_version != headers._version:
            self._cache = {}
            self._cache_headers = headers
            self._cache_version = headers._version
        return self._cache

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name}")
        return value

    def _prime_cache(self, views: dict[str, object]) -> None:
        """Seed the typed-view cache with values already parsed (by the parser)."""
        self._cache = views
        self._cache_headers = self.headers
        self._cache_version = self.headers._version

    def drop_views(self) -> None:
        """Forget the parsed views and the header index; they are rebuilt on next use.

        For a message kept only in case it is needed again (the request and
        last response of a transaction lingering for retransmissions): the
        parsed copies are most of what it holds.
        """
        self._cache = {}
        self.headers._index = None

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (comma-split across lines)."""
        views = self._views()
        vias = views.get("via")
        if vias is None:
            top = cast("Via | None", views.get("top_via"))
            parsed: list[Via] = []
            for line in self.headers.get_all("via"):
                for item in split_header_values(line):
                    parsed.append(top if top is not None and not parsed else parse_via(item))
            vias = views["via"] = parsed
        return cast("list[Via]", vias)

    def parsed_vias(self) -> list[Via] | None:
        """The ``via`` list when it is already parsed, else None (nothing is parsed here)."""
        return cast("list[Via] | None", self._views().get("via"))

    @property
    def top_via(self) -> Via:
        """The first Via value; raises SipParseError when there is none."""
        views = self._views()
        top = views.get("top_via")
        if top is None:
            vias = cast("list[Via] | None", views.get("via"))
            if vias:
                top = vias[0]
            else:
                items = split_header_values(self._required("Via"))
                if not items:
                    raise SipParseError("Missing Via")
                top = parse_via(items[0])
            views["top_via"] = top
        return cast("Via", top)

    @property
    def from_(self) -> NameAddr:
        views = self._views()
        value = views.get("from")
        if value is None:
            value = views["from"] = parse_name_addr(self._required("From"))
        return cast("NameAddr", value)

    @property
    def to(self) -> NameAddr:
        views = self._views()
        value = views.get("to")
        if value is None:
            value = views["to"] = parse_name_addr(self._required("To"))
        return cast("NameAddr", value)

    @property
    def call_id(self) -> str:
        views = self._views()
        value = views.get("call_id")
        if value is None:
            value = views["call_id"] = parse_call_id(self._required("Call-ID"))
        return cast("str", value)

    @property
    def cseq(self) -> CSeq:
        views = self._views()
        value = views.get("cseq")
        if value is None:
            value = views["cseq"] = parse_cseq(self._required("CSeq"))
        return cast("CSeq", value)

    def _address_list(self, key: str) -> list[NameAddr]:
        views = self._views()
        value = views.get(key)
        if value is None:
            value = views[key] = [
                addr for line in self.headers.get_all(key) for addr in parse_name_addr_list(line)
            ]
        return cast("list[NameAddr]", value)

    @property
    def contacts(self) -> list[NameAddr]:
        return self._address_list("contact")

    @property
    def routes(self) -> list[NameAddr]:
        return self._address_list("route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._address_list("record-route")

    def _optional_int(self, key: str, what: str, maximum: int) -> int | None:
        views = self._views()
        value = views.get(key, _MISSING)
        if value is _MISSING:
            line = self.headers.get(key)
            value = views[key] = None if line is None else parse_int_value(line, what, maximum)
        return cast("int | None", value)

    @property
    def max_forwards(self) -> int | None:
        # Max-Forwards = 1*DIGIT; above 255 is refused (RFC 4475 §3.1.2.4).
        return self._optional_int("max-forwards", "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        return self._optional_int("expires", "Expires", 2**32 - 1)

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as written (to_bytes recomputes it)."""
        return self._optional_int("content-length", "Content-Length", 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return None if value is None else value.strip()

    def _optional_auth(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        views = self._views()
        value = views.get(key, _MISSING)
        if value is _MISSING:
            line = self.headers.get(key)
            value = views[key] = None if line is None else parse(line)
        return cast("_T | None", value)

    @property
    def authorization(self) -> DigestCredentials | None:
        return self._optional_auth("authorization", parse_digest_credentials)

    @property
    def proxy_authorization(self) -> DigestCredentials | None:
        return self._optional_auth("proxy-authorization", parse_digest_credentials)

    @property
    def www_authenticate(self) -> DigestChallenge | None:
        return self._optional_auth("www-authenticate", parse_digest_challenge)

    @property
    def proxy_authenticate(self) -> DigestChallenge | None:
        return self._optional_auth("proxy-authenticate", parse_digest_challenge)

    def set_top_via(self, via: Via) -> None:
        """Rewrite the first Via value (received/rport stamping, RFC 3261 §18.2.1)."""
        line = self._required("Via")
        items = split_header_values(line)
        items[0] = str(via)
        views = self._views()
        self.headers.replace_first("via", ", ".join(items))
        # Only the Via views went stale: the other headers (From, To, CSeq...)
        # the parser already read stay as they were, instead of being parsed
        # again on next use. The new top Via is a copy, so the caller's object
        # can change without changing the message.
        top = Via(via.transport, via.host, via.port, dict(via.params), via.protocol)
        fresh = self._views()
        for view, value in views.items():
            if view != "via" and view != "top_via":
                fresh[view] = value
        fresh["top_via"] = top
        vias = cast("list[Via] | None", views.get("via"))
        if vias is not None:
            fresh["via"] = [top, *vias[1:]]

    # --- serialisation ------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire: canonical names, Content-Length from the body.

        Raises SipSerializeError (a ValueError) when the start line, a header
        name or value holds CR or LF, or a header name is not a token.
        """
        body = self.body
        body_length = len(body)
        lines = [self.start_line()]
        append = lines.append
        length_written = False
        wire_names = _WIRE_NAMES
        for name, key, value in self.headers._items:
            if key == "content-length":
                if length_written:
                    continue
                value = str(body_length)
                length_written = True
            prefix = wire_names.get(name)
            if prefix is None:
                canonical = canonical_name_for_key(key, name)
                if canonical is name and (not name or name.strip(TOKEN_CHARS)):
                    raise SipSerializeError(f"Invalid header name {name!r}")
                prefix = f"{canonical}: "
                if len(wire_names) < _WIRE_NAMES_MAX:
                    wire_names[name] = prefix
            append(prefix + value)
        if not length_written:
            lines.append(f"Content-Length: {body_length}")
        lines.append("")
        lines.append("")  # the empty line that ends the header section
        text = "\r\n".join(lines)
        breaks = len(lines) - 1
        # RFC 3261 §7.3.1 lets a value span lines only by folding; a CR or LF in
        # a value would start a new header line of the sender's choosing.
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise SipSerializeError("CR or LF in a start line or header value")
        return text.encode("utf-8") + body if body else text.encode("utf-8")


class Request(Message):
    """A SIP request: ``Method Request-URI SIP/2.0`` (RFC 3261 §7.1)."""

    __slots__ = ("method", "uri", "version")

    def __init__(
        self, method: str, uri: Uri, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def copy(self) -> Request:
        """A copy whose headers can change without touching this one (the URI is shared)."""
        return Request(self.method, self.uri, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return (
            f"<Request {self.method} {self.uri} headers={len(self.headers)} body={len(self.body)}B>"
        )


class Response(Message):
    """A SIP response: ``SIP/2.0 Status-Code Reason-Phrase`` (RFC 3261 §7.2)."""

    __slots__ = ("reason", "status_code", "version")

    def __init__(
        self, status_code: int, reason: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status_code = status_code
        self.reason = reason
        self.version = SIP_VERSION

    def start_line(self) -> str:
        return f"{self.version} {self.status_code} {self.reason}"

    def copy(self) -> Response:
        return Response(self.status_code, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return (
            f"<Response {self.status_code} {self.reason!r} "
            f"headers={len(self.headers)} body={len(self.body)}B>"
        )


# RFC 3261 §21, plus the codes of RFC 3265, 3329, 3903, 4028, 4412, 4474,
# 5079, 5360, 5393, 6086, 6228, 6665, 8599, 8197, 8688.
REASON_PHRASES: Final[dict[int, str]] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

# RFC 3261 §8.2.6.2: "The From field of the response MUST equal the From header
# field of the request. The Call-ID header field of the response MUST equal the
# Call-ID header field of the request. The CSeq header field of the response
# MUST equal the CSeq field of the request. The Via header field values in the
# response MUST equal the Via header field values in the request and MUST
# maintain the same ordering."
_COPIED_TO_RESPONSE: Final = frozenset({"via", "from", "to", "call-id", "cseq"})


def make_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
) -> Response:
    """A response to ``request`` as a UAS or a stateless proxy builds it (RFC 3261 §8.2.6).

    Copies every Via, From, To, Call-ID and CSeq line in order; adds
    ``;tag=to_tag`` to To when given and To has none; the reason defaults to
    the standard phrase (``"Unknown"`` for a code without one). A 100 also
    copies Timestamp (§8.2.6.1).
    """
    if not 100 <= status_code <= 699:
        raise ValueError(f"status code out of range: {status_code}")
    if reason is None:
        reason = REASON_PHRASES.get(status_code, "Unknown")
    copied = _COPIED_TO_RESPONSE | {"timestamp"} if status_code == 100 else _COPIED_TO_RESPONSE
    items = [item for item in request.headers._items if item[1] in copied]
    if to_tag is not None and request.to.tag is None:
        # "the UAS MUST add a tag to the To header field in the response"
        # (§8.2.6.2), when the request's To had none.
        for i, (name, key, value) in enumerate(items):
            if key == "to":
                items[i] = (name, key, f"{value.rstrip()};tag={to_tag}")
                break
    response = Response(status_code, reason, Headers._from_keyed(items))
    # The copied lines say what the request's do: its parsed CSeq and Call-ID
    # views hold for the response too (sending and counting it reads them).
    views = request._views()
    seeded = response._views()
    for view in ("cseq", "call_id"):
        parsed = views.get(view)
        if parsed is not None:
            seeded[view] = parsed
    return response
