"""No header injection from processor replies: every path a reply's text reaches the wire.

A processor reply whose header names or values hold CR, LF or NUL must be
refused (ReplyError, which the proxy turns into a 500 upstream), never
written. Each case puts ``<bad char>X-Injected: 1`` into one field of the
reply and builds it through every builder: an answer, a forwarded request,
a forwarded response. A builder may ignore a field it does not use (an
answer takes its Via from the request); what it writes must then be clean.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgeport._proto import processor_pb2, sipmessage_pb2
from edgeport.convert import (
    ReplyError,
    build_answer,
    build_forward_request,
    build_forward_response,
    to_sip_message,
)
from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from tests.support.ua import sip

RT = sipmessage_pb2.ResponseType

INVITE = sip(
    """INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inj1;rport
Max-Forwards: 70
Route: <sip:edge.example.com;lr>
From: "Alice" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: inj-1@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.10:5060>
Authorization: Digest username="alice", realm="example.com", nonce="n1", uri="sip:b@x", response="1"
Content-Type: application/sdp
Content-Length: 4

v=0
"""
)

OK = sip(
    """SIP/2.0 200 OK
Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-edge
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-inj1;rport=5060
Record-Route: <sip:198.51.100.1;lr>
From: "Alice" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>;tag=b1
Call-ID: inj-1@192.0.2.10
CSeq: 1 INVITE
Contact: <sip:bob@192.0.2.20:5060>
Content-Length: 0

"""
)

Mutation = Callable[[sipmessage_pb2.SIPMessage, str], None]


def _ext(name: str) -> Mutation:
    def change(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
        message.extensions.add(name=name, value=f"v{bad}X-Injected: 1")

    return change


def _ext_name(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
    message.extensions.add(name=f"X-A{bad}X-Injected", value="1")


def _content_type(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
    message.body = "v=0\r\n"
    message.extensions.add(name="Content-Type", value=f"application/sdp{bad}X-Injected: 1")


def _set(path: str) -> Mutation:
    """Set the string field at dotted ``path`` (``from.address.display_name``...)."""

    def change(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
        *parents, leaf = path.split(".")
        target: object = message
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, f"x{bad}X-Injected: 1")

    return change


def _param(header: str) -> Mutation:
    def change(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
        getattr(message, header).parameters["p"] = f"x{bad}X-Injected: 1"

    return change


def _listed(field: str, path: str) -> Mutation:
    def change(message: sipmessage_pb2.SIPMessage, bad: str) -> None:
        entries = getattr(message, field)
        entry = entries[0] if entries else entries.add()
        *parents, leaf = path.split(".")
        target: object = entry
        for name in parents:
            target = getattr(target, name)
        if not getattr(target, "host", "x") and leaf != "host":
            target.host = "example.com"  # type: ignore[attr-defined]
        setattr(target, leaf, f"x{bad}X-Injected: 1")

    return change


MUTATIONS: dict[str, Mutation] = {
    "extension value": _ext("X-Custom"),
    "extension with a typed name (Subject)": _ext("Subject"),
    "extension name": _ext_name,
    "body Content-Type": _content_type,
    "reason phrase": _set("reason_phrase"),
    "body": _set("body"),  # a body may hold anything: only its framing matters
    "From display name": _set("from.address.display_name"),
    "From tag": _set("from.tag"),
    "From parameter": _param("from"),
    "From URI user": _set("from.address.uri.user"),
    "From URI host": _set("from.address.uri.host"),
    "To display name": _set("to.address.display_name"),
    "To tag": _set("to.tag"),
    "To parameter": _param("to"),
    "Contact display name": _set("contact.address.display_name"),
    "Contact URI host": _set("contact.address.uri.host"),
    "Contact URI transport": _set("contact.address.uri.transport_param"),
    "Call-ID": _set("call_id.call_id"),
    "WWW-Authenticate realm": _set("www_authenticate.realm"),
    "WWW-Authenticate nonce": _set("www_authenticate.nonce"),
    "WWW-Authenticate opaque": _set("www_authenticate.opaque"),
    "WWW-Authenticate scheme": _set("www_authenticate.scheme"),
    "Authorization username": _set("authorization.username"),
    "Authorization uri": _set("authorization.uri"),
    "Authorization response": _set("authorization.response"),
    "Via host": _listed("via", "host"),
    "Via branch": _listed("via", "branch"),
    "Via received": _listed("via", "received"),
    "Via transport": _listed("via", "transport"),
    "Route URI host": _listed("route", "address.uri.host"),
    "Route display name": _listed("route", "address.display_name"),
    "Record-Route URI host": _listed("record_route", "address.uri.host"),
}

BAD_CHARACTERS = {"CR": "\r", "LF": "\n", "CRLF": "\r\n", "NUL": "\x00"}


def _reply(message: Request | Response) -> processor_pb2.MessageResponse:
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(to_sip_message(message))
    return reply


def _wire(reply: processor_pb2.MessageResponse) -> processor_pb2.MessageResponse:
    return processor_pb2.MessageResponse.FromString(reply.SerializeToString())


def _build(kind: str, change: Mutation, bad: str) -> bytes:
    if kind == "answer":
        request = parse_message(INVITE)
        assert isinstance(request, Request)
        reply = processor_pb2.MessageResponse()
        reply.message.response_type = RT.OK
        reply.message.contact.address.uri.host = "192.0.2.20"
        reply.message.www_authenticate.realm = "example.com"
        reply.message.authorization.username = "alice"
        change(reply.message, bad)
        return build_answer(_wire(reply), request, to_tag="t1").to_bytes()
    if kind == "forward request":
        request = parse_message(INVITE)
        assert isinstance(request, Request)
        reply = _reply(request)
        reply.message.www_authenticate.realm = "example.com"
        change(reply.message, bad)
        return build_forward_request(
            _wire(reply), request, branch_factory=lambda: "z9hG4bK-new"
        ).request.to_bytes()
    response = parse_message(OK)
    assert isinstance(response, Response)
    reply = _reply(response)
    del reply.message.via[0]
    reply.message.authorization.username = "alice"
    reply.message.www_authenticate.realm = "example.com"
    change(reply.message, bad)
    return build_forward_response(_wire(reply), response).to_bytes()


def _head_is_clean(data: bytes) -> bool:
    head, _, _body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return not any(
        b"\r" in line or b"\n" in line or b"\x00" in line or line.startswith(b"X-Injected")
        for line in lines
    )


@pytest.mark.parametrize("bad", list(BAD_CHARACTERS.values()), ids=list(BAD_CHARACTERS))
@pytest.mark.parametrize("path", list(MUTATIONS))
@pytest.mark.parametrize("kind", ["answer", "forward request", "forward response"])
def test_line_breaks_in_a_reply_never_reach_the_wire(kind: str, path: str, bad: str) -> None:
    change = MUTATIONS[path]
    try:
        data = _build(kind, change, bad)
    except ReplyError:
        return  # refused: the proxy answers 500 upstream
    assert _head_is_clean(data), data


COMMON_WRITTEN = (
    "extension value",
    "extension name",
    "body Content-Type",
    "Contact display name",
    "WWW-Authenticate realm",
)
WRITTEN = [
    *(("answer", path) for path in (*COMMON_WRITTEN, "reason phrase")),
    *(("forward request", path) for path in (*COMMON_WRITTEN, "From display name", "To tag")),
    *(
        ("forward response", path)
        for path in (*COMMON_WRITTEN, "reason phrase", "Call-ID", "To tag", "Via host")
    ),
]


@pytest.mark.parametrize(("kind", "path"), WRITTEN)
def test_written_fields_are_refused_not_mended(kind: str, path: str) -> None:
    """Where a builder writes the field, the reply is refused rather than cleaned up."""
    with pytest.raises(ReplyError):
        _build(kind, MUTATIONS[path], "\r\n")
