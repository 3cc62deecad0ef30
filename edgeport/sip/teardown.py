"""The ACK and BYE that end a dialog nobody upstream wants (sans-IO).

When the caller cancelled an INVITE but the callee answered 2xx before the
CANCEL reached it, edgeport has already told the caller 487: the 2xx must not
go upstream, and the callee's call must not stay up. edgeport then acts as
the UAC of that dialog (RFC 3261 §13.2.2.4 and §15): it acknowledges the 2xx
and sends a BYE.

The dialog's route set is the 2xx's Record-Route values that hops *below*
edgeport added, in reverse order (§12.1.2): the forwarded INVITE already
carried the Record-Route values of edgeport and the hops above it, and the
2xx lists those last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeport.sip.headers import split_header_values
from edgeport.sip.message import Headers, Request
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS
from edgeport.sip.uri import parse_uri

if TYPE_CHECKING:
    from edgeport.sip.message import Response


def _route_set(invite: Request, response: Response) -> list[str]:
    recorded = [
        v for line in response.headers.get_all("Record-Route") for v in split_header_values(line)
    ]
    ours = sum(len(split_header_values(line)) for line in invite.headers.get_all("Record-Route"))
    below = recorded[: max(len(recorded) - ours, 0)]
    return list(reversed(below))


def end_dialog(invite: Request, response: Response, *, branch: str) -> tuple[Request, Request]:
    """The ACK for ``response`` (a 2xx to ``invite``) and the BYE that follows it.

    ``invite`` is the request as edgeport sent it downstream (its top Via is
    edgeport's own). Both requests go to the 2xx's Contact, through the route
    set; the ACK keeps the INVITE's CSeq number (§13.2.2.4), the BYE takes
    the next one. Raises SipParseError or ValueError when the 2xx lacks what
    a dialog needs (a To, a Contact).
    """
    contacts = response.contacts
    if not contacts:
        raise ValueError("the 2xx has no Contact")
    target = parse_uri(str(contacts[0].uri))
    to_value = response.headers.get("To")
    from_value = invite.headers.get("From")
    if to_value is None or from_value is None:
        raise ValueError("the 2xx or the INVITE has no To or From")
    routes = _route_set(invite, response)
    via = invite.top_via
    host = f"[{via.host}]" if ":" in via.host and not via.host.startswith("[") else via.host
    sent_by = host if via.port is None else f"{host}:{via.port}"
    seq = invite.cseq.seq
    made: list[Request] = []
    for method, number, suffix in (("ACK", seq, "a"), ("BYE", seq + 1, "b")):
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{via.transport} {sent_by};branch={branch}{suffix}")
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
        headers.add("From", from_value)
        headers.add("To", to_value)
        headers.add("Call-ID", invite.call_id)
        headers.add("CSeq", f"{number} {method}")
        headers.add("Content-Length", "0")
        made.append(Request(method, target, headers))
    return made[0], made[1]
