"""What the processor reads about the EdgePort from a request, and URI helpers."""

from __future__ import annotations

import pytest

from edgeport._proto import sipmessage_pb2
from edgeport._proto.common_pb2 import TCP, TLS, UDP, WS, WSS
from edgeport._proto.processor_pb2 import MessageRequest
from edgeport.builtin.edge import EdgeView, Interface, format_uri, uri_port, uri_transport


def edge(
    *, hosts: str = "0.0.0.0", external: list[str] | None = None, localnets: list[str] | None = None
) -> EdgeView:
    return EdgeView(
        MessageRequest(
            listening_points=[
                {"host": hosts, "port": 5060, "transport": UDP},
                {"host": hosts, "port": 5061, "transport": TLS},
            ],
            external_addrs=external or [],
            localnets=localnets or [],
        )
    )


def sip_uri(
    host: str, port: int = -1, transport: str = "", secure: bool = False
) -> sipmessage_pb2.SipURI:
    return sipmessage_pb2.SipURI(
        host=host, port=port, transport_param=transport, secure=secure, ttl_param=-1
    )


def test_own_hosts_skip_the_unspecified_address_and_take_localnet_addresses() -> None:
    view = edge(external=["203.0.113.5:5060"], localnets=["10.0.0.1/24", "fd00::1/64"])
    assert view.own_hosts == frozenset({"203.0.113.5", "10.0.0.1", "fd00::1"})
    assert view.is_own_host("[FD00::1]")
    assert not view.is_own_host("10.0.0.2")  # same network, another host


def test_is_self_needs_an_edgeport_host_and_port() -> None:
    view = edge(localnets=["10.0.0.1/24"])
    assert view.is_self(sip_uri("10.0.0.1"))  # absent port: 5060
    assert view.is_self(sip_uri("10.0.0.1", secure=True))  # sips: 5061
    assert view.is_self(sip_uri("10.0.0.1", 5061, "tls"))
    assert not view.is_self(sip_uri("10.0.0.1", 5090))
    assert not view.is_self(sip_uri("10.0.0.2", 5060))


def test_advertised_interface_depends_on_where_the_target_is() -> None:
    view = edge(external=["203.0.113.5"], localnets=["10.0.0.1/24"])
    assert view.interface_towards("10.0.0.50", UDP) == Interface("10.0.0.1", 5060, UDP)
    assert view.interface_towards("198.51.100.7", UDP) == Interface("203.0.113.5", 5060, UDP)
    assert view.interface_towards("pbx.example.com", TLS) == Interface("203.0.113.5", 5061, TLS)
    bound = edge(hosts="10.0.0.1")
    assert bound.interface_towards("198.51.100.7", UDP) == Interface("10.0.0.1", 5060, UDP)
    # No listening point for WS: the first one stands in.
    assert bound.interface_towards("198.51.100.7", WS) == Interface("10.0.0.1", 5060, UDP)


@pytest.mark.parametrize(
    ("uri", "transport", "port"),
    [
        (sip_uri("a.example.com"), UDP, 5060),
        (sip_uri("a.example.com", transport="TCP"), TCP, 5060),
        (sip_uri("a.example.com", secure=True), TLS, 5061),
        (sip_uri("a.example.com", transport="tcp", secure=True), TLS, 5061),
        (sip_uri("a.example.com", transport="ws", secure=True), WSS, 5061),
        (sip_uri("a.example.com", 8080, transport="ws"), WS, 8080),
        (sip_uri("a.example.com", transport="sctp-ish"), UDP, 5060),
    ],
)
def test_uri_transport_and_port(uri: sipmessage_pb2.SipURI, transport: int, port: int) -> None:
    assert uri_transport(uri) == transport
    assert uri_port(uri) == port


def test_format_uri() -> None:
    uri = sipmessage_pb2.SipURI(
        user="alice",
        host="2001:db8::1",
        port=5062,
        transport_param="ws",
        lr_param=True,
        ttl_param=-1,
    )
    assert format_uri(uri) == "sip:alice@[2001:db8::1]:5062;transport=ws;lr"
    assert format_uri(sip_uri("biloxi.example.com", secure=True)) == "sips:biloxi.example.com"
