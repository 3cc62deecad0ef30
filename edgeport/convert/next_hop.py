"""Where a forwarded request goes: the next hop (contract §4; RFC 3261 §16.6 steps 6-7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgeport.convert.errors import reply_errors
from edgeport.convert.to_sip import ReplyError
from edgeport.sip.transport import Transport
from edgeport.sip.uri import SipUri

if TYPE_CHECKING:
    from edgeport.sip.message import Request
    from edgeport.sip.uri import Uri

__all__ = ["NextHop", "next_hop"]


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a forwarded request goes. ``host`` is bare (an IPv6 address without brackets)."""

    host: str
    port: int
    transport: Transport
    # Whether the URI named them (RFC 3263 §4.1, §4.2: an explicit port skips
    # NAPTR and SRV, an explicit transport skips NAPTR). Not part of equality:
    # the hop is the same place either way.
    explicit_port: bool = field(default=True, compare=False)
    explicit_transport: bool = field(default=True, compare=False)


@reply_errors
def next_hop(request: Request) -> NextHop:
    """Where to send a forwarded request (contract §4; RFC 3261 §16.6 steps 6-7).

    The top Route when it has ``lr``, else the Request-URI. The transport is
    the URI's ``transport`` parameter (``sips:`` means TLS, or WSS over
    WebSocket), UDP by default; an absent port is the transport's default
    (5060, or 5061 for TLS). ``maddr`` is not consulted, and no name is
    resolved here (a ``.invalid`` WebSocket host is the proxy's business).
    Raises ReplyError for a target that is not a SIP URI or names a
    transport edgeport does not speak.
    """
    target: Uri = request.uri
    routes = request.routes
    if routes:
        top = routes[0].uri
        if isinstance(top, SipUri) and top.lr:
            target = top
    if not isinstance(target, SipUri):
        raise ReplyError(f"cannot send to a {target.scheme}: URI")
    token = target.transport
    try:
        transport = Transport.UDP if not token else Transport.from_via_token(token)
    except ValueError:
        raise ReplyError(f"unsupported transport {token!r}") from None
    if target.secure:
        # RFC 3261 §26.2.2: a SIPS URI is reached over TLS on every hop.
        if transport in (Transport.UDP, Transport.TCP):
            transport = Transport.TLS
        elif transport is Transport.WS:
            transport = Transport.WSS
    port = target.port if target.port is not None else transport.default_port
    return NextHop(
        target.host.strip("[]"),
        port,
        transport,
        explicit_port=target.port is not None,
        explicit_transport=bool(token),
    )
