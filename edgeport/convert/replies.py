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

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert.codes import status_for_response_type
from edgeport.convert.errors import reply_errors
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
    check_token,
    check_value,
    contact_text,
    from_to_text,
    route_text,
    sip_uri,
    via_text_parts,
    www_authenticate_text,
)
from edgeport.sip.headers import (
    TOKEN_CHARS,
    header_key,
    parse_digest_challenge,
    parse_digest_credentials,
    split_header_values,
)
from edgeport.sip.message import Headers, Message, Request, Response, make_response
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS
from edgeport.sip.transport import Transport
from edgeport.sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

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
_ORDER_SET: Final = frozenset(_ORDER)
# RFC 3261 §7.3.1: a header line ends at CRLF; NUL has no place in a message.
_LINE_BREAKER: Final = re.compile("[\r\n\x00]")
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
    # Whether the URI named them (RFC 3263 §4.1, §4.2: an explicit port skips
    # NAPTR and SRV, an explicit transport skips NAPTR). Not part of equality:
    # the hop is the same place either way.
    explicit_port: bool = field(default=True, compare=False)
    explicit_transport: bool = field(default=True, compare=False)


@dataclass(slots=True)
class ForwardedRequest:
    """A request to send downstream, and the X-Gateway-Auth value taken out of it."""

    request: Request
    gateway_auth: str | None = None


class _Originals:
    """The typed header values of the message a reply is about, with their protobuf form.

    Built lazily: a reply value equal to one of them is written as that
    header's original text (the raw line when it holds one value, else the
    value written back by the codec). ``sent`` is the SIPMessage edgeport
    made from the message, when the caller kept it: its fields are then
    compared as they are instead of being made again.
    """

    __slots__ = ("_branches", "_lists", "_message", "_sent", "_via_protos", "_via_texts")

    def __init__(self, message: Message, sent: sipmessage_pb2.SIPMessage | None) -> None:
        self._message = message
        self._sent = sent
        self._lists: dict[str, list[tuple[ProtoMessage, str]]] = {}
        self._branches: dict[str, int] | None = None
        self._via_protos: Sequence[sipmessage_pb2.Via] | None = None
        self._via_texts: list[str] | None = None

    def _texts(self, key: str, values: Sequence[object]) -> list[str]:
        lines = self._message.headers.get_all(key)
        if len(lines) == len(values):
            return [line.strip() for line in lines]
        return [str(value) for value in values]

    def _lone_lines(self, key: str, sent_count: int) -> list[str] | None:
        """The lines of ``key``, stripped, when each holds one value and there are
        as many as ``sent`` has values: then they pair with ``sent``'s values in
        order, and nothing needs parsing. Else None."""
        lines = self._message.headers.get_all(key)
        if len(lines) != sent_count:
            return None
        texts = []
        for line in lines:
            if len(split_header_values(line)) != 1:
                return None
            texts.append(line.strip())
        return texts

    def _make_list(self, kind: str) -> list[tuple[ProtoMessage, str]]:
        msg = self._message
        sent = self._sent
        sent_routes = None
        if sent is not None:
            sent_routes = sent.route if kind == "route" else sent.record_route
            texts = self._lone_lines(kind, len(sent_routes))
            if texts is not None:
                return list(zip(sent_routes, texts, strict=True)) if texts else []
        addrs = msg.routes if kind == "route" else msg.record_routes
        if not addrs:
            return []
        protos: Sequence[ProtoMessage]
        if sent_routes is not None and len(sent_routes) == len(addrs):
            protos = sent_routes
        else:
            cls = sipmessage_pb2.Route if kind == "route" else sipmessage_pb2.RecordRoute
            protos = []
            for addr in addrs:
                route = cls()
                fill_route(route, addr)
                protos.append(route)
        return list(zip(protos, self._texts(kind, addrs), strict=True))

    def listed(self, kind: str, value: ProtoMessage) -> str | None:
        """The original text of a Route or Record-Route value equal to ``value``."""
        pairs = self._lists.get(kind)
        if pairs is None:
            pairs = self._lists[kind] = self._make_list(kind)
        for proto, text in pairs:
            if proto == value:
                return text
        return None

    def _index_vias(self) -> dict[str, int]:
        """Branch -> position of the first original Via with it (set up once)."""
        branches: dict[str, int] = {}
        sent = self._sent
        if sent is not None:
            # The Vias as sent pair with the lines when each line holds one:
            # their branches are read from the protobuf, nothing is parsed.
            texts = self._lone_lines("via", len(sent.via))
            if texts is not None:
                protos = list(sent.via)
                for position, proto in enumerate(protos):
                    branches.setdefault(proto.branch, position)
                self._via_protos = protos
                self._via_texts = texts
                return branches
        for position, via in enumerate(self._message.via):
            branches.setdefault(via.branch or "", position)
        return branches

    def via(self, value: sipmessage_pb2.Via, branch: str) -> str | None:
        """The original text of a Via value equal to ``value`` (whose branch is ``branch``).

        Candidates are found by branch first (a string compare), so a Via
        the processor added costs no protobuf comparison.
        """
        branches = self._branches
        if branches is None:
            branches = self._branches = self._index_vias()
        index = branches.get(branch)
        if index is None:
            return None
        protos = self._via_protos
        if protos is not None:
            texts = self._via_texts
            assert texts is not None
            return texts[index] if protos[index] == value else None
        sent = self._sent
        vias = self._message.via
        if sent is not None and len(sent.via) == len(vias):
            proto = sent.via[index]
        else:
            proto = sipmessage_pb2.Via()
            fill_via(proto, vias[index])
        if proto != value:
            return None
        texts = self._via_texts
        if texts is None:
            texts = self._via_texts = self._texts("via", vias)
        return texts[index]

    def single(self, kind: str, field: str, value: ProtoMessage) -> str | None:
        """The original text of From, To, the first Contact, WWW-Authenticate or Authorization."""
        msg = self._message
        line = msg.headers.get(kind)
        if line is None:
            return None
        sent = self._sent
        proto: ProtoMessage
        if sent is not None and sent.HasField(field):
            proto = getattr(sent, field)
        elif kind == "from" or kind == "to":
            proto = sipmessage_pb2.From() if kind == "from" else sipmessage_pb2.To()
            fill_from_to(proto, msg.from_ if kind == "from" else msg.to)
        elif kind == "contact":
            proto = sipmessage_pb2.Contact()
            fill_contact(proto, msg.contacts[0])
        elif kind == "www-authenticate":
            proto = sipmessage_pb2.WWWAuthenticate()
            fill_challenge(proto, parse_digest_challenge(line))
        else:
            proto = sipmessage_pb2.Authorization()
            fill_credentials(proto, parse_digest_credentials(line))
        if proto != value:
            return None
        if kind == "contact":
            # The raw line when the lines hold one value each (counted without
            # parsing them again), else the first value written back.
            lines = msg.headers.get_all(kind)
            if len(lines) == 1 and "," not in line:
                return line.strip()
            if all(len(split_header_values(contact_line)) == 1 for contact_line in lines):
                return lines[0].strip()
            return str(msg.contacts[0])
        return line.strip()

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


# (name as written, lookup key, value): a header line ready for Headers.from_keyed.
_Row = tuple[str, str, str]
_Rows = list[_Row]
# Extension header name -> lookup key, for names already checked to be tokens.
_EXTENSION_KEYS: Final[dict[str, str]] = {}
_EXTENSION_KEYS_MAX: Final = 1024  # entries; past it a new name is checked each time


def _extension_key(name: str) -> str:
    key = _EXTENSION_KEYS.get(name)
    if key is None:
        if not name or name.strip(TOKEN_CHARS):
            raise ReplyError(f"invalid header name {name!r}")
        key = header_key(name)
        if len(_EXTENSION_KEYS) < _EXTENSION_KEYS_MAX:
            _EXTENSION_KEYS[name] = key
    return key


# Written text of the Vias and Routes a processor adds, by their serialised
# protobuf: a processor adds the same ones (its own Via, the next hop's Route)
# to message after message. Only protobufs up to _TEXT_KEY_MAX bytes are kept.
_VIA_TEXTS: Final[dict[bytes, tuple[str, str | None, str]]] = {}
_ROUTE_TEXTS: Final[dict[bytes, str]] = {}
_TEXTS_MAX: Final = 1024  # entries per table; when full it is emptied and fills again
_TEXT_KEY_MAX: Final = 512  # bytes of a serialised Via or Route


def _without_branch(via: sipmessage_pb2.Via) -> sipmessage_pb2.Via:
    copy = sipmessage_pb2.Via()
    copy.CopyFrom(via)
    copy.branch = ""
    return copy


def _via_text(via: sipmessage_pb2.Via, via_branch: str, branch: str | None) -> str:
    """:func:`via_text` for a Via not in the original message; ``via_branch`` is ``via.branch``."""
    key = via.SerializeToString()
    parts = _VIA_TEXTS.get(key)
    if parts is None:
        head, branch_text, tail = via_text_parts(via, branch)
        if len(key) <= _TEXT_KEY_MAX:
            if len(_VIA_TEXTS) >= _TEXTS_MAX:
                _VIA_TEXTS.clear()
            # A branch of the Via's own is part of the key; one filled in is not.
            _VIA_TEXTS[key] = (head, branch_text if via_branch else None, tail)
        return f"{head}{branch_text}{tail}"
    head, fixed_branch, tail = parts
    if fixed_branch is None:
        fixed_branch = f";branch={check_token(branch, 'Via branch')}" if branch else ""
    return f"{head}{fixed_branch}{tail}"


def _route_text(route: sipmessage_pb2.Route | sipmessage_pb2.RecordRoute, what: str) -> str:
    """:func:`route_text` for a value not in the original message."""
    key = route.SerializeToString()
    text = _ROUTE_TEXTS.get(key)  # never one with parameters: see below
    if text is None:
        text = route_text(route, what)
        if route.parameters:
            # Written in the map's order, which the serialised form need not share.
            return text
        if len(key) <= _TEXT_KEY_MAX:
            if len(_ROUTE_TEXTS) >= _TEXTS_MAX:
                _ROUTE_TEXTS.clear()
            _ROUTE_TEXTS[key] = text
    return text


def _header_groups(
    message: sipmessage_pb2.SIPMessage,
    originals: _Originals,
    skip: frozenset[str] = frozenset(),
    branch_factory: Callable[[], str] | None = None,
    replace_branch: bool = False,
) -> tuple[dict[str, _Rows], str | None]:
    """Every header line the reply carries, grouped by lookup key; X-Gateway-Auth apart.

    Groups come in :data:`_ORDER` (each typed value first, then extensions
    of that name), then the other extensions in order of first appearance.
    Content-Length is left out (it is recomputed from the body). Every
    name and value is checked: a name must be a token, a value must not
    hold CR, LF or NUL.
    """
    groups: dict[str, _Rows] = {}
    if "via" not in skip:
        vias = message.via
        if vias:
            rows: _Rows = []
            for via in vias:
                via_branch = via.branch
                text = originals.via(via, via_branch)
                if text is None:
                    # The top Via of a forwarded request, which the processor
                    # wrote for edgeport (it is not one the request came with),
                    # gets edgeport's branch when it has none, or always with
                    # ``replace_branch``.
                    branch = None
                    if (
                        not rows
                        and branch_factory is not None
                        and (replace_branch or not via_branch)
                    ):
                        if via_branch:
                            via, via_branch = _without_branch(via), ""
                        branch = branch_factory()
                    text = _via_text(via, via_branch, branch)
                rows.append(("Via", "via", text))
            groups["via"] = rows
    if "route" not in skip:
        routes = message.route
        if routes:
            groups["route"] = [
                ("Route", "route", originals.listed("route", route) or _route_text(route, "Route"))
                for route in routes
            ]
    if "record-route" not in skip:
        record_routes = message.record_route
        if record_routes:
            groups["record-route"] = [
                (
                    "Record-Route",
                    "record-route",
                    originals.listed("record-route", route) or _route_text(route, "Record-Route"),
                )
                for route in record_routes
            ]
    has_field = message.HasField
    if "max-forwards" not in skip and has_field("max_forwards"):
        hops = message.max_forwards.max_forwards
        if not 0 <= hops <= 255:
            raise ReplyError(f"Max-Forwards {hops} out of range")
        groups["max-forwards"] = [("Max-Forwards", "max-forwards", str(hops))]
    if "from" not in skip and has_field("from"):
        header = getattr(message, "from")
        text = originals.single("from", "from", header) or from_to_text(header, "From")
        groups["from"] = [("From", "from", text)]
    if "to" not in skip and has_field("to"):
        header = message.to
        text = originals.single("to", "to", header) or from_to_text(header, "To")
        groups["to"] = [("To", "to", text)]
    if "call-id" not in skip and has_field("call_id"):
        call_id = message.call_id.call_id
        if call_id:
            check_value(call_id, "Call-ID")
            if len(call_id.split()) != 1:
                raise ReplyError("Call-ID holds whitespace")
            groups["call-id"] = [("Call-ID", "call-id", call_id)]
    # CSeq travels as an extension: its group's place is kept here, so the
    # groups come out in _ORDER without sorting them again.
    cseq_rows: _Rows | None = None
    if "cseq" not in skip:
        cseq_rows = groups["cseq"] = []
    if "contact" not in skip and has_field("contact"):
        contact = message.contact
        text = originals.single("contact", "contact", contact) or contact_text(contact)
        groups["contact"] = [("Contact", "contact", text)]
    if "expires" not in skip and has_field("expires"):
        if message.expires.expires < 0:
            raise ReplyError(f"Expires {message.expires.expires} is negative")
        groups["expires"] = [("Expires", "expires", str(message.expires.expires))]
    if "authorization" not in skip and has_field("authorization"):
        credentials = message.authorization
        text = originals.single(
            "authorization", "authorization", credentials
        ) or authorization_text(credentials)
        groups["authorization"] = [("Authorization", "authorization", text)]
    if "www-authenticate" not in skip and has_field("www_authenticate"):
        challenge = message.www_authenticate
        text = originals.single(
            "www-authenticate", "www_authenticate", challenge
        ) or www_authenticate_text(challenge)
        groups["www-authenticate"] = [("WWW-Authenticate", "www-authenticate", text)]

    gateway_auth: str | None = None
    extra: dict[str, _Rows] = {}
    extensions = [(extension.name, extension.value) for extension in message.extensions]
    # Typed values were checked as they were written; an extension is raw text.
    # One scan over every value finds the common case (none holds CR, LF or NUL).
    if _LINE_BREAKER.search("".join([value for _, value in extensions])) is not None:
        for name, value in extensions:
            _extension_key(name)
            if _LINE_BREAKER.search(value) is not None:
                raise ReplyError(f"{name} holds CR, LF or NUL")
    known_keys = _EXTENSION_KEYS
    out_of_order = False
    for name, value in extensions:
        key = known_keys.get(name) or _extension_key(name)
        if key == GATEWAY_AUTH_KEY:
            if gateway_auth is None:
                gateway_auth = value.strip()
            continue
        if key == "content-length" or key in skip:
            continue
        if key in _ORDER_SET:
            same_name = groups.get(key)
            if same_name is None:
                groups[key] = [(name, key, value)]
                out_of_order = True
            else:
                same_name.append((name, key, value))
            continue
        same_name = extra.get(key)
        if same_name is None:
            extra[key] = [(name, key, value)]
        else:
            same_name.append((name, key, value))
    if cseq_rows is not None and not cseq_rows:
        del groups["cseq"]
    if out_of_order:
        groups = {key: groups[key] for key in _ORDER if key in groups}
    groups.update(extra)
    return groups, gateway_auth


def _flatten(groups: Iterable[_Rows]) -> _Rows:
    rows: _Rows = []
    for group in groups:
        rows.extend(group)
    return rows


def _reply_body(message: sipmessage_pb2.SIPMessage, original: bytes) -> bytes:
    body = message.body
    return body.encode("utf-8") if body else original


def _reason(message: sipmessage_pb2.SIPMessage) -> str | None:
    reason = message.reason_phrase
    return check_value(reason, "reason phrase") if reason else None


@reply_errors
def build_answer(
    reply: processor_pb2.MessageResponse,
    request: Request,
    *,
    to_tag: str,
    sent: sipmessage_pb2.SIPMessage | None = None,
) -> Response:
    """Answer ``request`` as the reply's ``response_type`` says (contract §4).

    The status is the ResponseType's code; a class value (CLIENT_ERROR...) is
    its x00 code unless ``reply.metadata["statusCode"]`` names a code of that
    class. Via, From, To (tagged with ``to_tag`` unless 100 or already
    tagged), Call-ID and CSeq come from the request (RFC 3261 §8.2.6.2);
    every other header the reply carries is added; the body is the reply's.
    ``sent`` is the SIPMessage made from the request, when the caller kept
    it (an echoed Contact is then recognised without converting it again).
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
    groups, _ = _header_groups(message, _Originals(request, sent), skip=_FROM_REQUEST_IN_ANSWER)
    headers = response.headers
    for name, _, value in _flatten(groups.values()):
        headers.add(name, value)
    if message.body:
        response.body = message.body.encode("utf-8")
    return response


@reply_errors
def build_forward_request(
    reply: processor_pb2.MessageResponse,
    original: Request,
    *,
    branch_factory: Callable[[], str],
    sent: sipmessage_pb2.SIPMessage | None = None,
    replace_branch: bool = False,
) -> ForwardedRequest:
    """The request to forward, as the reply with ``request_uri`` describes it (contract §4).

    Method from the original; Request-URI from the reply; the header set is
    exactly the reply's (typed fields and extensions; CSeq is an
    extension), plus ``Max-Forwards: 70`` when the reply has none (RFC 3261
    §16.6 step 3); X-Gateway-Auth is taken out and returned apart; the body
    is the reply's when not empty, else the original bytes. A top Via the
    processor added (not one of the original's) gets ``branch_factory()``
    when it has no branch, and with ``replace_branch`` whatever it has
    (edgeport's branch carries its loop mark and, with workers, the worker
    that holds the transaction). Raises ReplyError for a
    reply without request_uri, without one of Via, From, To, Call-ID and
    CSeq, or with a value that cannot go on the wire.
    """
    message = reply.message
    if message.WhichOneof("message_type") != "request_uri":
        raise ReplyError("the reply does not set request_uri")
    originals = _Originals(original, sent)
    # An unchanged Request-URI keeps what the protobuf cannot hold (tel:, ;ob...).
    uri = originals.request_uri(message.request_uri) or sip_uri(message.request_uri, "Request-URI")
    groups, gateway_auth = _header_groups(
        message, originals, branch_factory=branch_factory, replace_branch=replace_branch
    )
    for key in _REQUIRED_IN_REQUEST:
        if key not in groups:
            raise ReplyError(f"the reply has no {_CANONICAL.get(key, 'CSeq')}")
    if "max-forwards" not in groups:
        groups["max-forwards"] = [("Max-Forwards", "max-forwards", str(DEFAULT_MAX_FORWARDS))]
        groups = {key: groups[key] for key in _ordered_keys(groups)}
    request = Request(
        original.method,
        uri,
        Headers.from_keyed(_flatten(groups.values())),
        _reply_body(message, original.body),
    )
    return ForwardedRequest(request, gateway_auth)


def _ordered_keys(groups: dict[str, _Rows]) -> list[str]:
    known = [key for key in _ORDER if key in groups]
    return known + [key for key in groups if key not in _ORDER]


@reply_errors
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
    groups, _ = _header_groups(message, _Originals(original, sent))
    replaced = frozenset(groups)
    if "via" not in groups:
        raise ReplyError("the reply has no Via")
    if cseq is not None:
        groups["cseq"] = [("CSeq", "cseq", check_value(cseq, "CSeq"))]
    items: _Rows = []
    items.extend(groups.pop("via"))
    for row in original.headers.keyed_items():
        key = row[1]
        if key == "via" or key == "content-length":
            continue
        if key in groups:
            items.extend(groups.pop(key))
        elif key not in _REPLY_ONLY_IN_RESPONSE and key not in replaced:
            items.append(row)
    items.extend(_flatten(groups.values()))
    reason = _reason(message)
    return Response(
        original.status_code,
        original.reason if reason is None else reason,
        Headers.from_keyed(items),
        _reply_body(message, original.body),
    )


@reply_errors
def next_hop(request: Request) -> NextHop:
    """Where to send a forwarded request (contract §4; RFC 3261 §16.6 steps 6-7).

    The top Route when it has ``lr``, else the Request-URI. The transport is
    the URI's ``transport`` parameter (``sips:`` means TLS, or WSS over
    WebSocket), UDP by default; an absent port is the transport's default
    (5060, or 5061 for TLS). ``maddr`` is not consulted, and no name is
    resolved here (a ``.invalid`` WebSocket host is the proxy's business).
    Raises ReplyError for a target that is not a SIP URI or names a
    transport edgeport does not speak.
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
    return NextHop(
        target.host.strip("[]"),
        port,
        transport,
        explicit_port=target.port is not None,
        explicit_transport=bool(token),
    )
