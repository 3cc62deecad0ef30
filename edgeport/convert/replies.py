"""What a processor's ``MessageResponse`` turns into on the wire (contract §4).

- :func:`build_answer`: the reply has ``response_type``; answer the request.
- :func:`build_forward_request`: the reply has ``request_uri``; forward the
  request with exactly the reply's headers.
- :func:`build_forward_response`: forward a downstream response upstream,
  keeping its status code.

The header lines come from :func:`~.reply_headers.header_groups`, which
writes a value the processor returned unchanged as the original text
(:mod:`.originals`); where the forwarded request goes is
:func:`~.next_hop.next_hop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from edgeport.convert.codes import status_for_response_type
from edgeport.convert.originals import Originals
from edgeport.convert.reply_headers import flatten, header_groups, ordered_keys
from edgeport.convert.to_sip import ReplyError, check_value, sip_uri
from edgeport.sip.errors import SipParseError
from edgeport.sip.message import Headers, Request, Response, make_response
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeport._proto import processor_pb2, sipmessage_pb2
    from edgeport.convert.reply_headers import Rows

__all__ = [
    "ForwardedRequest",
    "build_answer",
    "build_forward_request",
    "build_forward_response",
]


# RFC 3261 §16.6 step 3: "If the copy does not contain a Max-Forwards header
# field, the proxy MUST add one with a field value, which SHOULD be 70."
# RFC 3261 §8.1.1: the header fields every request carries (Max-Forwards is added).
_REQUIRED_IN_REQUEST: Final = ("via", "from", "to", "call-id", "cseq")
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


@dataclass(slots=True, init=False)
class ForwardedRequest:
    """A request to send downstream, and the X-Gateway-Auth value taken out of it."""

    request: Request
    gateway_auth: str | None = None

    # Written out (init=False): the compiled build constructs it natively.
    def __init__(self, request: Request, gateway_auth: str | None = None) -> None:
        self.request = request
        self.gateway_auth = gateway_auth


def _reply_body(message: sipmessage_pb2.SIPMessage, original: bytes) -> bytes:
    body = message.body
    return body.encode("utf-8") if body else original


def _reason(message: sipmessage_pb2.SIPMessage) -> str | None:
    reason = message.reason_phrase
    return check_value(reason, "reason phrase") if reason else None


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
    try:
        return _build_answer(reply, request, to_tag, sent)
    except SipParseError as error:
        raise ReplyError(error.reason) from error


def _build_answer(
    reply: processor_pb2.MessageResponse,
    request: Request,
    to_tag: str,
    sent: sipmessage_pb2.SIPMessage | None,
) -> Response:
    message = reply.message
    if message.WhichOneof("message_type") != "response_type":
        raise ReplyError("the reply does not set response_type")
    status = status_for_response_type(message.response_type, reply.metadata)
    if status is None:
        raise ReplyError(f"unknown response_type {message.response_type}")
    response = make_response(
        request, status, _reason(message), to_tag=None if status == 100 else to_tag
    )
    groups, _ = header_groups(message, Originals(request, sent), skip=_FROM_REQUEST_IN_ANSWER)
    headers = response.headers
    for name, _, value in flatten(groups.values()):
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
    try:
        return _build_forward_request(reply, original, branch_factory, sent, replace_branch)
    except SipParseError as error:
        raise ReplyError(error.reason) from error


def _build_forward_request(
    reply: processor_pb2.MessageResponse,
    original: Request,
    branch_factory: Callable[[], str],
    sent: sipmessage_pb2.SIPMessage | None,
    replace_branch: bool,
) -> ForwardedRequest:
    message = reply.message
    if message.WhichOneof("message_type") != "request_uri":
        raise ReplyError("the reply does not set request_uri")
    originals = Originals(original, sent)
    # An unchanged Request-URI keeps what the protobuf cannot hold (tel:, ;ob...).
    uri = originals.request_uri(message.request_uri) or sip_uri(message.request_uri, "Request-URI")
    groups, gateway_auth = header_groups(
        message, originals, branch_factory=branch_factory, replace_branch=replace_branch
    )
    for key in _REQUIRED_IN_REQUEST:
        if key not in groups:
            raise ReplyError(f"the reply has no {_CANONICAL.get(key, 'CSeq')}")
    if "max-forwards" not in groups:
        groups["max-forwards"] = [("Max-Forwards", "max-forwards", str(DEFAULT_MAX_FORWARDS))]
        groups = {key: groups[key] for key in ordered_keys(groups)}
    request = Request(
        original.method,
        uri,
        Headers.from_keyed(flatten(groups.values())),
        _reply_body(message, original.body),
    )
    return ForwardedRequest(request, gateway_auth)


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
    try:
        return _build_forward_response(reply, original, cseq, sent)
    except SipParseError as error:
        raise ReplyError(error.reason) from error


def _build_forward_response(
    reply: processor_pb2.MessageResponse,
    original: Response,
    cseq: str | None,
    sent: sipmessage_pb2.SIPMessage | None,
) -> Response:
    message = reply.message
    groups, _ = header_groups(message, Originals(original, sent))
    replaced = frozenset(groups)
    if "via" not in groups:
        raise ReplyError("the reply has no Via")
    if cseq is not None:
        groups["cseq"] = [("CSeq", "cseq", check_value(cseq, "CSeq"))]
    items: Rows = []
    items.extend(groups.pop("via"))
    for row in original.headers.keyed_items():
        key = row[1]
        if key == "via" or key == "content-length":
            continue
        if key in groups:
            items.extend(groups.pop(key))
        elif key not in _REPLY_ONLY_IN_RESPONSE and key not in replaced:
            items.append(row)
    items.extend(flatten(groups.values()))
    reason = _reason(message)
    return Response(
        original.status_code,
        original.reason if reason is None else reason,
        Headers.from_keyed(items),
        _reply_body(message, original.body),
    )
