"""What a processor's ``MessageResponse`` turns into on the wire (contract §4).

- :func:`build_answer`: the reply has ``response_type``; answer the request.
- :func:`build_forward_request`: the reply has ``request_uri``; forward the
  request with exactly the reply's headers.
- :func:`build_forward_response`: forward a downstream response upstream,
  keeping its status code.
- :func:`next_hop`: where a forwarded request goes (RFC 3261 §16.6 step 6-7,
  contract §4).

The protobuf cannot hold every parameter SIP can (a Contact's
``+sip.instance``, a Record-Route URI's ``ftag``, a Request-URI's ``ob``,
Via extension parameters). edgeport does better than serialising the
protobuf alone: a typed value the processor returns unchanged (equal to the
protobuf edgeport made from a header of the message the reply is about) is
written back as that header's original text, so nothing the protobuf cannot
carry is lost. A value the processor changed or added is written from its
fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert.codes import status_for_response_type
from edgeport.convert.to_proto import (
    fill_challenge,
    fill_contact,
    fill_credentials,
    fill_from_to,
    fill_route,
    fill_sip_uri,
    fill_via,
)
from edgeport.convert.to_sip import (
    ReplyError,
    authorization_text,
    check_header_name,
    check_value,
    contact_text,
    from_to_text,
    route_text,
    sip_uri,
    via_text,
    www_authenticate_text,
)
from edgeport.sip.headers import (
    header_key,
    parse_digest_challenge,
    parse_digest_credentials,
)
from edgeport.sip.message import Headers, Message, Request, Response, make_response
from edgeport.sip.transport import Transport
from edgeport.sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from google.protobuf.message import Message as ProtoMessage

__all__ = [
    "ForwardedRequest",
    "NextHop",
    "build_answer",
    "build_forward_request",
    "build_forward_response",
    "next_hop",
]


GATEWAY_AUTH_KEY: Final = "x-gateway-auth"
# RFC 3261 §16.6 step 3: "If the copy does not contain a Max-Forwards header
# field, the proxy MUST add one with a field value, which SHOULD be 70."
DEFAULT_MAX_FORWARDS: Final = "70"
# RFC 3261 §8.1.1: the header fields every request carries (Max-Forwards is added).
_REQUIRED_IN_REQUEST: Final = ("via", "from", "to", "call-id", "cseq")
# Written in this order, each typed value first, then extensions of that name;
# the remaining extensions follow in order of first appearance.
_ORDER: Final = (
    "via",
    "route",
    "record-route",
    "max-forwards",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "expires",
    "authorization",
    "www-authenticate",
)
_CANONICAL: Final = {
    "via": "Via",
    "route": "Route",
    "record-route": "Record-Route",
    "max-forwards": "Max-Forwards",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "contact": "Contact",
    "expires": "Expires",
    "authorization": "Authorization",
    "www-authenticate": "WWW-Authenticate",
}
# A response takes these only from the processor's reply (contract §4).
_REPLY_ONLY_IN_RESPONSE: Final = frozenset(
    {"via", "contact", "route", "record-route", "www-authenticate"}
)
# An answer copies these from the request (RFC 3261 §8.2.6.2); the reply's are ignored.
_FROM_REQUEST_IN_ANSWER: Final = frozenset(
    {"via", "from", "to", "call-id", "cseq", "max-forwards", "route", "authorization"}
)


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a forwarded request goes. ``host`` is bare (an IPv6 address without brackets)."""

    host: str
    port: int
    transport: Transport


@dataclass(slots=True)
class ForwardedRequest:
    """A request to send downstream, and the X-Gateway-Auth value taken out of it."""

    request: Request
    gateway_auth: str | None = None


class _Originals:
    """The typed header values of the message a reply is about, with their protobuf form.

    Built lazily, one kind at a time: a reply value equal to one of them is
    written as that header's original text (the raw line when it holds one
    value, else the value written back by the codec). ``sent`` is the
    SIPMessage edgeport made from the message, when the caller kept it: its
    fields are then compared as they are instead of being made again.
    """

    __slots__ = ("_cache", "_message", "_sent")

    def __init__(self, message: Message, sent: sipmessage_pb2.SIPMessage | None) -> None:
        self._message = message
        self._sent = sent
        self._cache: dict[str, list[tuple[ProtoMessage, str]]] = {}

    def _get(self, kind: str) -> list[tuple[ProtoMessage, str]]:
        found = self._cache.get(kind)
        if found is None:
            found = self._compute(kind)
            self._cache[kind] = found
        return found

    def _texts(self, key: str, values: Sequence[object]) -> list[str]:
        lines = self._message.headers.get_all(key)
        if len(lines) == len(values):
            return [line.strip() for line in lines]
        return [str(value) for value in values]

    def _compute(self, kind: str) -> list[tuple[ProtoMessage, str]]:
        msg = self._message
        sent = self._sent
        if kind == "via":
            vias = msg.via
            if sent is not None and len(sent.via) == len(vias):
                return list(zip(sent.via, self._texts(kind, vias), strict=True))
            protos = []
            for via in vias:
                proto = sipmessage_pb2.Via()
                fill_via(proto, via)
                protos.append(proto)
            return list(zip(protos, self._texts(kind, vias), strict=True))
        if kind == "route" or kind == "record-route":
            addrs = msg.routes if kind == "route" else msg.record_routes
            if sent is not None:
                sent_routes = sent.route if kind == "route" else sent.record_route
                if len(sent_routes) == len(addrs):
                    return list(zip(sent_routes, self._texts(kind, addrs), strict=True))
            cls = sipmessage_pb2.Route if kind == "route" else sipmessage_pb2.RecordRoute
            routes = []
            for addr in addrs:
                route = cls()
                fill_route(route, addr)
                routes.append(route)
            return list(zip(routes, self._texts(kind, addrs), strict=True))
        if kind == "contact":
            contacts = msg.contacts
            if not contacts:
                return []
            text = self._texts(kind, contacts)[0]
            if sent is not None and sent.HasField("contact"):
                return [(sent.contact, text)]
            contact = sipmessage_pb2.Contact()
            fill_contact(contact, contacts[0])
            return [(contact, text)]
        if kind == "from" or kind == "to":
            line = msg.headers.get(kind)
            if line is None:
                return []
            header: sipmessage_pb2.From | sipmessage_pb2.To
            if sent is not None and sent.HasField(kind):
                header = getattr(sent, kind)
            else:
                header = sipmessage_pb2.From() if kind == "from" else sipmessage_pb2.To()
                fill_from_to(header, msg.from_ if kind == "from" else msg.to)
            return [(header, line.strip())]
        line = msg.headers.get(kind)
        if line is None:
            return []
        if kind == "www-authenticate":
            if sent is not None and sent.HasField("www_authenticate"):
                return [(sent.www_authenticate, line.strip())]
            challenge = sipmessage_pb2.WWWAuthenticate()
            fill_challenge(challenge, parse_digest_challenge(line))
            return [(challenge, line.strip())]
        # authorization
        if sent is not None and sent.HasField("authorization"):
            return [(sent.authorization, line.strip())]
        credentials = sipmessage_pb2.Authorization()
        fill_credentials(credentials, parse_digest_credentials(line))
        return [(credentials, line.strip())]

    def text(self, kind: str, value: ProtoMessage) -> str | None:
        """The original text of a header equal to ``value``, if there is one."""
        for proto, text in self._get(kind):
            if proto == value:
                return text
        return None

    def request_uri(self, uri: sipmessage_pb2.SipURI) -> Uri | None:
        """The original Request-URI when ``uri`` is its protobuf form, unchanged."""
        original = self._message
        assert isinstance(original, Request)
        sent = self._sent
        if sent is not None and sent.WhichOneof("message_type") == "request_uri":
            proto = sent.request_uri
        else:
            proto = sipmessage_pb2.SipURI()
            fill_sip_uri(proto, original.uri)
        return original.uri if proto == uri else None


def _typed_lines(
    message: sipmessage_pb2.SIPMessage,
    originals: _Originals,
    skip: frozenset[str] = frozenset(),
    branch_factory: Callable[[], str] | None = None,
) -> dict[str, list[str]]:
    """Header text of every typed field the reply sets, by lookup key."""
    lines: dict[str, list[str]] = {}
    if message.via and "via" not in skip:
        vias = []
        for i, via in enumerate(message.via):
            text = originals.text("via", via)
            if text is None:
                # The top Via of a forwarded request gets a branch when it has none.
                needs_branch = i == 0 and branch_factory is not None and not via.branch
                text = via_text(via, branch_factory() if needs_branch else None)  # type: ignore[misc]
            vias.append(text)
        lines["via"] = vias
    for kind, routes in (("route", message.route), ("record-route", message.record_route)):
        if routes and kind not in skip:
            what = _CANONICAL[kind]
            lines[kind] = [
                originals.text(kind, route) or route_text(route, what) for route in routes
            ]
    if message.HasField("max_forwards") and "max-forwards" not in skip:
        value = message.max_forwards.max_forwards
        if not 0 <= value <= 255:
            raise ReplyError(f"Max-Forwards {value} out of range")
        lines["max-forwards"] = [str(value)]
    if message.HasField("from") and "from" not in skip:
        header = getattr(message, "from")
        lines["from"] = [originals.text("from", header) or from_to_text(header, "From")]
    if message.HasField("to") and "to" not in skip:
        lines["to"] = [originals.text("to", message.to) or from_to_text(message.to, "To")]
    if message.HasField("call_id") and message.call_id.call_id and "call-id" not in skip:
        call_id = check_value(message.call_id.call_id, "Call-ID")
        if len(call_id.split()) != 1:
            raise ReplyError("Call-ID holds whitespace")
        lines["call-id"] = [call_id]
    if message.HasField("contact") and "contact" not in skip:
        lines["contact"] = [
            originals.text("contact", message.contact) or contact_text(message.contact)
        ]
    if message.HasField("expires") and "expires" not in skip:
        if message.expires.expires < 0:
            raise ReplyError(f"Expires {message.expires.expires} is negative")
        lines["expires"] = [str(message.expires.expires)]
    if message.HasField("authorization") and "authorization" not in skip:
        lines["authorization"] = [
            originals.text("authorization", message.authorization)
            or authorization_text(message.authorization)
        ]
    if message.HasField("www_authenticate") and "www-authenticate" not in skip:
        lines["www-authenticate"] = [
            originals.text("www-authenticate", message.www_authenticate)
            or www_authenticate_text(message.www_authenticate)
        ]
    return lines


def _extension_lines(
    extensions: Iterable[sipmessage_pb2.Extension], skip: frozenset[str] = frozenset()
) -> tuple[dict[str, list[tuple[str, str]]], str | None]:
    """Extensions grouped by lookup key in order of first appearance; X-Gateway-Auth apart.

    Content-Length is dropped (it is recomputed from the body).
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    gateway_auth: str | None = None
    for ext in extensions:
        name = check_header_name(ext.name)
        value = check_value(ext.value, name)
        key = header_key(name)
        if key == GATEWAY_AUTH_KEY:
            if gateway_auth is None:
                gateway_auth = value.strip()
            continue
        if key == "content-length" or key in skip:
            continue
        group = groups.get(key)
        if group is None:
            groups[key] = [(name, value)]
        else:
            group.append((name, value))
    return groups, gateway_auth


def _merge(
    typed: dict[str, list[str]], extensions: dict[str, list[tuple[str, str]]]
) -> dict[str, list[tuple[str, str]]]:
    """Typed lines then extension lines of the same name, in :data:`_ORDER`, then the rest."""
    merged: dict[str, list[tuple[str, str]]] = {}
    for key in _ORDER:
        rows: list[tuple[str, str]] = []
        values = typed.get(key)
        if values:
            name = _CANONICAL[key]
            rows.extend((name, value) for value in values)
        ext = extensions.get(key)
        if ext:
            rows.extend(ext)
        if rows:
            merged[key] = rows
    for key, rows in extensions.items():
        if key not in merged:
            merged[key] = rows
    return merged


def _flatten(groups: Iterable[list[tuple[str, str]]]) -> Iterator[tuple[str, str]]:
    for rows in groups:
        yield from rows


def _reply_body(message: sipmessage_pb2.SIPMessage, original: bytes) -> bytes:
    body = message.body
    return body.encode("utf-8") if body else original


def _reason(message: sipmessage_pb2.SIPMessage) -> str | None:
    reason = message.reason_phrase
    return check_value(reason, "reason phrase") if reason else None


def build_answer(
    reply: processor_pb2.MessageResponse, request: Request, *, to_tag: str
) -> Response:
    """Answer ``request`` as the reply's ``response_type`` says (contract §4).

    The status is the ResponseType's code; a class value (CLIENT_ERROR...) is
    its x00 code unless ``reply.metadata["statusCode"]`` names a code of that
    class. Via, From, To (tagged with ``to_tag`` unless 100 or already
    tagged), Call-ID and CSeq come from the request (RFC 3261 §8.2.6.2);
    every other header the reply carries is added; the body is the reply's.
    Raises ReplyError for a reply that does not set a known response_type,
    or holds a value that cannot go on the wire.
    """
    message = reply.message
    if message.WhichOneof("message_type") != "response_type":
        raise ReplyError("the reply does not set response_type")
    status = status_for_response_type(message.response_type, reply.metadata)
    if status is None:
        raise ReplyError(f"unknown response_type {message.response_type}")
    response = make_response(
        request, status, _reason(message), to_tag=None if status == 100 else to_tag
    )
    originals = _Originals(request, None)
    typed = _typed_lines(message, originals, skip=_FROM_REQUEST_IN_ANSWER)
    extensions, _ = _extension_lines(message.extensions, skip=_FROM_REQUEST_IN_ANSWER)
    headers = response.headers
    for name, value in _flatten(_merge(typed, extensions).values()):
        headers.add(name, value)
    if message.body:
        response.body = message.body.encode("utf-8")
    return response


def build_forward_request(
    reply: processor_pb2.MessageResponse,
    original: Request,
    *,
    branch_factory: Callable[[], str],
    sent: sipmessage_pb2.SIPMessage | None = None,
) -> ForwardedRequest:
    """The request to forward, as the reply with ``request_uri`` describes it (contract §4).

    Method from the original; Request-URI from the reply; the header set is
    exactly the reply's (typed fields and extensions; CSeq is an
    extension), plus ``Max-Forwards: 70`` when the reply has none (RFC 3261
    §16.6 step 3); X-Gateway-Auth is taken out and returned apart; the body
    is the reply's when not empty, else the original bytes. A top Via
    without a branch gets ``branch_factory()``. Raises ReplyError for a
    reply without request_uri, without one of Via, From, To, Call-ID and
    CSeq, or with a value that cannot go on the wire.
    """
    message = reply.message
    if message.WhichOneof("message_type") != "request_uri":
        raise ReplyError("the reply does not set request_uri")
    originals = _Originals(original, sent)
    # An unchanged Request-URI keeps what the protobuf cannot hold (tel:, ;ob...).
    uri = originals.request_uri(message.request_uri) or sip_uri(message.request_uri, "Request-URI")
    typed = _typed_lines(message, originals, branch_factory=branch_factory)
    extensions, gateway_auth = _extension_lines(message.extensions)
    groups = _merge(typed, extensions)
    for key in _REQUIRED_IN_REQUEST:
        if key not in groups:
            raise ReplyError(f"the reply has no {_CANONICAL.get(key, 'CSeq')}")
    if "max-forwards" not in groups:
        groups["max-forwards"] = [("Max-Forwards", DEFAULT_MAX_FORWARDS)]
        groups = {key: groups[key] for key in _ordered_keys(groups)}
    request = Request(
        original.method,
        uri,
        Headers(_flatten(groups.values())),
        _reply_body(message, original.body),
    )
    return ForwardedRequest(request, gateway_auth)


def _ordered_keys(groups: dict[str, list[tuple[str, str]]]) -> list[str]:
    known = [key for key in _ORDER if key in groups]
    return known + [key for key in groups if key not in _ORDER]


def build_forward_response(
    reply: processor_pb2.MessageResponse,
    original: Response,
    *,
    cseq: str | None = None,
    sent: sipmessage_pb2.SIPMessage | None = None,
) -> Response:
    """The downstream response to send upstream, as the reply describes it (contract §4).

    Keeps the original status code (never the ResponseType's); the reason
    phrase is the reply's when not empty. Via, Contact, Route, Record-Route
    and WWW-Authenticate come only from the reply; every other header the
    reply carries replaces the original's lines of that name, in their place;
    the original's other lines stay. ``cseq`` replaces the CSeq (the server
    transaction's request CSeq). Raises ReplyError for a reply without a Via
    or with a value that cannot go on the wire.
    """
    message = reply.message
    originals = _Originals(original, sent)
    typed = _typed_lines(message, originals)
    extensions, _ = _extension_lines(message.extensions)
    groups = _merge(typed, extensions)
    if "via" not in groups:
        raise ReplyError("the reply has no Via")
    if cseq is not None:
        groups["cseq"] = [("CSeq", check_value(cseq, "CSeq"))]
    items: list[tuple[str, str]] = []
    items.extend(groups.pop("via"))
    for name, value in original.headers:
        key = header_key(name)
        if key == "via" or key == "content-length":
            continue
        if key in groups:
            items.extend(groups.pop(key))
        elif key not in _REPLY_ONLY_IN_RESPONSE and key not in typed and key not in extensions:
            items.append((name, value))
    items.extend(_flatten(groups.values()))
    reason = _reason(message)
    return Response(
        original.status_code,
        original.reason if reason is None else reason,
        Headers(items),
        _reply_body(message, original.body),
    )


def next_hop(request: Request) -> NextHop:
    """Where to send a forwarded request (contract §4; RFC 3261 §16.6 steps 6-7).

    The top Route when it has ``lr``, else the Request-URI. The transport is
    the URI's ``transport`` parameter (``sips:`` means TLS, or WSS over
    WebSocket), UDP by default; an absent port is the transport's default
    (5060, or 5061 for TLS). Raises ReplyError for a target that is not a
    SIP URI or names a transport edgeport does not speak.
    """
    target: Uri = request.uri
    routes = request.routes
    if routes:
        top = routes[0].uri
        if isinstance(top, SipUri) and top.lr:
            target = top
    if not isinstance(target, SipUri):
        raise ReplyError(f"cannot send to a {target.scheme}: URI")
    token = target.transport
    try:
        transport = Transport.UDP if not token else Transport.from_via_token(token)
    except ValueError:
        raise ReplyError(f"unsupported transport {token!r}") from None
    if target.secure:
        # RFC 3261 §26.2.2: a SIPS URI is reached over TLS on every hop.
        if transport in (Transport.UDP, Transport.TCP):
            transport = Transport.TLS
        elif transport is Transport.WS:
            transport = Transport.WSS
    port = target.port if target.port is not None else transport.default_port
    return NextHop(target.host.strip("[]"), port, transport)
