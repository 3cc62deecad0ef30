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

On connection transports (TCP, TLS, WS, WSS) edgeport goes further, as
Kamailio's ``force_rport()`` does: with ``force_rport=True`` the top Via gets
``received`` and ``rport`` set to the connection's source whether or not the
client asked for rport (contract §2). Responses travel over the connection
anyway, so the client sees no difference; a Routr location service, which
builds its route from ``received`` and ``rport``, then stores the connection
edgeport holds instead of the client's private address or a browser's
``.invalid`` name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeport.sip.headers import Via

if TYPE_CHECKING:
    from edgeport.sip.message import Request


def _same_host(sent_by: str, source: str) -> bool:
    return sent_by.strip("[]").lower() == source.strip("[]").lower()


def stamp_received(
    request: Request, source_host: str, source_port: int, *, force_rport: bool = False
) -> None:
    """Add ``received`` and fill ``rport`` on the request's top Via, in place.

    ``force_rport``: set both even without an ``rport`` parameter (a request
    received over a connection).
    """
    via = request.top_via
    params = dict(via.params)
    if force_rport or "rport" in params:
        params["rport"] = str(source_port)
        params["received"] = source_host
    elif not _same_host(via.host, source_host):
        params["received"] = source_host
    else:
        return
    request.set_top_via(Via(via.transport, via.host, via.port, params, via.protocol))
