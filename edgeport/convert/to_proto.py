"""SIP message -> ``SIPMessage`` / ``MessageRequest`` (contract §2, §3).

The typed fields Routr processors act on (From, To, the first Contact,
Call-ID, Content-Length, Expires, WWW-Authenticate, Max-Forwards,
Authorization, every Via, Route and Record-Route) are filled with the
JAIN-SIP conventions processors rely on: an absent port, ``ttl`` or
``rport`` value is -1, an absent Contact ``expires`` is -1 and ``q`` -1.0,
From/To ``parameters`` hold every header parameter including ``tag``.
Every other header line is an ``Extension`` in order of appearance, with
its canonical name when the header is well known. A second Contact value,
a second WWW-Authenticate or Authorization line and the like also travel as
extensions instead of being dropped.

A ``tel:`` URI (RFC 3966) where a SipURI goes is written as its SIP form
(RFC 3261 §19.1.6): the number in ``user``, ``user_param = "phone"``, and
the ``phone-context`` in ``host`` when it is a domain name. Any other
non-SIP URI leaves the SipURI empty but for the -1 conventions.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Final

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert.codes import method_value, response_type_for_status
from edgeport.convert.errors import ConversionError, from_parse_error
from edgeport.sip.errors import SipParseError
from edgeport.sip.headers import (
    CANONICAL_NAMES,
    parse_name_addr_list,
    parse_via,
    split_header_values,
)
from edgeport.sip.message import Request, Response
from edgeport.sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

    from google.protobuf.message import Message as ProtoMessage

    from edgeport.sip.headers import (
        DigestChallenge,
        DigestCredentials,
        NameAddr,
        Via,
    )

__all__ = [
    "MessageRequestBuilder",
    "body_text",
    "fill_address",
    "fill_challenge",
    "fill_contact",
    "fill_credentials",
    "fill_from_to",
    "fill_route",
    "fill_sip_message",
    "fill_sip_uri",
    "fill_via",
    "to_message_request",
    "to_sip_message",
]

_ABSENT: Final = -1
_ABSENT_Q: Final = -1.0
_INT32_MAX: Final = 2**31 - 1
_TEL_SCHEME: Final = "tel"

# Lookup keys of the headers that map to typed fields. Content-Length is
# typed from the body itself (the parser already framed the body by it).
_TYPED_KEYS: Final = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "from",
        "to",
        "call-id",
        "content-length",
        "expires",
        "max-forwards",
        "www-authenticate",
        "authorization",
    }
)
# Typed headers whose every value (of every line) is converted with the first line.
_LIST_KEYS: Final = frozenset({"via", "route", "record-route", "contact"})
_CONTACT: Final = "Contact"


def fill_sip_uri(out: sipmessage_pb2.SipURI, uri: Uri) -> None:
    """Write ``uri`` into ``out`` (an empty SipURI message)."""
    if isinstance(uri, SipUri):
        user = uri.user
        if user is not None:
            out.user = user
        if uri.password is not None:
            out.user_password = uri.password
        out.host = uri.host
        port = uri.port
        out.port = _ABSENT if port is None else port
        ttl = _ABSENT
        # One pass over the parameters (usually none to three) instead of a
        # lookup per field.
        for name, value in uri.params.items():
            if name == "transport":
                if value:
                    out.transport_param = value
            elif name == "lr":
                out.lr_param = True
            elif name == "maddr":
                if value:
                    out.m_addr_param = value
            elif name == "user":
                if value:
                    out.user_param = value
            elif name == "method":
                if value:
                    out.method_param = value
            elif name == "ttl":
                number = uri.ttl
                if number is not None:
                    ttl = min(number, _INT32_MAX)
            elif name == "bnc":
                out.bnc_param = True
        out.ttl_param = ttl
        if uri.scheme == "sips":
            out.secure = True
        return
    out.port = _ABSENT
    out.ttl_param = _ABSENT
    if uri.scheme == _TEL_SCHEME:
        # RFC 3261 §19.1.6: tel:+1555;phone-context=example.com is
        # sip:+1555;phone-context=example.com@example.com;user=phone.
        subscriber, _, rest = uri.value.partition(";")
        out.user = subscriber
        out.user_param = "phone"
        for param in rest.split(";"):
            param_name, _, param_value = param.partition("=")
            if (
                param_name.lower() == "phone-context"
                and param_value
                and not param_value.startswith("+")
            ):
                out.host = param_value


def fill_address(out: sipmessage_pb2.Address, addr: NameAddr) -> None:
    if addr.wildcard:
        out.wildcard = True
        uri = out.uri
        uri.port = _ABSENT
        uri.ttl_param = _ABSENT
        return
    display_name = addr.display_name
    if display_name:
        out.display_name = display_name
    fill_sip_uri(out.uri, addr.uri)


def _fill_parameters(out: MutableMapping[str, str], params: dict[str, str | None]) -> None:
    for name, value in params.items():
        out[name] = "" if value is None else value


def fill_via(out: sipmessage_pb2.Via, via: Via) -> None:
    out.host = via.host
    port = via.port
    out.port = _ABSENT if port is None else port
    out.transport = via.transport
    r_port = _ABSENT
    ttl = _ABSENT
    for name, value in via.params.items():
        if name == "branch":
            if value:
                out.branch = value
        elif name == "rport":
            out.r_port_flag = True
            # Via.rport, read here without the property: 1 to 10 ASCII digits.
            if value and len(value) <= 10 and value.isascii() and value.isdigit():
                r_port = int(value)
        elif name == "received":
            if value:
                out.received = value
        elif name == "maddr":
            if value:
                out.m_addr = value
        elif name == "ttl":
            number = via.ttl
            if number is not None:
                ttl = min(number, _INT32_MAX)
    out.r_port = r_port
    out.ttl = ttl


def fill_from_to(out: sipmessage_pb2.From | sipmessage_pb2.To, addr: NameAddr) -> None:
    fill_address(out.address, addr)
    params = addr.params
    if params:
        tag = params.get("tag")
        if tag:
            out.tag = tag
        _fill_parameters(out.parameters, params)


def fill_contact(out: sipmessage_pb2.Contact, addr: NameAddr) -> None:
    fill_address(out.address, addr)
    expires = addr.expires
    out.expires = _ABSENT if expires is None else min(expires, _INT32_MAX)
    q = addr.q
    out.q_value = _ABSENT_Q if q is None or q < 0.0 else q


def fill_route(out: sipmessage_pb2.Route | sipmessage_pb2.RecordRoute, addr: NameAddr) -> None:
    fill_address(out.address, addr)
    if addr.params:
        _fill_parameters(out.parameters, addr.params)


def fill_challenge(out: sipmessage_pb2.WWWAuthenticate, challenge: DigestChallenge) -> None:
    params = challenge.params
    out.scheme = challenge.scheme
    out.realm = params.get("realm", "")
    out.domain = params.get("domain", "")
    out.nonce = params.get("nonce", "")
    out.algorithm = params.get("algorithm", "")
    out.qop = params.get("qop", "")
    out.opaque = params.get("opaque", "")
    out.stale = challenge.stale


def _nonce_count(nc: str | None) -> int:
    # RFC 2617 §3.2.2: nc-value = 8LHEX. Anything unreadable or past int32 is 0.
    if not nc:
        return 0
    try:
        count = int(nc, 16)
    except ValueError:
        return 0
    return count if count <= _INT32_MAX else 0


def fill_credentials(out: sipmessage_pb2.Authorization, credentials: DigestCredentials) -> None:
    params = credentials.params
    out.scheme = credentials.scheme
    out.realm = params.get("realm", "")
    out.c_nonce = params.get("cnonce", "")
    out.nonce = params.get("nonce", "")
    out.algorithm = params.get("algorithm", "")
    out.qop = params.get("qop", "")
    out.opaque = params.get("opaque", "")
    out.response = params.get("response", "")
    out.username = params.get("username", "")
    out.uri = params.get("uri", "")
    out.nonce_count = _nonce_count(params.get("nc"))


def body_text(body: bytes) -> str:
    """The body as text when it is valid UTF-8, else "" (forwarding then keeps the bytes)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def to_sip_message(msg: Request | Response) -> sipmessage_pb2.SIPMessage:
    """Convert a parsed (and, for a request, received-stamped) message (contract §2).

    Raises ConversionError for a response whose status has no ResponseType
    (a provisional code without a value: see ``should_send_response``), and
    for a malformed typed header (with the status the request should get).
    """
    out = sipmessage_pb2.SIPMessage()
    try:
        fill_sip_message(out, msg)
    except SipParseError as error:
        raise from_parse_error(error) from error
    return out


def fill_sip_message(out: sipmessage_pb2.SIPMessage, msg: Request | Response) -> None:
    """:func:`to_sip_message` into an empty ``SIPMessage`` (no copy of a finished one).

    Most header lines end up as protobuf bytes that depend on the line's
    text alone (an extension, a Contact, From, To...), and the same lines
    come back message after message (a client's User-Agent, Allow and
    Contact; a dialog's From, To and route set). Such a line is encoded once
    and its bytes kept (see :data:`_CHUNKS`); each message then merges its
    lines' bytes in one call, which costs far less than writing the fields
    one by one. The top Via, Call-ID and Request-URI are written directly:
    they differ from message to message.
    """
    if isinstance(msg, Request):
        fill_sip_uri(out.request_uri, msg.uri)
    else:
        response_type = response_type_for_status(msg.status_code)
        if response_type is None:
            raise ConversionError(f"status {msg.status_code} has no ResponseType", 500)
        out.response_type = response_type  # type: ignore[assignment]
        out.reason_phrase = msg.reason
    headers = msg.headers
    typed = _TYPED_KEYS
    cached = _CHUNKS
    chunks: list[bytes] = []
    seen: set[str] = set()
    for item in headers.keyed_items():
        # The parser hands out one tuple per distinct line, so a line seen
        # before is found here by identity.
        chunk = cached.get(item)
        if chunk is not None:
            key = item[1]
            if key not in typed:
                chunks.append(chunk)
                continue
            # A typed line's kept bytes stand for its header when it is the first
            # line of that name (a lone one, for Contact).
            if key not in seen and (key != "contact" or headers.count(key) == 1):
                seen.add(key)
                chunks.append(chunk)
                continue
        name, key, value = item
        if key not in typed:
            chunk = _extension_chunk(CANONICAL_NAMES.get(key, name), value)
            _remember(item, chunk)
            chunks.append(chunk)
            continue
        if key in seen:
            # Every value of a list header went in with its first line; a second
            # line of a single-valued header (two challenges, say) is an extension.
            if key not in _LIST_KEYS and key != "content-length":
                chunks.append(_extension_chunk(CANONICAL_NAMES[key], value))
            continue
        seen.add(key)
        if key == "via":
            _add_vias(out, msg, chunks)
        elif key == "call-id":
            out.call_id.call_id = msg.call_id
        elif key in _ROUTE_KEYS:
            # Each line of a route set gives its own values' bytes, in line order.
            for line in headers.get_all(key):
                line_key = (key, line)
                chunk = cached.get(line_key)
                if chunk is None:
                    chunk = _typed_chunk(msg, key, line)
                    _remember(line_key, chunk)
                chunks.append(chunk)
        elif key in _CACHED_KEYS:
            chunk = _typed_chunk(msg, key, value)
            if key == "contact" and headers.count(key) > 1:
                # The bytes depend on every Contact line together: made, not kept.
                chunks.append(chunk)
                continue
            _remember(item, chunk)
            chunks.append(chunk)
        elif key == "www-authenticate":
            challenge = msg.www_authenticate
            if challenge is not None:
                fill_challenge(out.www_authenticate, challenge)
        elif key == "authorization":
            credentials = msg.authorization
            if credentials is not None:
                fill_credentials(out.authorization, credentials)
        # content-length: typed from the body below.
    if chunks:
        out.MergeFromString(b"".join(chunks))
    body = msg.body
    out.content_length.content_length = len(body)
    if body:
        out.body = body_text(body)


def _add_vias(out: sipmessage_pb2.SIPMessage, msg: Request | Response, chunks: list[bytes]) -> None:
    """Every Via value (``msg.via``) into ``out``, in order.

    A response's Vias below the top one come back in every response of its
    transaction (the 1xx and the final one), so their bytes are kept by
    text and joined after the top one; the top one (edgeport's own, its
    branch new in every transaction) is written directly. A request's are
    written directly: below the top one they are new in each transaction.
    """
    parsed = msg.parsed_vias()
    if parsed is None and isinstance(msg, Response):
        lines = msg.headers.get_all("via")
        first = split_header_values(lines[0])
        texts = first + [value for line in lines[1:] for value in split_header_values(line)]
        if not texts:
            return
        # The top value as ``msg.via`` gives it: the cached top Via view when
        # the first line holds it.
        fill_via(out.via.add(), msg.top_via if first else parse_via(texts[0]))
        cached = _CHUNKS
        for text in islice(texts, 1, None):
            line_key = ("via", text)
            chunk = cached.get(line_key)
            if chunk is None:
                via_message = sipmessage_pb2.SIPMessage()
                fill_via(via_message.via.add(), parse_via(text))
                chunk = via_message.SerializeToString()
                _remember(line_key, chunk)
            chunks.append(chunk)
        return
    add_via = out.via.add
    for via in msg.via if parsed is None else parsed:
        fill_via(add_via(), via)


# A header line -> its part of a serialised SIPMessage: an extension line, and
# the first line of From, To, a lone Contact, Max-Forwards and Expires, by
# (name as written, lookup key, raw value), the parser's own tuple; a line
# of a route set, and a Via below a response's top one, by (lookup key, raw
# value). Only lines up to _CHUNK_TEXT_MAX characters are kept, so the cache
# stays small whatever the peers send.
_CHUNKS: Final[dict[tuple[str, ...], bytes]] = {}
_CHUNKS_MAX: Final = 4096  # entries; when full it is emptied and fills again
_CHUNK_TEXT_MAX: Final = 256  # characters of a header value
# Typed headers whose bytes are kept: the ones whose text recurs (Contact, the
# route set, From and To within a dialog). A Via's branch, an Authorization's
# nonce and response, a challenge's nonce are new in every message.
_CACHED_KEYS: Final = frozenset(
    {"from", "to", "contact", "route", "record-route", "max-forwards", "expires"}
)
_ROUTE_KEYS: Final = frozenset({"route", "record-route"})


def _remember(item: tuple[str, ...], chunk: bytes) -> None:
    if len(item[-1]) <= _CHUNK_TEXT_MAX:
        if len(_CHUNKS) >= _CHUNKS_MAX:
            _CHUNKS.clear()
        _CHUNKS[item] = chunk


def _varint(number: int) -> bytes:
    """A non-negative int as a protobuf base-128 varint."""
    if number < 0x80:
        return _SMALL_VARINTS[number]
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_SMALL_VARINTS: Final = tuple(bytes((number,)) for number in range(0x80))
_LENGTH_DELIMITED: Final = 2  # protobuf wire type of strings and messages


def _field_key(message: type[ProtoMessage], field: str) -> bytes:
    """The key of a length-delimited field on the wire (field number, wire type)."""
    number = message.DESCRIPTOR.fields_by_name[field].number
    return _varint(number << 3 | _LENGTH_DELIMITED)


_EXTENSIONS_KEY: Final = _field_key(sipmessage_pb2.SIPMessage, "extensions")
_EXTENSION_NAME_KEY: Final = _field_key(sipmessage_pb2.Extension, "name")
_EXTENSION_VALUE_KEY: Final = _field_key(sipmessage_pb2.Extension, "value")


def _extension_chunk(name: str, value: str) -> bytes:
    """``SIPMessage{extensions: [Extension{name, value}]}`` serialised.

    Written by hand: two strings are quicker to frame here than to set
    through upb and serialise.
    """
    name_bytes = name.encode("utf-8")
    value_bytes = value.encode("utf-8")
    extension = b"".join(
        (
            _EXTENSION_NAME_KEY,
            _varint(len(name_bytes)),
            name_bytes,
            _EXTENSION_VALUE_KEY,
            _varint(len(value_bytes)),
            value_bytes,
        )
    )
    return _EXTENSIONS_KEY + _varint(len(extension)) + extension


def _typed_chunk(msg: Request | Response, key: str, line: str) -> bytes:
    """The serialised SIPMessage fields (and extensions) that typed header ``key`` makes:
    all its values, or for a route set the values of ``line`` alone."""
    out = sipmessage_pb2.SIPMessage()
    if key in _ROUTE_KEYS:
        add = out.route.add if key == "route" else out.record_route.add
        for addr in parse_name_addr_list(line):
            fill_route(add(), addr)
    elif key == "from":
        fill_from_to(getattr(out, "from"), msg.from_)
    elif key == "to":
        fill_from_to(out.to, msg.to)
    elif key == "contact":
        contacts = msg.contacts
        if contacts:
            fill_contact(out.contact, contacts[0])
            # edgeport does better: later Contact values (of this line and of
            # later Contact lines) travel as extensions, in their place.
            for contact in contacts[1:]:
                out.extensions.add(name=_CONTACT, value=str(contact))
    elif key == "max-forwards":
        max_forwards = msg.max_forwards
        if max_forwards is not None:
            out.max_forwards.max_forwards = max_forwards
    else:  # expires
        expires = msg.expires
        if expires is not None:
            out.expires.expires = min(expires, _INT32_MAX)
    return out.SerializeToString()


class MessageRequestBuilder:
    """Makes the ``MessageRequest`` of each message; the per-EdgePort fields are set once.

    ``edge_port_ref``, ``listening_points``, ``external_addrs`` and
    ``localnets`` are the same for every message (contract §3), so they are
    built once into a template that each request copies (one C call instead
    of rebuilding the repeated fields).
    """

    __slots__ = ("_template",)

    def __init__(
        self,
        *,
        edge_port_ref: str,
        listening_points: Iterable[processor_pb2.NetInterface],
        external_addrs: Iterable[str],
        localnets: Iterable[str],
    ) -> None:
        self._template = processor_pb2.MessageRequest(
            edge_port_ref=edge_port_ref,
            listening_points=listening_points,
            external_addrs=external_addrs,
            localnets=localnets,
        )

    def build(
        self, msg: Request | Response, *, sender: processor_pb2.NetInterface
    ) -> processor_pb2.MessageRequest:
        """The ``MessageRequest`` for one message (contract §3).

        ``ref`` is the Call-ID; ``method`` the request method or, for a
        response, its CSeq method (UNKNOWN outside the enum); a response also
        carries ``metadata["statusCode"]``. Raises ConversionError for a
        response that is not sent to the processor (``should_send_response``
        is False) and for a malformed typed header.
        """
        request = processor_pb2.MessageRequest()
        request.CopyFrom(self._template)
        request.ref = msg.call_id
        request.sender.CopyFrom(sender)
        try:
            fill_sip_message(request.message, msg)
        except SipParseError as error:
            raise from_parse_error(error) from error
        if isinstance(msg, Request):
            request.method = method_value(msg.method)  # type: ignore[assignment]
        else:
            request.method = method_value(msg.cseq.method)  # type: ignore[assignment]
            request.metadata["statusCode"] = str(msg.status_code)
        return request


def to_message_request(
    msg: Request | Response,
    *,
    sender: processor_pb2.NetInterface,
    edge_port_ref: str,
    listening_points: Iterable[processor_pb2.NetInterface],
    external_addrs: Iterable[str],
    localnets: Iterable[str],
) -> processor_pb2.MessageRequest:
    """The ``MessageRequest`` for one message; see :meth:`MessageRequestBuilder.build`.

    A proxy making many keeps one :class:`MessageRequestBuilder` instead.
    """
    builder = MessageRequestBuilder(
        edge_port_ref=edge_port_ref,
        listening_points=listening_points,
        external_addrs=external_addrs,
        localnets=localnets,
    )
    return builder.build(msg, sender=sender)
