"""The SIP message model: Request, Response and their typed views (RFC 3261 §7, §20).

A message keeps its header lines as received (:class:`~edgeport.sip.header_list.Headers`)
and its body as bytes. Typed views (Via, From, To, CSeq...) are parsed on
first access and cached; any change to the headers drops the cache.
``to_bytes`` writes canonical header names, recomputes Content-Length and
refuses a line break in any value (no header injection). :func:`make_response`
builds the response a UAS or a stateless proxy sends (RFC 3261 §8.2.6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar, cast

from edgeport.sip.errors import SipParseError
from edgeport.sip.header_list import Headers, write_message
from edgeport.sip.headers import (
    CSeq,
    DigestChallenge,
    DigestCredentials,
    NameAddr,
    Via,
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
from edgeport.sip.reason_phrases import REASON_PHRASES

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport.sip.uri import Uri

__all__ = ["REASON_PHRASES", "Headers", "Message", "Request", "Response", "make_response"]

SIP_VERSION: Final = "SIP/2.0"

_T = TypeVar("_T")
_MISSING: Final = object()


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
        if self._cache_headers is not headers or self._cache_version != headers.version:
            self._cache = {}
            self._cache_headers = headers
            self._cache_version = headers.version
        return self._cache

    def _prime_cache(self, views: dict[str, object]) -> None:
        """Seed the typed-view cache with values already parsed (by the parser)."""
        self._cache = views
        self._cache_headers = self.headers
        self._cache_version = self.headers.version

    def drop_views(self) -> None:
        """Forget the parsed views and the header index; they are rebuilt on next use.

        For a message kept only in case it is needed again (the request and
        last response of a transaction lingering for retransmissions): the
        parsed copies are most of what it holds.
        """
        self._cache = {}
        self.headers.drop_index()

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
                items = split_header_values(self.headers.require("Via"))
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
            value = views["from"] = parse_name_addr(self.headers.require("From"))
        return cast("NameAddr", value)

    @property
    def to(self) -> NameAddr:
        views = self._views()
        value = views.get("to")
        if value is None:
            value = views["to"] = parse_name_addr(self.headers.require("To"))
        return cast("NameAddr", value)

    @property
    def call_id(self) -> str:
        views = self._views()
        value = views.get("call_id")
        if value is None:
            value = views["call_id"] = parse_call_id(self.headers.require("Call-ID"))
        return cast("str", value)

    @property
    def cseq(self) -> CSeq:
        views = self._views()
        value = views.get("cseq")
        if value is None:
            value = views["cseq"] = parse_cseq(self.headers.require("CSeq"))
        return cast("CSeq", value)

    @property
    def contacts(self) -> list[NameAddr]:
        return _address_list(self, "contact")

    @property
    def routes(self) -> list[NameAddr]:
        return _address_list(self, "route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return _address_list(self, "record-route")

    @property
    def max_forwards(self) -> int | None:
        # Max-Forwards = 1*DIGIT; above 255 is refused (RFC 4475 §3.1.2.4).
        return _optional_int(self, "max-forwards", "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        return _optional_int(self, "expires", "Expires", 2**32 - 1)

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as written (to_bytes recomputes it)."""
        return _optional_int(self, "content-length", "Content-Length", 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return None if value is None else value.strip()

    @property
    def authorization(self) -> DigestCredentials | None:
        return _optional_parsed(self, "authorization", parse_digest_credentials)

    @property
    def proxy_authorization(self) -> DigestCredentials | None:
        return _optional_parsed(self, "proxy-authorization", parse_digest_credentials)

    @property
    def www_authenticate(self) -> DigestChallenge | None:
        return _optional_parsed(self, "www-authenticate", parse_digest_challenge)

    @property
    def proxy_authenticate(self) -> DigestChallenge | None:
        return _optional_parsed(self, "proxy-authenticate", parse_digest_challenge)

    def set_top_via(self, via: Via) -> None:
        """Rewrite the first Via value (received/rport stamping, RFC 3261 §18.2.1)."""
        line = self.headers.require("Via")
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
        return write_message(self.start_line(), self.headers, self.body)


# The typed views' shared steps, as functions of this module: they read the
# message's view cache and are no part of a message's interface.


def _address_list(message: Message, key: str) -> list[NameAddr]:
    """Every address on the lines of ``key`` (Contact, Route, Record-Route), in order."""
    views = message._views()
    value = views.get(key)
    if value is None:
        value = views[key] = [
            addr for line in message.headers.get_all(key) for addr in parse_name_addr_list(line)
        ]
    return cast("list[NameAddr]", value)


def _optional_int(message: Message, key: str, what: str, maximum: int) -> int | None:
    """The ``1*DIGIT`` value of ``key``, None when the message has no such line."""
    views = message._views()
    value = views.get(key, _MISSING)
    if value is _MISSING:
        line = message.headers.get(key)
        value = views[key] = None if line is None else parse_int_value(line, what, maximum)
    return cast("int | None", value)


def _optional_parsed(message: Message, key: str, parse: Callable[[str], _T]) -> _T | None:
    """The first line of ``key`` as ``parse`` reads it, None when there is none."""
    views = message._views()
    value = views.get(key, _MISSING)
    if value is _MISSING:
        line = message.headers.get(key)
        value = views[key] = None if line is None else parse(line)
    return cast("_T | None", value)


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
    items = request.headers.keyed_lines_of(copied)
    if to_tag is not None and request.to.tag is None:
        # "the UAS MUST add a tag to the To header field in the response"
        # (§8.2.6.2), when the request's To had none.
        for i, (name, key, value) in enumerate(items):
            if key == "to":
                items[i] = (name, key, f"{value.rstrip()};tag={to_tag}")
                break
    response = Response(status_code, reason, Headers.from_keyed(items))
    # The copied lines say what the request's do: its parsed CSeq and Call-ID
    # views hold for the response too (sending and counting it reads them).
    views = request._views()
    seeded = response._views()
    for view in ("cseq", "call_id"):
        parsed = views.get(view)
        if parsed is not None:
            seeded[view] = parsed
    return response
