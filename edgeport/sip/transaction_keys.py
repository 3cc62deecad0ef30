"""Matching messages to transactions, sans-IO: the keys of RFC 3261 §17.1.3 and §17.2.3.

A server transaction's key comes from its request's top Via (the branch,
the sent-by, the method; an ACK maps to its INVITE), or for a request
without a RFC 3261 branch from the RFC 2543 fields; a CANCEL finds the
INVITE it cancels (§9.2). A client transaction's key is its branch and
method.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from edgeport.sip.message import Request, Response

__all__ = [
    "MAGIC_COOKIE",
    "ClientKey",
    "ServerKey",
    "client_key",
    "key_size",
    "matching_invite_key",
    "server_key",
]

# RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this
# specification MUST always begin with the characters "z9hG4bK"."
MAGIC_COOKIE: Final = "z9hG4bK"

ServerKey: TypeAlias = tuple[str | int | None, ...]
ClientKey: TypeAlias = tuple[str, str]


def _server_key(request: Request, method: str) -> ServerKey:
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        # RFC 3261 §17.2.3: "1. the branch parameter in the request is equal to the
        # one in the top Via header field of the request that created the
        # transaction, and 2. the sent-by value in the top Via of the request is
        # equal to the one in the request that created the transaction, and 3. the
        # method of the request matches the one that created the transaction,
        # except for ACK, where the method of the request that created the
        # transaction is INVITE."
        return ("3261", branch, via.host.lower(), via.port, method)
    # RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq and top Via.
    # The To tag of an ACK is the one of the response, not of the INVITE, so
    # it is left out of INVITE keys (the rest still pins the transaction).
    to_tag = None if method == "INVITE" else request.to.tag
    return (
        "2543",
        str(request.uri),
        to_tag,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        via.transport.upper(),
        via.host.lower(),
        via.port,
        branch,
        method,
    )


def server_key(request: Request) -> ServerKey:
    """The server transaction ``request`` belongs to; an ACK maps to its INVITE.

    Raises SipParseError when the request lacks the headers matching needs.
    """
    method = "INVITE" if request.method == "ACK" else request.method
    return _server_key(request, method)


def matching_invite_key(cancel: Request) -> ServerKey:
    """The key of the INVITE server transaction ``cancel`` cancels.

    RFC 3261 §9.2: "the CANCEL request ... matches a transaction ... using the
    procedures of Section 17.2.3 ... except that the method of the request
    that created the transaction is INVITE".
    """
    return _server_key(cancel, "INVITE")


def client_key(message: Request | Response) -> ClientKey:
    """The client transaction of a request sent, or of a response received.

    RFC 3261 §17.1.3: the response's top Via branch matches the request's, and
    "the method of the CSeq matches the method of the request that created the
    transaction. The method is needed since a CANCEL request constitutes a
    different transaction, but shares the same value of the branch parameter."
    """
    branch = message.top_via.branch or ""
    method = message.method if isinstance(message, Request) else message.cseq.method
    return (branch, method)


def key_size(key: ServerKey | ClientKey) -> int:
    """The characters of a key's strings: what keeping the key holds, besides the tuple."""
    size = 0
    for part in key:
        if isinstance(part, str):
            size += len(part)
    return size
