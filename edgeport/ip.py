"""IP address literals as edgeport compares them: brackets and case dropped, an
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) taken as the IPv4 address it
carries, a host name left alone."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(host: str) -> IPAddress | None:
    """The address ``host`` names, or None for a host name."""
    try:
        address = ipaddress.ip_address(host.strip().strip("[]").lower())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
