"""What the built-in processor knows about the EdgePort, read from each MessageRequest.

Contract §3: a request carries the EdgePort's ``listening_points``,
``external_addrs`` and ``localnets``. From them this module answers "is this
host (and port) the EdgePort itself?" and "which address does the EdgePort
advertise towards that target?", the way Routr's processors do:

- The EdgePort's own hosts are the listening point hosts (except the
  unspecified ``0.0.0.0`` / ``::``), every external address, and the address
  part of every localnets entry (``192.168.1.10/24`` -> ``192.168.1.10``:
  auto-detected localnets are ``interface-ip/prefix``). Other hosts of a
  local network are not the EdgePort.
- A URI is the EdgePort itself when its host is one of those and its port
  (5060, or 5061 for TLS/WSS and ``sips:``, when absent) is one a listening
  point uses.
- Towards a target inside one of the localnets networks (or when there are
  no external addresses) the EdgePort advertises the listening point host;
  towards any other target, the first external address.

Also the small protobuf helpers the router needs: transport names, URI text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Final, cast

from edgeport._proto import common_pb2, sipmessage_pb2

if TYPE_CHECKING:
    from edgeport._proto.processor_pb2 import MessageRequest, NetInterface

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNSPECIFIED_HOSTS: Final = frozenset({"0.0.0.0", "::", "[::]", ""})
FALLBACK_HOST: Final = "127.0.0.1"  # when nothing better is known about the EdgePort

UDP: Final = common_pb2.Transport.UDP
TLS: Final = common_pb2.Transport.TLS
WSS: Final = common_pb2.Transport.WSS


def transport_from_token(token: str) -> common_pb2.Transport:
    """``"udp"``, ``"UDP"``, ``"ws"``... -> the protobuf enum; unknown or empty -> UDP."""
    try:
        return cast("common_pb2.Transport", common_pb2.Transport.Value(token.upper()))
    except ValueError:
        return UDP


def transport_token(transport: common_pb2.Transport) -> str:
    """The Via token: ``UDP``, ``TCP``, ``TLS``, ``SCTP``, ``WS``, ``WSS``."""
    return common_pb2.Transport.Name(transport)


def default_port(transport: common_pb2.Transport) -> int:
    """RFC 3261 §19.1.2: 5060, or 5061 for TLS (WSS follows TLS)."""
    return 5061 if transport in (TLS, WSS) else 5060


def uri_transport(uri: sipmessage_pb2.SipURI) -> common_pb2.Transport:
    """The transport a URI asks for: its ``transport`` parameter, default UDP.

    RFC 3261 §19.1.2/§26.2.2: ``sips:`` needs a secure transport, so UDP and
    TCP become TLS and WS becomes WSS.
    """
    transport = transport_from_token(uri.transport_param) if uri.transport_param else UDP
    if uri.secure:
        if transport in (UDP, common_pb2.Transport.TCP):
            return TLS
        if transport == common_pb2.Transport.WS:
            return WSS
    return transport


def uri_port(uri: sipmessage_pb2.SipURI) -> int:
    """The URI's port, or the default of its transport when absent (-1 or 0)."""
    return uri.port if uri.port > 0 else default_port(uri_transport(uri))


def normalise_host(host: str) -> str:
    """Case-folded, IPv6 brackets removed: the form hosts are compared in."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def format_uri(uri: sipmessage_pb2.SipURI) -> str:
    """A SipURI as SIP text (RFC 3261 §19.1.1), with the parameters the protobuf carries."""
    parts = ["sips:" if uri.secure else "sip:"]
    if uri.user:
        parts.append(uri.user)
        if uri.user_password:
            parts.append(":" + uri.user_password)
        parts.append("@")
    host = uri.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    parts.append(host)
    if uri.port > 0:
        parts.append(f":{uri.port}")
    if uri.transport_param:
        parts.append(";transport=" + uri.transport_param)
    if uri.user_param:
        parts.append(";user=" + uri.user_param)
    if uri.method_param:
        parts.append(";method=" + uri.method_param)
    if uri.ttl_param > 0:
        parts.append(f";ttl={uri.ttl_param}")
    if uri.m_addr_param:
        parts.append(";maddr=" + uri.m_addr_param)
    if uri.lr_param:
        parts.append(";lr")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Interface:
    """An address the EdgePort shows in a Via or Record-Route."""

    host: str
    port: int
    transport: common_pb2.Transport

    def route_uri(self) -> sipmessage_pb2.SipURI:
        """``sip:host:port;transport=x;lr``."""
        return sipmessage_pb2.SipURI(
            host=self.host,
            port=self.port,
            transport_param=transport_token(self.transport).lower(),
            lr_param=True,
            ttl_param=-1,
        )


class EdgeView:
    """The EdgePort as one MessageRequest describes it."""

    def __init__(self, request: MessageRequest) -> None:
        self._listening_points: list[NetInterface] = list(request.listening_points)
        self._external_addrs: list[str] = [a for a in request.external_addrs if a]
        self._localnets: list[str] = [n for n in request.localnets if n]

    @cached_property
    def networks(self) -> list[Network]:
        """The localnets entries as networks (``10.0.0.1/24`` -> ``10.0.0.0/24``)."""
        networks: list[Network] = []
        for entry in self._localnets:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return networks

    @cached_property
    def _localnet_ips(self) -> list[str]:
        return [normalise_host(entry.split("/", 1)[0]) for entry in self._localnets]

    @cached_property
    def own_hosts(self) -> frozenset[str]:
        hosts = {normalise_host(lp.host) for lp in self._listening_points}
        hosts.update(normalise_host(_strip_port(addr)) for addr in self._external_addrs)
        hosts.update(self._localnet_ips)
        return frozenset(hosts - UNSPECIFIED_HOSTS)

    @cached_property
    def _own_ports(self) -> frozenset[int]:
        return frozenset(lp.port for lp in self._listening_points)

    def is_own_host(self, host: str) -> bool:
        return normalise_host(host) in self.own_hosts

    def is_self(self, uri: sipmessage_pb2.SipURI) -> bool:
        """The URI addresses the EdgePort itself (host and port)."""
        return self.is_own_host(uri.host) and uri_port(uri) in self._own_ports

    def is_local(self, host: str) -> bool:
        """The host is an IP inside one of the localnets networks."""
        try:
            address = ipaddress.ip_address(normalise_host(host))
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def listening_point(self, transport: common_pb2.Transport) -> NetInterface | None:
        """The listening point for a transport; else the first one; None when there is none."""
        for lp in self._listening_points:
            if lp.transport == transport:
                return lp
        return self._listening_points[0] if self._listening_points else None

    def interface_towards(self, host: str, transport: common_pb2.Transport) -> Interface:
        """The address the EdgePort advertises to ``host`` over ``transport``."""
        lp = self.listening_point(transport)
        if lp is None:
            return Interface(FALLBACK_HOST, default_port(transport), transport)
        if self._external_addrs and not self.is_local(host):
            advertised = _strip_port(self._external_addrs[0])
        elif normalise_host(lp.host) not in UNSPECIFIED_HOSTS:
            advertised = lp.host
        elif self._localnet_ips:
            advertised = self._localnet_ips[0]
        elif self._external_addrs:
            advertised = _strip_port(self._external_addrs[0])
        else:
            advertised = FALLBACK_HOST
        return Interface(advertised, lp.port, lp.transport)


def _strip_port(addr: str) -> str:
    """``"1.2.3.4:5060"`` -> ``"1.2.3.4"``; IPv6 literals and bare hosts unchanged."""
    if addr.startswith("["):
        return addr.split("]", 1)[0] + "]"
    host, sep, port = addr.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host
    return addr
