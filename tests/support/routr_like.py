"""A processor that decides the way Routr's connect processor and location service do.

A reply function for :class:`tests.support.grpc_processor.ScriptableProcessor`
(MessageRequest -> MessageResponse), written from Routr's documented
behaviour, so that end-to-end tests check edgeport against what a real Routr
deployment does with ``sender``, ``received`` and ``rport``:

- REGISTER: the route is stored from the top Via as Routr's location service
  builds it: host = ``received`` or the sent-by host, port = ``rport`` when it
  is not -1, else the sent-by port; transport from the Via. The answer is 200
  with the request's Contact.
- A new request to a registered AOR (the To URI): the Request-URI becomes the
  route (host, port, transport); the EdgePort's Via goes on top and its
  Record-Route (two with ``r2=on`` when the caller's and callee's sides
  differ); Max-Forwards goes down by one. The EdgePort's interface is placed
  from ``localnets`` (the first one holding the peer's address), else the
  first external address, else the call fails with 500: Routr's library
  throws there, which is why ``sender`` must be an address.
- Any other new request goes to its Request-URI, with the same alterations.
- ACK and BYE: the EdgePort's own Routes are removed, its Via goes on top
  (the egress side taken from the Route headers, as Routr's
  ``addSelfViaUsingTheRouteHeaders``), Max-Forwards goes down by one.
- Responses: the top Via (the EdgePort's) is removed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse, Method, NetInterface

_TRANSPORT_NAMES = {
    common_pb2.UDP: "UDP",
    common_pb2.TCP: "TCP",
    common_pb2.TLS: "TLS",
    common_pb2.WS: "WS",
    common_pb2.WSS: "WSS",
}
_BY_NAME = {name: value for value, name in _TRANSPORT_NAMES.items()}


class NoInterface(Exception):
    """No localnet holds the peer and no external address is set."""


@dataclass(frozen=True)
class Route:
    host: str
    port: int
    transport: str  # UDP, TCP, WS...


def route_from_register(request: MessageRequest) -> Route:
    """Routr location service: host = received || host, port = rPort != -1 ? rPort : port."""
    via = request.message.via[0]
    return Route(
        host=via.received or via.host,
        port=via.r_port if via.r_port != -1 else via.port,
        transport=via.transport.upper(),
    )


def aor(uri: sipmessage_pb2.SipURI) -> str:
    return f"sip:{uri.user}@{uri.host}" if uri.user else f"sip:{uri.host}"


def edge_interface(request: MessageRequest, peer_host: str, transport: str) -> NetInterface:
    """Routr ``getEdgeInterface``: a localnet address holding the peer, else externalAddrs[0]."""
    host: str | None = None
    try:
        address = ipaddress.ip_address(peer_host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        for net in request.localnets:
            if address in ipaddress.ip_network(net, strict=False):
                host = net.split("/")[0]
                break
    if host is None:
        if not request.external_addrs:
            raise NoInterface(f"no interface for host {peer_host} and transport {transport}")
        host = request.external_addrs[0]
    point = next(p for p in request.listening_points if _TRANSPORT_NAMES[p.transport] == transport)
    return NetInterface(host=host, port=point.port, transport=point.transport)


def _route_uri(interface: NetInterface) -> sipmessage_pb2.SipURI:
    return sipmessage_pb2.SipURI(
        host=interface.host,
        port=interface.port,
        transport_param=_TRANSPORT_NAMES[interface.transport],
        lr_param=True,
        ttl_param=-1,
    )


def _push_via(message: sipmessage_pb2.SIPMessage, interface: NetInterface) -> None:
    via = sipmessage_pb2.Via(
        host=interface.host,
        port=interface.port,
        transport=_TRANSPORT_NAMES[interface.transport],
        r_port_flag=True,
        r_port=-1,
        ttl=-1,
    )
    vias = [via, *message.via]
    del message.via[:]
    message.via.extend(vias)


def _decrease_max_forwards(message: sipmessage_pb2.SIPMessage) -> None:
    if message.HasField("max_forwards"):
        message.max_forwards.max_forwards -= 1


def answer(response_type: int) -> MessageResponse:
    return MessageResponse(message=sipmessage_pb2.SIPMessage(response_type=response_type))


@dataclass
class RoutrLikeProcessor:
    """The reply function (call it) and the routes it stored, by AOR."""

    routes: dict[str, Route] = field(default_factory=dict)

    def __call__(self, request: MessageRequest) -> MessageResponse:
        try:
            return self._process(request)
        except NoInterface:
            return answer(sipmessage_pb2.SERVER_INTERNAL_ERROR)

    def _process(self, request: MessageRequest) -> MessageResponse:
        message = sipmessage_pb2.SIPMessage()
        message.CopyFrom(request.message)
        if message.WhichOneof("message_type") == "response_type":
            del message.via[0]
            return MessageResponse(message=message)
        if request.method == Method.REGISTER:
            self.routes[aor(message.to.address.uri)] = route_from_register(request)
            reply = sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.OK, reason_phrase="OK")
            reply.contact.CopyFrom(message.contact)
            return MessageResponse(message=reply)
        if request.method in (Method.ACK, Method.BYE):
            return MessageResponse(message=self._in_dialog(request, message))
        route = self.routes.get(aor(message.to.address.uri))
        if route is not None:
            message.request_uri.host = route.host
            message.request_uri.port = route.port
            message.request_uri.transport_param = route.transport
            target = NetInterface(
                host=route.host, port=route.port, transport=_BY_NAME[route.transport]
            )
        else:
            uri = message.request_uri
            name = uri.transport_param.upper() or "UDP"
            target = NetInterface(host=uri.host, port=uri.port, transport=_BY_NAME[name])
        _decrease_max_forwards(message)
        outgoing = edge_interface(request, target.host, _TRANSPORT_NAMES[target.transport])
        incoming = edge_interface(
            request, request.sender.host, _TRANSPORT_NAMES[request.sender.transport]
        )
        _push_via(message, outgoing)
        if request.method == Method.INVITE:
            added = []
            if (incoming.host, incoming.port, incoming.transport) == (
                outgoing.host,
                outgoing.port,
                outgoing.transport,
            ):
                single = sipmessage_pb2.RecordRoute()
                single.address.uri.CopyFrom(_route_uri(incoming))
                added.append(single)
            else:
                for interface in (outgoing, incoming):
                    double = sipmessage_pb2.RecordRoute()
                    double.address.uri.CopyFrom(_route_uri(interface))
                    double.parameters["r2"] = "on"
                    added.append(double)
            record_routes = [*added, *message.record_route]
            del message.record_route[:]
            message.record_route.extend(record_routes)
        return MessageResponse(message=message)

    def _in_dialog(
        self, request: MessageRequest, message: sipmessage_pb2.SIPMessage
    ) -> sipmessage_pb2.SIPMessage:
        _decrease_max_forwards(message)
        if message.route:
            egress = message.route[1] if len(message.route) > 1 else message.route[0]
            uri = egress.address.uri
            name = uri.transport_param.upper() or "UDP"
            _push_via(message, NetInterface(host=uri.host, port=uri.port, transport=_BY_NAME[name]))
        own_hosts = {net.split("/")[0] for net in request.localnets} | set(request.external_addrs)
        ports = {(_TRANSPORT_NAMES[p.transport], p.port) for p in request.listening_points}
        kept = [
            r
            for r in message.route
            if not (
                r.address.uri.host in own_hosts
                and ((r.address.uri.transport_param.upper() or "UDP"), r.address.uri.port) in ports
            )
        ]
        del message.route[:]
        message.route.extend(kept)
        return message
