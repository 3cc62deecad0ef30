"""Local networks: the ``ip/prefix`` of every address on this host's interfaces.

Contract §3: when neither ``spec.localnets`` nor ``LOCALNETS`` gives any,
``MessageRequest.localnets`` carries one ``ip/prefix`` per local interface
address, skipping loopback when ``IGNORE_LOOPBACK_FROM_LOCALNETS=true``.
Processors use them to tell a client on the local network from one behind NAT.

Linux only, with the standard library: IPv4 through the ``SIOCGIFADDR`` and
``SIOCGIFNETMASK`` ioctls (one, the primary, address per interface), IPv6
from ``/proc/net/if_inet6``. Elsewhere the list is empty and a warning says so.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

SIOCGIFADDR: Final = 0x8915  # linux/sockios.h
SIOCGIFNETMASK: Final = 0x891B
IF_INET6_PATH: Final = Path("/proc/net/if_inet6")
MAX_IF_INET6_BYTES: Final = 1024 * 1024  # one line per address; a host never has this many
_IFREQ_SIZE: Final = 40  # struct ifreq: 16-byte name + 24-byte union
_SOCKADDR_IN_ADDR: Final = slice(20, 24)  # ifr_addr.sin_addr inside struct ifreq


def detect_localnets(*, ignore_loopback: bool) -> tuple[str, ...]:
    """One ``ip/prefix`` per interface address, IPv4 first, in interface order."""
    found: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
    found.extend(_ipv4_interfaces())
    found.extend(_ipv6_interfaces())
    if not found:
        logger.warning("no local interface address found; localnets is empty")
    result: list[str] = []
    for interface in found:
        if ignore_loopback and interface.ip.is_loopback:
            continue
        text = f"{interface.ip}/{interface.network.prefixlen}"
        if text not in result:
            result.append(text)
    return tuple(result)


def _ipv4_interfaces() -> list[ipaddress.IPv4Interface]:
    try:
        import fcntl  # absent outside Unix

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError) as exc:
        logger.warning("cannot list network interfaces: %s", exc)
        return []
    result: list[ipaddress.IPv4Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            request = struct.pack(f"{_IFREQ_SIZE}s", name.encode()[:15])
            try:
                addr = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
                mask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, request)
            except OSError:
                continue  # the interface has no IPv4 address
            ip = ipaddress.IPv4Address(addr[_SOCKADDR_IN_ADDR])
            netmask = ipaddress.IPv4Address(mask[_SOCKADDR_IN_ADDR])
            result.append(ipaddress.IPv4Interface(f"{ip}/{netmask}"))
    return result


def _ipv6_interfaces() -> list[ipaddress.IPv6Interface]:
    try:
        with IF_INET6_PATH.open("rb") as stream:
            text = stream.read(MAX_IF_INET6_BYTES).decode("ascii", "replace")
    except OSError:
        return []  # no IPv6 on this host, or not Linux
    return parse_if_inet6(text)


def parse_if_inet6(text: str) -> list[ipaddress.IPv6Interface]:
    """Parse ``/proc/net/if_inet6``: address (32 hex digits), index, prefix (hex), ..."""
    result: list[ipaddress.IPv6Interface] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or len(fields[0]) != 32:
            continue
        try:
            ip = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            prefix = int(fields[2], 16)
            result.append(ipaddress.IPv6Interface(f"{ip}/{prefix}"))
        except ValueError:
            continue
    return result
