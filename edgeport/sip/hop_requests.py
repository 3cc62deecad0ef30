"""The requests a client transaction builds from the one it sent, sans-IO: the ACK
of a non-2xx final response (RFC 3261 §17.1.1.3) and a CANCEL (§9.1)."""

from __future__ import annotations

from typing import Final

from edgeport.sip.message import Headers, Request, Response

__all__ = ["DEFAULT_MAX_FORWARDS", "build_ack", "build_cancel"]

# RFC 3261 §8.1.1.6: a request a UAC builds sets Max-Forwards; 70 is the SHOULD value.
DEFAULT_MAX_FORWARDS: Final = 70  # RFC 3261 §8.1.1.6: SHOULD be 70


def _hop_request(original: Request, method: str, to_value: str) -> Request:
    headers = Headers()
    headers.add("Via", str(original.top_via))
    for route in original.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
    from_value = original.headers.get("From")
    if from_value is None:
        raise ValueError("the original request has no From header")
    headers.add("From", from_value)
    headers.add("To", to_value)
    headers.add("Call-ID", original.call_id)
    headers.add("CSeq", f"{original.cseq.seq} {method}")
    return Request(method, original.uri, headers)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a non-2xx final response.

    RFC 3261 §17.1.1.3: "The ACK request constructed by the client transaction
    MUST contain values for the Call-ID, From, and Request-URI that are equal
    to the values of those header fields in the request passed to the
    transport by the client transaction ... The To header field in the ACK
    MUST equal the To header field in the response being acknowledged ...
    The ACK MUST contain a single Via header field, and this MUST be equal to
    the top Via header field of the original request. The CSeq header field
    in the ACK MUST contain the same value for the sequence number as was
    present in the original request, but the method parameter MUST be equal
    to "ACK". ... If the INVITE request whose response is being acknowledged
    had Route header fields, those header fields MUST appear in the ACK."
    """
    to_value = response.headers.get("To")
    if to_value is None:
        raise ValueError("the response has no To header")
    return _hop_request(invite, "ACK", to_value)


def build_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite``.

    RFC 3261 §9.1: "The Request-URI, Call-ID, To, the numeric part of CSeq,
    and From header fields in the CANCEL request MUST be identical to those
    in the request being cancelled, including tags. A CANCEL constructed by a
    client MUST have only a single Via header field value matching the top
    Via value in the request being cancelled." and "If the request being
    cancelled contains a Route header field, the CANCEL request MUST include
    that Route header field's values."
    """
    to_value = invite.headers.get("To")
    if to_value is None:
        raise ValueError("the INVITE has no To header")
    return _hop_request(invite, "CANCEL", to_value)
