"""Turning a next hop (host, port, transport) into a peer edgeport can send to.

Numeric hosts are used as they are; names are resolved with the system
resolver in a worker thread (trio's ``getaddrinfo``), never on the event
loop. A ``.invalid`` host is the Contact of a WebSocket client (RFC 7118
§5.2): it is never resolved; the transport layer finds the connection it
was seen on.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

import trio

from edgeport.sip.transport import Transport
from edgeport.sip.uri import is_websocket_alias
from edgeport.transports import Peer

RESOLVE_TIMEOUT: Final = 5.0  # seconds for one name lookup


class UnresolvableHost(Exception):
    """The next hop's host name has no address."""


async def resolve_peer(host: str, port: int, transport: Transport) -> Peer:
    """The peer for a next hop; raises UnresolvableHost."""
    bare = host.strip("[]")
    if is_websocket_alias(bare):
        return Peer(transport, bare.lower(), port)
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return Peer(transport, bare, port)
    kind = socket.SOCK_DGRAM if transport is Transport.UDP else socket.SOCK_STREAM
    with trio.move_on_after(RESOLVE_TIMEOUT):
        try:
            infos = await trio.socket.getaddrinfo(bare, port, type=kind)
        except OSError as exc:
            raise UnresolvableHost(f"{bare}: {exc}") from None
        for family, _type, _proto, _name, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                return Peer(transport, str(sockaddr[0]), port)
        raise UnresolvableHost(f"{bare}: no address")
    raise UnresolvableHost(f"{bare}: lookup timed out")
