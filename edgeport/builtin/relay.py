"""The built-in processor's relay rule: where it lets the EdgePort send a request.

A proxy that forwards to whatever a request names is an open relay: anyone
could make the EdgePort open TCP connections to any host and port (a port
scan of the networks behind it) or send INVITEs to a carrier that trusts its
address (toll fraud). So a request is forwarded only when its next hop — the
top Route when it has ``lr``, else the Request-URI, exactly as the EdgePort
chooses it (contract §4) — is:

a. a registered binding, reached through its route (the address the
   REGISTER came from); the router decides this one itself;
b. a static peer: its host and port;
c. an IP address inside the allowed networks: ``relayTo`` when configured,
   else the ``localnets`` the MessageRequest carries (contract §3). Host
   names are not resolved here, so a name is never inside a network;
d. a WebSocket client's ``.invalid`` host over WS or WSS: the EdgePort only
   reaches it over the connection it was seen on and never opens one;
e. for an in-dialog request (To tag) only, a hop remembered for its Call-ID
   (``dialogs.py``): the Contact and Record-Route values a trusted party gave
   in a dialog this processor routed.

Anything else is answered ``403 Not Relaying`` (RFC 3261 §21.4.4: "The server
understood the request, but is refusing to fulfill it. Authorization will
not help"), with a rate-limited log line naming the Call-ID and the target.

Trusted parties: a static peer's host, or an address inside the allowed
networks. What they say about a dialog is remembered when it names a hop
outside b and c:

- the Contact and Record-Routes of a dialog-creating or target-refresh
  request (RFC 3261 §12.2: INVITE; RFC 3311 UPDATE; RFC 6665 SUBSCRIBE,
  NOTIFY; RFC 3515 REFER) whose sender is trusted, e.g. a carrier's INVITE;
- the same of a response (1xx with a To tag, or 2xx) to such a request
  that this processor forwarded to a destination allowed by b, c or e, when
  the response comes from that destination's address (or another trusted
  one; a peer given by a host name is believed from any address), e.g. a
  carrier's 200 whose Contact is a media gateway elsewhere.

A registered client is not trusted, nor is a WebSocket client: anyone can
register or connect. Their dialogs reach them through their binding or
connection, and what they write in a Contact is never remembered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.dialogs import DialogTargets, ForwardKey, Hop, TrustedForwards
from edgeport.builtin.edge import format_uri, normalise_host, uri_port, uri_transport
from edgeport.ip import parse_ip
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.uri import is_websocket_alias

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from edgeport.builtin.config import StaticPeer
    from edgeport.builtin.edge import EdgeView, Network

logger = logging.getLogger(__name__)

REFUSED_REASON: Final = "Not Relaying"
# RFC 3261 §12.2 and the extensions named in the module docstring.
TARGET_REFRESH: Final = frozenset(
    {Method.INVITE, Method.UPDATE, Method.SUBSCRIBE, Method.NOTIFY, Method.REFER}
)
WEBSOCKET_TRANSPORTS: Final = frozenset({common_pb2.Transport.WS, common_pb2.Transport.WSS})
_PROVISIONAL: Final = range(101, 200)  # 100 Trying never carries a dialog
_SUCCESS: Final = range(200, 300)
_RESPONSE_CODES: Final[Mapping[int, int]] = {  # ResponseType -> status, when no statusCode
    sipmessage_pb2.ResponseType.RINGING: 180,
    sipmessage_pb2.ResponseType.CALL_IS_BEING_FORWARDED: 181,
    sipmessage_pb2.ResponseType.QUEUED: 182,
    sipmessage_pb2.ResponseType.SESSION_PROGRESS: 183,
    sipmessage_pb2.ResponseType.SUCCESS: 200,
    sipmessage_pb2.ResponseType.OK: 200,
    sipmessage_pb2.ResponseType.ACCEPTED: 202,
}


def next_hop(message: sipmessage_pb2.SIPMessage) -> sipmessage_pb2.SipURI:
    """Where the EdgePort sends this request: the top Route when it has ``lr``, else the
    Request-URI (contract §4)."""
    if message.route and message.route[0].address.uri.lr_param:
        return message.route[0].address.uri
    return message.request_uri


def call_id_of(request: MessageRequest) -> str:
    return request.message.call_id.call_id or request.ref


class RelayPolicy:
    """Rules b-e of the module docstring, and the dialog memory behind rule e."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        peers: Mapping[str, StaticPeer] | None = None,
        relay_to: Sequence[Network] | None = None,
    ) -> None:
        known = (peers or {}).values()
        self._peer_hops: frozenset[Hop] = frozenset(
            (normalise_host(peer.host), peer.port) for peer in known
        )
        self._peer_hosts = frozenset(host for host, _ in self._peer_hops)
        self._relay_to = tuple(relay_to) if relay_to is not None else None
        self.dialogs = DialogTargets(clock)
        self.forwards = TrustedForwards(clock)
        self._refusals = RateLimitedLog(logger)
        for network in self._relay_to or ():
            if network.prefixlen == 0:
                logger.warning("relay allowed to %s: every address of that family", network)

    def networks(self, edge: EdgeView) -> Sequence[Network]:
        """``relayTo`` when configured, else the EdgePort's localnets."""
        return self._relay_to if self._relay_to is not None else edge.networks

    def trusts(self, host: str, edge: EdgeView) -> bool:
        """A trusted party: a static peer's host, or an IP inside the allowed networks."""
        host = normalise_host(host)
        return host in self._peer_hosts or self._in_networks(host, edge)

    def _allowed_hop(self, hop: Hop, edge: EdgeView) -> bool:
        """Rules b and c."""
        return hop in self._peer_hops or self._in_networks(hop[0], edge)

    def _in_networks(self, host: str, edge: EdgeView) -> bool:
        address = parse_ip(host)
        return address is not None and any(address in net for net in self.networks(edge))

    def permits(
        self,
        request: MessageRequest,
        hop: sipmessage_pb2.SipURI,
        edge: EdgeView,
        *,
        in_dialog: bool,
    ) -> bool:
        """Rules b-e for the next hop of a request the router did not send to a binding."""
        host = normalise_host(hop.host)
        if is_websocket_alias(host):
            return uri_transport(hop) in WEBSOCKET_TRANSPORTS
        target = (host, uri_port(hop))
        if self._allowed_hop(target, edge):
            return True
        return in_dialog and self.dialogs.allows(call_id_of(request), target)

    def refuse(self, request: MessageRequest, hop: sipmessage_pb2.SipURI) -> MessageResponse:
        """403 Not Relaying, and a log line a flood cannot multiply."""
        sender = request.sender
        self._refusals.warning(
            "relay refused: %s for call %s from %s:%s to %s (not a registered contact, "
            "static peer or allowed network)",
            Method.Name(request.method),
            call_id_of(request),
            sender.host,
            sender.port,
            format_uri(hop),
        )
        return MessageResponse(
            message=sipmessage_pb2.SIPMessage(
                response_type=sipmessage_pb2.ResponseType.FORBIDDEN, reason_phrase=REFUSED_REASON
            )
        )

    # -- learning dialogs ---------------------------------------------------

    def note_request(self, request: MessageRequest, edge: EdgeView) -> None:
        """A request being forwarded: a trusted sender's Contact becomes a hop of its dialog."""
        if request.method in TARGET_REFRESH and self.trusts(request.sender.host, edge):
            self._remember(request, edge)

    def note_trusted_forward(self, request: MessageRequest, hop: sipmessage_pb2.SipURI) -> None:
        """A request forwarded under rule b, c or e: its responses may teach a dialog's hops.

        Not under rule d: a WebSocket client is anyone who connected.
        """
        host = normalise_host(hop.host)
        key = forward_key(request)
        if key is not None and request.method in TARGET_REFRESH and not is_websocket_alias(host):
            self.forwards.record(key, host)

    def note_response(self, request: MessageRequest, edge: EdgeView) -> None:
        """A response: remembered when it answers a trusted forward, from a trusted address."""
        if request.method not in TARGET_REFRESH:
            return
        status = status_of(request)
        message = request.message
        if not (status in _SUCCESS or (status in _PROVISIONAL and message.to.tag)):
            return
        key = forward_key(request)
        forwarded_to = self.forwards.host_for(key) if key is not None else None
        if forwarded_to is None:
            return
        sender = normalise_host(request.sender.host)
        # A peer given by name cannot be compared with an address: its name vouches.
        named_peer = parse_ip(forwarded_to) is None and forwarded_to in self._peer_hosts
        if sender != forwarded_to and not named_peer and not self.trusts(sender, edge):
            return
        self._remember(request, edge)

    def _remember(self, request: MessageRequest, edge: EdgeView) -> None:
        message = request.message
        uris: list[sipmessage_pb2.SipURI] = []
        if message.HasField("contact") and not message.contact.address.wildcard:
            uris.append(message.contact.address.uri)
        uris.extend(rr.address.uri for rr in message.record_route)
        self.dialogs.remember(call_id_of(request), self._outside(uris, edge))

    def _outside(self, uris: Iterable[sipmessage_pb2.SipURI], edge: EdgeView) -> list[Hop]:
        """The hops that rules b-d would not allow anyway (only those need remembering)."""
        hops: list[Hop] = []
        for uri in uris:
            hop = (normalise_host(uri.host), uri_port(uri))
            if not hop[0] or edge.is_self(uri) or is_websocket_alias(hop[0]):
                continue
            if not self._allowed_hop(hop, edge):
                hops.append(hop)
        return hops


def forward_key(request: MessageRequest) -> ForwardKey | None:
    """(Call-ID, CSeq number, method) from the CSeq extension; None when it has none."""
    for extension in request.message.extensions:
        if extension.name.lower() == "cseq":
            number, _, _method = extension.value.strip().partition(" ")
            if number.isdigit():
                return (call_id_of(request), int(number), Method.Name(request.method))
            return None
    return None


def status_of(request: MessageRequest) -> int:
    """A response's status code: ``metadata["statusCode"]`` (contract §1), else its type's."""
    text = request.metadata.get("statusCode", "")
    if text.isdigit():
        return int(text)
    return _RESPONSE_CODES.get(request.message.response_type, 0)
