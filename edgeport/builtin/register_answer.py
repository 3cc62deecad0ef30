"""The registrar's 200 (OK): which bindings it lists, bounded to fit the path.

RFC 3261 §10.3 step 8: "The response MUST contain Contact header field
values enumerating all current bindings. Each Contact value MUST feature an
"expires" parameter indicating its expiration interval chosen by the
registrar." Over a stream (TCP, TLS, WS, WSS) every binding is listed.

Over UDP that rule turns the registrar into a reflector: a query REGISTER
(no Contact, no credentials) from a forged source address would be answered
with every binding of the AOR, many times the request's size, towards a
victim (RFC 3261 §26.1.5 warns of exactly this use of SIP elements). And the
answer cannot move to TCP: RFC 3261 §18.2.2 sends a response over the
transport the request came on. So over UDP the answer lists the bindings
that fit :data:`UDP_ANSWER_BUDGET_BYTES` for the whole datagram, the
1300-byte figure RFC 3261 §18.1.1 uses for a path of unknown MTU: the
binding this REGISTER just made or refreshed always, then the others, most
recently registered first. With Contacts of ordinary length (under 100
bytes) all ten bindings an AOR may hold still fit.

The size of what the EdgePort copies from the request (Via, From, To,
Call-ID, CSeq, RFC 3261 §8.2.6.2) is estimated from the protobuf, header
names in their long form.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageResponse
from edgeport.builtin.edge import format_uri

if TYPE_CHECKING:
    from collections.abc import Sequence

    from edgeport._proto.processor_pb2 import MessageRequest

logger = logging.getLogger(__name__)

UDP_ANSWER_BUDGET_BYTES: Final = 1300  # RFC 3261 §18.1.1, the whole datagram
# What the EdgePort adds around the copied lines: the status line, the
# To tag (12 hex digits), Content-Length and the empty line, with room to spare.
_ANSWER_FRAME_BYTES: Final = 80
_CRLF: Final = 2
_EXPIRES_PARAM_BYTES: Final = len(";expires=86400")

Listed = tuple[sipmessage_pb2.SipURI, int]  # a binding's Contact and its remaining seconds


def register_ok(request: MessageRequest, bindings: Sequence[Listed]) -> MessageResponse:
    """``OK`` listing ``bindings`` (in that order), cut to the UDP budget over UDP.

    The first binding is listed whatever its size: the caller puts the one
    the REGISTER carried first.
    """
    listed = list(bindings)
    if request.sender.transport == common_pb2.Transport.UDP:
        listed = fit_datagram(request.message, listed)
        if len(listed) < len(bindings):
            logger.debug(
                "REGISTER over UDP for call %s: %d of %d bindings fit the answer",
                request.ref,
                len(listed),
                len(bindings),
            )
    out = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
    for index, (contact, remaining) in enumerate(listed):
        if index == 0:
            out.contact.address.uri.CopyFrom(contact)
            out.contact.expires = remaining
            out.contact.q_value = -1.0
        else:
            out.extensions.add(name="Contact", value=f"<{format_uri(contact)}>;expires={remaining}")
    return MessageResponse(message=out)


def fit_datagram(message: sipmessage_pb2.SIPMessage, bindings: list[Listed]) -> list[Listed]:
    """The bindings whose Contact lines fit the budget after the copied lines; the first always."""
    room = UDP_ANSWER_BUDGET_BYTES - copied_bytes(message)
    fitting: list[Listed] = []
    for index, binding in enumerate(bindings):
        size = contact_line_bytes(binding[0])
        if index == 0 or size <= room:
            fitting.append(binding)
            room -= size
    return fitting


def contact_line_bytes(contact: sipmessage_pb2.SipURI) -> int:
    """``Contact: <uri>;expires=N`` and its CRLF."""
    return len("Contact: <>") + len(format_uri(contact)) + _EXPIRES_PARAM_BYTES + _CRLF


def copied_bytes(message: sipmessage_pb2.SIPMessage) -> int:
    """An estimate of the request lines the answer repeats, and the frame around them."""
    total = _ANSWER_FRAME_BYTES
    for via in message.via:
        total += len("Via: SIP/2.0/ :65535;branch=;received=;rport=65535") + _CRLF
        total += len(via.transport) + len(via.host) + len(via.branch) + len(via.received)
        total += len(via.m_addr) + (len(";maddr=;ttl=255") if via.m_addr else 0)
    for name, field in (("From", getattr(message, "from")), ("To", message.to)):
        total += len(f'{name}: "" <>') + _CRLF + len(field.address.display_name)
        total += len(format_uri(field.address.uri))
        total += sum(len(key) + len(value) + 2 for key, value in field.parameters.items())
        if field.tag and "tag" not in field.parameters:
            total += len(";tag=") + len(field.tag)
    total += len("Call-ID: ") + len(message.call_id.call_id) + _CRLF
    for extension in message.extensions:
        if extension.name.lower() == "cseq":
            total += len("CSeq: ") + len(extension.value) + _CRLF
    return total
