"""Checks edgeport makes on a new request before any processor sees it.

- ``spec.methods`` with ``spec.unknownMethodAction``: Discard drops a request
  whose method is not accepted, Respond answers 405 with an Allow header
  (RFC 3261 §21.4.6: "The response MUST include an Allow header field
  containing a list of valid methods for the indicated address").
- Max-Forwards: RFC 3261 §16.3 step 3: "If the Max-Forwards value reaches 0,
  the proxy MUST NOT forward the request ... the element MAY act as a UAS for
  an OPTIONS request". edgeport answers 483 Too Many Hops; an OPTIONS addressed
  to edgeport itself is answered locally anyway.
- Proxy-Require: RFC 3261 §16.3 step 5: "If the request contains a
  Proxy-Require header field with one or more option-tags this element does
  not understand, the element MUST return a 420 (Bad Extension) response.
  The response MUST include an Unsupported header field listing those
  option-tags". edgeport understands none.
- OPTIONS addressed to the EdgePort itself (no user part, host one of its
  own addresses) is answered 200 with Allow, so trunks that qualify the edge
  see it up without a processor round trip.
- Loops: RFC 3261 §16.3 step 4, a request that carries edgeport's own Via
  with the loop mark of this very request has looped (482 Loop Detected);
  see :mod:`edgeport.sip.loops`.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from edgeport.config import UnknownMethodAction
from edgeport.sip.uri import SipUri

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from edgeport.sip.message import Request


class Verdict(enum.Enum):
    """What to do with a new request before the processor."""

    PROCESS = "process"
    DISCARD = "discard"
    METHOD_NOT_ALLOWED = "405"
    TOO_MANY_HOPS = "483"
    BAD_EXTENSION = "420"
    ANSWER_OPTIONS = "options"
    LOOP_DETECTED = "482"


def own_hosts(
    listening_hosts: Iterable[str], external_addrs: Iterable[str], extra: Iterable[str] = ()
) -> frozenset[str]:
    """Every host name or address that means "this EdgePort", lower-cased, unbracketed.

    An external address may carry a port (``203.0.113.1:5060``); only the host counts.
    """
    hosts: set[str] = set()
    for value in (*listening_hosts, *external_addrs, *extra):
        host = value.strip()
        if host.startswith("["):
            host = host[1 : host.find("]")] if "]" in host else host[1:]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if host:
            hosts.add(host.lower())
    return frozenset(hosts)


def is_addressed_to_edge(request: Request, edge_hosts: Collection[str]) -> bool:
    """True for a Request-URI without a user part whose host is one of ours."""
    uri = request.uri
    if not isinstance(uri, SipUri) or uri.user:
        return False
    return uri.host.strip("[]").lower() in edge_hosts


def check_request(
    request: Request,
    *,
    methods: Collection[str],
    unknown_method_action: UnknownMethodAction,
    edge_hosts: Collection[str],
    has_looped: Callable[[Request], bool],
) -> Verdict:
    """The verdict for a new (non-ACK, non-retransmitted) request; ``has_looped``
    tells whether it carries edgeport's own loop mark (``edgeport.sip.loops``)."""
    if request.method != "CANCEL" and has_looped(request):
        return Verdict.LOOP_DETECTED
    if request.method == "OPTIONS" and is_addressed_to_edge(request, edge_hosts):
        return Verdict.ANSWER_OPTIONS
    if request.method not in methods:
        if unknown_method_action is UnknownMethodAction.RESPOND:
            return Verdict.METHOD_NOT_ALLOWED
        return Verdict.DISCARD
    max_forwards = request.max_forwards
    if max_forwards is not None and max_forwards <= 0:
        return Verdict.TOO_MANY_HOPS
    if unsupported_proxy_options(request):
        return Verdict.BAD_EXTENSION
    return Verdict.PROCESS


def unsupported_proxy_options(request: Request) -> list[str]:
    """The option-tags of Proxy-Require; edgeport supports no proxy extension."""
    tags: list[str] = []
    for value in request.headers.get_all("Proxy-Require"):
        tags.extend(tag.strip() for tag in value.split(",") if tag.strip())
    return tags
