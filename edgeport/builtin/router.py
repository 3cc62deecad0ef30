"""Decides what happens to each message, the way a Routr processor does (contract §1-4).

Works on protobuf only: a MessageRequest in, a MessageResponse out. A reply
with ``message.response_type`` set makes the EdgePort answer; a reply with
``message.request_uri`` set makes it forward the (altered) request.

Requests
--------
- ``REGISTER`` goes to the registrar (RFC 3261 §10.3). The AOR is the To URI.
  The requested time is the Contact's ``expires`` parameter, else the
  Expires header, else 3600 s (§10.3 step 6 gives the Contact parameter
  precedence). 0 removes that binding; ``Contact: *`` with ``Expires: 0``
  removes them all (anything else with ``*`` is a 400). A Contact or AOR URI
  longer than :data:`MAX_STORED_URI_BYTES` is refused with ``403 Contact Too
  Long``. The reply is ``OK`` with the live bindings as Contacts carrying
  ``;expires=<remaining>`` (the first in the typed field, the rest as
  ``Contact`` extensions): all of them over a stream, those that fit one
  datagram over UDP (``register_answer.py``). Only the first Contact of a
  REGISTER is bound. The binding remembers where the REGISTER really came
  from: the sender's address and transport (contract §3), never a Via
  parameter the client could have written itself.
- Max-Forwards 0 -> ``TOO_MANY_HOPS`` (RFC 3261 §16.3 step 3).
- In-dialog (To tag present: re-INVITE, ACK for 2xx, BYE, NOTIFY...): while
  the top Route is the EdgePort itself, it is removed; the Request-URI is
  kept, so the next hop is the next Route, else the Request-URI. When no
  Route is left and the Request-URI is a registered Contact, the NAT rule
  below applies to it; any other next hop must pass the relay rule
  (``relay.py``), which also knows the hops of the dialogs routed here.
- New requests (and CANCEL, which must reach the same place as its INVITE):
  Routes naming the EdgePort are removed; when another Route remains (a
  preloaded route), the request follows it only when the relay rule allows
  its next hop. Otherwise the target comes from the Request-URI:

  1. a static peer for its user (peers win over registrations);
  2. a registration for its AOR. AORs are domain-insensitive among the
     EdgePort's own addresses: ``sip:alice@10.0.0.1`` and
     ``sip:alice@203.0.113.5`` are the same AOR when both hosts are the
     EdgePort's (see ``edge.py``); any other domain must match exactly;
  3. no user and the URI is the EdgePort: ``OK`` for OPTIONS (keep-alive
     pings), ``NOT_FOUND`` otherwise;
  4. the URI is the EdgePort's (its host, and no port or one the EdgePort
     listens on) but the user is unknown: ``NOT_FOUND``;
  5. anything else (another host, or an EdgePort host with a port it does
     not listen on): forwarded to the Request-URI as it is when the relay
     rule allows it, else ``403 Not Relaying``.

NAT rule for a registered target: the Request-URI becomes the binding's
Contact URI. When the Contact host ends in ``.invalid`` (a WebSocket client,
RFC 7118 §5.2), nothing is added: the EdgePort sends those over the client's
own connection. Otherwise, when the address the REGISTER came from (Via
received/rport, and its transport) differs from the Contact's host, port or
transport, a Route ``<sip:received:rport;transport=x;lr>`` goes on top, so
the EdgePort reaches the client where it really is, reusing its TCP/TLS/WS
connection.

Alterations on every forwarded request, as Routr's processors make them:
the EdgePort's Via on top (the listening point of the outgoing transport,
``branch=z9hG4bK...``, ``rport``); Max-Forwards decremented (70 when absent);
for a new INVITE, SUBSCRIBE or REFER a Record-Route
``<sip:host:port;transport=x;lr>``, or two (each with ``r2=on``, RFC 5658
double record-routing) when the interface towards the caller differs from
the one towards the callee (e.g. WS in, UDP out).

Responses
---------
The top Via (the EdgePort's) is removed; nothing else changes. The relay
rule reads them first: a trusted answer teaches the hops of its dialog.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Final

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method
from edgeport.builtin.edge import (
    EdgeView,
    Interface,
    default_port,
    format_uri,
    normalise_host,
    transport_token,
    uri_port,
    uri_transport,
)
from edgeport.builtin.register_answer import register_ok
from edgeport.builtin.registrar import (
    DEFAULT_EXPIRES,
    MAX_STORED_URI_BYTES,
    Binding,
    Registrar,
    RegistrarFull,
    Source,
    contact_key,
)
from edgeport.builtin.relay import RelayPolicy, next_hop
from edgeport.ratelimit import RateLimitedLog
from edgeport.sip.transaction import DEFAULT_MAX_FORWARDS
from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from edgeport.builtin.config import StaticPeer
    from edgeport.builtin.edge import Network

logger = logging.getLogger(__name__)

ResponseType = sipmessage_pb2.ResponseType

BRANCH_MAGIC_COOKIE: Final = "z9hG4bK"  # RFC 3261 §8.1.1.7
DIALOG_CREATING: Final = frozenset({Method.INVITE, Method.SUBSCRIBE, Method.REFER})
URI_TOO_LONG_REASON: Final = "Contact Too Long"


def random_branch() -> str:
    """RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with
    this specification MUST always begin with the characters "z9hG4bK"."
    """
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(8)


def reply(response_type: sipmessage_pb2.ResponseType) -> MessageResponse:
    """A reply that makes the EdgePort answer with this status."""
    return MessageResponse(message=sipmessage_pb2.SIPMessage(response_type=response_type))


def aor_key(uri: sipmessage_pb2.SipURI, edge: EdgeView) -> str:
    """``user@domain``, with every EdgePort address folded into one domain."""
    host = normalise_host(uri.host)
    return f"{uri.user}@" if edge.is_own_host(host) else f"{uri.user}@{host}"


class Router:
    def __init__(
        self,
        registrar: Registrar,
        *,
        peers: Mapping[str, StaticPeer] | None = None,
        relay_to: Sequence[Network] | None = None,
        branch: Callable[[], str] = random_branch,
    ) -> None:
        """``relay_to``: the networks requests may be relayed to; None means the
        localnets of each request (``relay.py``)."""
        self.registrar = registrar
        self.peers: Mapping[str, StaticPeer] = peers or {}
        self.relay = RelayPolicy(registrar.now, peers=self.peers, relay_to=relay_to)
        self._branch = branch
        self._refusals = RateLimitedLog(logger)

    def process(self, request: MessageRequest) -> MessageResponse:
        kind = request.message.WhichOneof("message_type")
        if kind == "response_type":
            return self._response(request)
        if kind != "request_uri":
            return reply(ResponseType.BAD_REQUEST)
        edge = EdgeView(request)
        if request.method == Method.REGISTER:
            return self._register(request, edge)
        message = request.message
        # RFC 3261 §16.3 step 3: "If the Max-Forwards value is 0, the element
        # MUST NOT forward the request. [...] the element MUST return a 483".
        if message.HasField("max_forwards") and message.max_forwards.max_forwards <= 0:
            return reply(ResponseType.TOO_MANY_HOPS)
        if message.to.tag:
            return self._in_dialog(request, edge)
        return self._new_request(request, edge)

    # -- responses ---------------------------------------------------------

    def _response(self, request: MessageRequest) -> MessageResponse:
        self.relay.note_response(request, EdgeView(request))
        out = sipmessage_pb2.SIPMessage()
        out.CopyFrom(request.message)
        if out.via:
            del out.via[0]
        return MessageResponse(message=out)

    # -- REGISTER ----------------------------------------------------------

    def _register(self, request: MessageRequest, edge: EdgeView) -> MessageResponse:
        message = request.message
        if not message.HasField("to") or not message.to.address.uri.host:
            return reply(ResponseType.BAD_REQUEST)
        aor = aor_key(message.to.address.uri, edge)
        # Logged as the client wrote it: the key drops the domain of a local AOR.
        shown = format_uri(message.to.address.uri)
        if len(shown) > MAX_STORED_URI_BYTES:
            return self._uri_too_long(request, "AOR", shown)
        header_expires = message.expires.expires if message.HasField("expires") else None
        registered: tuple[str, str, int, str] | None = None
        if message.HasField("contact"):
            contact = message.contact
            if contact.address.wildcard:
                # RFC 3261 §10.3 step 6: "If the request has additional Contact
                # fields or an expiration time other than zero, the request is
                # invalid, and the server MUST return a 400 (Invalid Request)".
                if header_expires != 0 or _extra_contacts(message):
                    return reply(ResponseType.BAD_REQUEST)
                self.registrar.remove_all(aor)
                logger.info("unregistered every contact of %s", shown)
            else:
                target = format_uri(contact.address.uri)
                if len(target) > MAX_STORED_URI_BYTES:
                    return self._uri_too_long(request, "Contact", target)
                if contact.expires >= 0:
                    expires = contact.expires
                elif header_expires is not None:
                    expires = header_expires
                else:
                    expires = DEFAULT_EXPIRES
                try:
                    self.registrar.update(aor, contact.address.uri, expires, _source_of(request))
                except RegistrarFull as error:
                    logger.warning("REGISTER for %s refused: %s", shown, error)
                    return reply(ResponseType.SERVICE_UNAVAILABLE)
                registered = contact_key(contact.address.uri)
                logger.info(
                    "%s %s -> %s (expires %s)",
                    "registered" if expires > 0 else "unregistered",
                    shown,
                    target,
                    expires,
                )
        bindings = self.registrar.bindings(aor)
        # The binding this REGISTER made comes first: a datagram answer always lists it.
        bindings.sort(key=lambda binding: contact_key(binding.contact) != registered)
        listed = [(b.contact, self.registrar.remaining(b)) for b in bindings]
        return register_ok(request, listed)

    def _uri_too_long(self, request: MessageRequest, what: str, uri: str) -> MessageResponse:
        """RFC 3261 §21.4.4 403: "The server understood the request, but is refusing
        to fulfill it. Authorization will not help, and the request SHOULD NOT be
        repeated." The URI is well formed (not a 400), and it is neither the body
        (413) nor the Request-URI (414)."""
        self._refusals.info(
            "REGISTER for call %s from %s refused: %s URI of %d bytes (at most %d)",
            request.ref,
            request.sender.host,
            what,
            len(uri),
            MAX_STORED_URI_BYTES,
        )
        refused = reply(ResponseType.FORBIDDEN)
        refused.message.reason_phrase = URI_TOO_LONG_REASON
        return refused

    # -- in-dialog requests ------------------------------------------------

    def _in_dialog(self, request: MessageRequest, edge: EdgeView) -> MessageResponse:
        out = sipmessage_pb2.SIPMessage()
        out.CopyFrom(request.message)
        _pop_self_routes(out, edge)
        if not out.route:
            binding = self.registrar.binding_for_contact(out.request_uri)
            if binding is not None:
                _add_nat_route(out, binding)  # reached where it registered from
                return self._forward(request, out, edge, record_route=False)
        # A To tag alone earns nothing: the hop must be allowed, or one of this dialog's.
        return self._forward_allowed(request, out, edge, record_route=False, in_dialog=True)

    # -- new requests ------------------------------------------------------

    def _new_request(self, request: MessageRequest, edge: EdgeView) -> MessageResponse:
        out = sipmessage_pb2.SIPMessage()
        out.CopyFrom(request.message)
        _pop_self_routes(out, edge)
        record_route = request.method in DIALOG_CREATING
        if out.route:  # a preloaded route
            return self._forward_allowed(
                request, out, edge, record_route=record_route, in_dialog=False
            )
        target = out.request_uri
        peer = self.peers.get(target.user) if target.user else None
        if peer is not None:
            _retarget_to_peer(out, peer)
            return self._forward(
                request, out, edge, record_route=record_route, trusted_hop=next_hop(out)
            )
        # An explicit port the EdgePort does not listen on names another element.
        addressed_to_edge = edge.is_own_host(target.host) and (
            target.port <= 0 or edge.is_self(target)
        )
        if target.user:
            bindings = self.registrar.bindings(aor_key(target, edge))
            if bindings:
                binding = bindings[0]
                out.request_uri.CopyFrom(binding.contact)
                _add_nat_route(out, binding)
                return self._forward(request, out, edge, record_route=record_route)
        elif addressed_to_edge:
            if request.method == Method.OPTIONS:
                return reply(ResponseType.OK)
            return reply(ResponseType.NOT_FOUND)
        if addressed_to_edge:
            logger.info("no route for %s (call %s)", format_uri(target), request.ref)
            return reply(ResponseType.NOT_FOUND)
        return self._forward_allowed(request, out, edge, record_route=record_route, in_dialog=False)

    # -- alterations -------------------------------------------------------

    def _forward_allowed(
        self,
        request: MessageRequest,
        out: sipmessage_pb2.SIPMessage,
        edge: EdgeView,
        *,
        record_route: bool,
        in_dialog: bool,
    ) -> MessageResponse:
        """Forward when the relay rule allows the next hop, else 403 Not Relaying."""
        hop = next_hop(out)
        if not self.relay.permits(request, hop, edge, in_dialog=in_dialog):
            return self.relay.refuse(request, hop)
        return self._forward(request, out, edge, record_route=record_route, trusted_hop=hop)

    def _forward(
        self,
        request: MessageRequest,
        out: sipmessage_pb2.SIPMessage,
        edge: EdgeView,
        *,
        record_route: bool,
        trusted_hop: sipmessage_pb2.SipURI | None = None,
    ) -> MessageResponse:
        """``trusted_hop``: the next hop, when the relay rule (not a binding) allowed it."""
        self.relay.note_request(request, edge)
        if trusted_hop is not None:
            self.relay.note_trusted_forward(request, trusted_hop)
        next_hop_uri = out.route[0].address.uri if out.route else out.request_uri
        outgoing = edge.interface_towards(next_hop_uri.host, uri_transport(next_hop_uri))
        incoming = edge.interface_towards(request.sender.host, request.sender.transport)
        via = sipmessage_pb2.Via(
            host=outgoing.host,
            port=outgoing.port,
            transport=transport_token(outgoing.transport),
            branch=self._branch(),
            r_port_flag=True,
            r_port=-1,
            ttl=-1,
        )
        vias = [via, *out.via]
        del out.via[:]
        out.via.extend(vias)
        if record_route:
            _add_record_routes(out, incoming, outgoing)
        if out.HasField("max_forwards"):
            out.max_forwards.max_forwards -= 1
        else:
            out.max_forwards.max_forwards = DEFAULT_MAX_FORWARDS - 1
        return MessageResponse(message=out)


def _extra_contacts(message: sipmessage_pb2.SIPMessage) -> bool:
    return any(ext.name.lower() in ("contact", "m") for ext in message.extensions)


def _source_of(request: MessageRequest) -> Source:
    """Where a REGISTER came from, to reach the binding there (the NAT rule).

    Host and transport are the sender's: the packet's real source and the
    listener it came in on (contract §3). A Via ``received`` is no proof of
    anything: the EdgePort stamps it only when it must (contract §2), so a
    client over UDP can write its own and bind a Contact to any host. The
    port is the stamped ``rport`` when there is one, else the Via port (RFC
    3261 §18.2.2 answers a client without rport there; it is the sender's
    own host either way), else the sender's port.
    """
    sender = request.sender
    port = sender.port if sender.port > 0 else default_port(sender.transport)
    if request.message.via:
        via = request.message.via[0]
        if via.r_port > 0:
            port = via.r_port
        elif via.port > 0:
            port = via.port
    return Source(host=sender.host, port=port, transport=sender.transport)


def _pop_self_routes(out: sipmessage_pb2.SIPMessage, edge: EdgeView) -> None:
    """RFC 3261 §16.4: "If the first value in the Route header field indicates
    this proxy, the proxy MUST remove that value from the request." Repeated,
    for the two values double record-routing left.
    """
    count = 0
    while count < len(out.route) and edge.is_self(out.route[count].address.uri):
        count += 1
    if count:
        del out.route[:count]


def _add_nat_route(out: sipmessage_pb2.SIPMessage, binding: Binding) -> None:
    contact = binding.contact
    if is_websocket_alias(contact.host):
        return
    source = binding.source
    if (
        normalise_host(contact.host) == normalise_host(source.host)
        and uri_port(contact) == source.port
        and uri_transport(contact) == source.transport
    ):
        return
    route = sipmessage_pb2.Route()
    route.address.uri.CopyFrom(Interface(source.host, source.port, source.transport).route_uri())
    routes = [route, *out.route]
    del out.route[:]
    out.route.extend(routes)


def _retarget_to_peer(out: sipmessage_pb2.SIPMessage, peer: StaticPeer) -> None:
    uri = out.request_uri
    uri.host = peer.host
    uri.port = peer.port
    uri.transport_param = "" if peer.transport is Transport.UDP else peer.transport.value
    uri.secure = False


def _add_record_routes(
    out: sipmessage_pb2.SIPMessage, incoming: Interface, outgoing: Interface
) -> None:
    """One Record-Route, or two with ``r2=on`` (RFC 5658) when the interfaces differ.

    The one towards the callee goes on top: the callee's route set starts
    with it, the caller's (reversed) ends with its own side.
    """
    added: list[sipmessage_pb2.RecordRoute] = []
    if incoming == outgoing:
        single = sipmessage_pb2.RecordRoute()
        single.address.uri.CopyFrom(outgoing.route_uri())
        added.append(single)
    else:
        for interface in (outgoing, incoming):
            double = sipmessage_pb2.RecordRoute()
            double.address.uri.CopyFrom(interface.route_uri())
            double.parameters["r2"] = "on"
            added.append(double)
    record_routes = [*added, *out.record_route]
    del out.record_route[:]
    out.record_route.extend(record_routes)
