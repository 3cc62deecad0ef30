"""Stamping the top Via of a received request with where it really came from.

RFC 3261 §18.2.1: "If the host portion of the "sent-by" parameter contains a
domain name, or if it contains an IP address that differs from the packet
source address, the server MUST add a "received" parameter to that Via header
field value."

RFC 3581 §4: "When a server compliant to this specification (which can be a
proxy or UAS) receives a request, it examines the topmost Via header field
value. If this Via header field value contains an "rport" parameter with no
value, it MUST set the value of the parameter to the source port of the
request." and, in that case, the received parameter is added even when the
address matches.

Processors build registrations from these parameters, so a client behind NAT
is reached where it really is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeport.sip.headers import Via

if TYPE_CHECKING:
    from edgeport.sip.message import Request


def _same_host(sent_by: str, source: str) -> bool:
    return sent_by.strip("[]").lower() == source.strip("[]").lower()


def stamp_received(request: Request, source_host: str, source_port: int) -> None:
    """Add ``received`` and fill ``rport`` on the request's top Via, in place."""
    via = request.top_via
    params = dict(via.params)
    if "rport" in params:
        params["rport"] = str(source_port)
        params["received"] = source_host
    elif not _same_host(via.host, source_host):
        params["received"] = source_host
    else:
        return
    request.set_top_via(Via(via.transport, via.host, via.port, params, via.protocol))
