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

from typing import TYPE_CHECKING, Final

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert.codes import method_value, response_type_for_status
from edgeport.sip.message import Request, Response
from edgeport.sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from collections.abc import Iterable

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

# Header names (canonical spelling) that map to typed fields. Content-Length
# is typed from the body itself (the parser already framed the body by it).
_VIA: Final = "Via"
_ROUTE: Final = "Route"
_RECORD_ROUTE: Final = "Record-Route"
_CONTACT: Final = "Contact"
_FROM: Final = "From"
_TO: Final = "To"
_CALL_ID: Final = "Call-ID"
_CONTENT_LENGTH: Final = "Content-Length"
_EXPIRES: Final = "Expires"
_MAX_FORWARDS: Final = "Max-Forwards"
_WWW_AUTHENTICATE: Final = "WWW-Authenticate"
_AUTHORIZATION: Final = "Authorization"
_TYPED: Final = frozenset(
    {
        _VIA,
        _ROUTE,
        _RECORD_ROUTE,
        _CONTACT,
        _FROM,
        _TO,
        _CALL_ID,
        _CONTENT_LENGTH,
        _EXPIRES,
        _MAX_FORWARDS,
        _WWW_AUTHENTICATE,
        _AUTHORIZATION,
    }
)


def fill_sip_uri(out: sipmessage_pb2.SipURI, uri: Uri) -> None:
    """Write ``uri`` into ``out`` (an empty SipURI message)."""
    if isinstance(uri, SipUri):
        if uri.user is not None:
            out.user = uri.user
        if uri.password is not None:
            out.user_password = uri.password
        out.host = uri.host
        out.port = _ABSENT if uri.port is None else uri.port
        params = uri.params
        if params:
            value = params.get("transport")
            if value:
                out.transport_param = value
            value = params.get("maddr")
            if value:
                out.m_addr_param = value
            value = params.get("method")
            if value:
                out.method_param = value
            value = params.get("user")
            if value:
                out.user_param = value
            ttl = uri.ttl if "ttl" in params else None
            out.ttl_param = _ABSENT if ttl is None else min(ttl, _INT32_MAX)
            if "lr" in params:
                out.lr_param = True
            if "bnc" in params:
                out.bnc_param = True
        else:
            out.ttl_param = _ABSENT
        if uri.scheme == "sips":
            out.secure = True
        return
    out.port = _ABSENT
    out.ttl_param = _ABSENT
    if uri.scheme == _TEL_SCHEME:
        # RFC 3261 §19.1.6: tel:+1555;phone-context=example.com is
        # sip:+1555;phone-context=example.com@example.com;user=phone.
        number, _, rest = uri.value.partition(";")
        out.user = number
        out.user_param = "phone"
        for param in rest.split(";"):
            name, _, value = param.partition("=")
            if name.lower() == "phone-context" and value and not value.startswith("+"):
                out.host = value


def fill_address(out: sipmessage_pb2.Address, addr: NameAddr) -> None:
    if addr.wildcard:
        out.wildcard = True
        out.uri.port = _ABSENT
        out.uri.ttl_param = _ABSENT
        return
    if addr.display_name:
        out.display_name = addr.display_name
    fill_sip_uri(out.uri, addr.uri)


def _fill_parameters(out: dict[str, str] | object, params: dict[str, str | None]) -> None:
    for name, value in params.items():
        out[name] = "" if value is None else value  # type: ignore[index]


def fill_via(out: sipmessage_pb2.Via, via: Via) -> None:
    out.host = via.host
    out.port = _ABSENT if via.port is None else via.port
    out.transport = via.transport
    params = via.params
    branch = params.get("branch")
    if branch:
        out.branch = branch
    if "rport" in params:
        out.r_port_flag = True
        rport = via.rport
        out.r_port = _ABSENT if rport is None else rport
    else:
        out.r_port = _ABSENT
    received = params.get("received")
    if received:
        out.received = received
    maddr = params.get("maddr")
    if maddr:
        out.m_addr = maddr
    ttl = via.ttl if "ttl" in params else None
    out.ttl = _ABSENT if ttl is None else min(ttl, _INT32_MAX)


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

    Raises ValueError for a response whose status has no ResponseType
    (a provisional code without a value: see ``should_send_response``), and
    SipParseError when a typed header is malformed.
    """
    out = sipmessage_pb2.SIPMessage()
    fill_sip_message(out, msg)
    return out


def fill_sip_message(out: sipmessage_pb2.SIPMessage, msg: Request | Response) -> None:
    """:func:`to_sip_message` into an empty ``SIPMessage`` (no copy of a finished one)."""
    if isinstance(msg, Request):
        fill_sip_uri(out.request_uri, msg.uri)
    else:
        response_type = response_type_for_status(msg.status_code)
        if response_type is None:
            raise ValueError(f"status {msg.status_code} has no ResponseType")
        out.response_type = response_type  # type: ignore[assignment]
        out.reason_phrase = msg.reason
    extensions = out.extensions
    seen: set[str] = set()
    for name, value in msg.headers.canonical_items():
        if name not in _TYPED:
            extensions.add(name=name, value=value)
            continue
        first = name not in seen
        if name == _VIA:
            if first:
                # One Via line holding one value (most requests): the top Via the
                # parser already checked is the whole list; no second parse.
                if "," not in value and len(msg.headers.get_all(_VIA)) == 1:
                    fill_via(out.via.add(), msg.top_via)
                else:
                    for via in msg.via:
                        fill_via(out.via.add(), via)
        elif name == _CONTACT:
            if first:
                contacts = msg.contacts
                if contacts:
                    fill_contact(out.contact, contacts[0])
                # edgeport does better: later Contact values (of this line and
                # of later Contact lines) travel as extensions, here.
                for contact in contacts[1:]:
                    extensions.add(name=_CONTACT, value=str(contact))
        elif name == _ROUTE:
            if first:
                for addr in msg.routes:
                    fill_route(out.route.add(), addr)
        elif name == _RECORD_ROUTE:
            if first:
                for addr in msg.record_routes:
                    fill_route(out.record_route.add(), addr)
        elif not first:
            if name != _CONTENT_LENGTH:
                # A second line of a single-valued header (two challenges, say).
                extensions.add(name=name, value=value)
        elif name == _FROM:
            fill_from_to(getattr(out, "from"), msg.from_)
        elif name == _TO:
            fill_from_to(out.to, msg.to)
        elif name == _CALL_ID:
            out.call_id.call_id = msg.call_id
        elif name == _EXPIRES:
            expires = msg.expires
            if expires is not None:
                out.expires.expires = min(expires, _INT32_MAX)
        elif name == _MAX_FORWARDS:
            max_forwards = msg.max_forwards
            if max_forwards is not None:
                out.max_forwards.max_forwards = max_forwards
        elif name == _WWW_AUTHENTICATE:
            challenge = msg.www_authenticate
            if challenge is not None:
                fill_challenge(out.www_authenticate, challenge)
        elif name == _AUTHORIZATION:
            credentials = msg.authorization
            if credentials is not None:
                fill_credentials(out.authorization, credentials)
        seen.add(name)
    out.content_length.content_length = len(msg.body)
    if msg.body:
        out.body = body_text(msg.body)


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
        carries ``metadata["statusCode"]``. Raises ValueError for a response
        that is not sent to the processor (``should_send_response`` is
        False), SipParseError for a malformed typed header.
        """
        request = processor_pb2.MessageRequest()
        request.CopyFrom(self._template)
        request.ref = msg.call_id
        request.sender.CopyFrom(sender)
        fill_sip_message(request.message, msg)
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
