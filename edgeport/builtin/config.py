"""The built-in processor's own small configuration: static peers, relay networks.

A peer sends every request for one user to a fixed host, port and transport,
whatever is registered. ``relayTo`` lists the networks requests may be
relayed to (``relay.py``); absent, the EdgePort's localnets; empty, none
(only registered contacts, peers and the dialogs routed to them). The file is
YAML (JSON is valid YAML)::

    relayTo:                  # optional: networks or single addresses
      - 203.0.113.0/24
      - 198.51.100.7
    peers:
      - user: "1000"          # the Request-URI user part
        host: 10.0.0.5
        port: 5080            # optional: 5060, or 5061 for tls/wss
        transport: udp        # optional: udp (default), tcp, tls, ws, wss

Every problem is reported at once, one line each with its key path, in a
:class:`PeersConfigError`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import yaml

from edgeport.sip.transport import Transport

if TYPE_CHECKING:
    from edgeport.builtin.edge import Network

MAX_PEERS: Final = 10_000
MAX_RELAY_NETWORKS: Final = 10_000
RELAY_TO_NONE: Final = "none"  # --relay-to none: no network at all
_FILE_KEYS: Final = frozenset({"peers", "relayTo"})
_PEER_KEYS: Final = frozenset({"user", "host", "port", "transport"})


class PeersConfigError(Exception):
    """The peers file is invalid; ``problems`` holds one line per problem."""

    startup_error = True  # edgeport's command line prints it as a reason not to start

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class StaticPeer:
    user: str
    host: str
    port: int
    transport: Transport


@dataclass(frozen=True, slots=True)
class BuiltinSettings:
    """What the file holds: peers by user, and ``relayTo`` (None when it sets none)."""

    peers: dict[str, StaticPeer]
    relay_to: tuple[Network, ...] | None = None


def parse_network(value: object) -> Network:
    """``10.0.0.0/8``, ``2001:db8::/32`` or one address; host bits are dropped.

    Raises ValueError with a one-line message.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a network like 10.0.0.0/8 or an IP address, got {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"expected a network like 10.0.0.0/8 or an IP address, got {value.strip()!r}"
        ) from None


def parse_relay_to(values: object, path: str, problems: list[str]) -> tuple[Network, ...] | None:
    """A ``relayTo`` list; None for an absent (null) one. Problems are appended."""
    if values is None:
        return None
    if not isinstance(values, list):
        problems.append(f"{path}: expected a list of networks")
        return None
    if len(values) > MAX_RELAY_NETWORKS:
        problems.append(f"{path}: more than {MAX_RELAY_NETWORKS} entries")
        return None
    networks: list[Network] = []
    for index, value in enumerate(values):
        try:
            networks.append(parse_network(value))
        except ValueError as error:
            problems.append(f"{path}[{index}]: {error}")
    return tuple(dict.fromkeys(networks))


def parse_peers(document: object) -> dict[str, StaticPeer]:
    """A loaded YAML document -> peers by user. Raises PeersConfigError."""
    return parse_builtin_file(document).peers


def parse_builtin_file(document: object) -> BuiltinSettings:
    """A loaded YAML document -> peers and relayTo. Raises PeersConfigError."""
    problems: list[str] = []
    if document is None:
        return BuiltinSettings(peers={})
    if not isinstance(document, dict):
        raise PeersConfigError(["<root>: expected a mapping with a 'peers' list"])
    for key in document:
        if key not in _FILE_KEYS:
            problems.append(f"{key}: unknown key")
    relay_to = parse_relay_to(document.get("relayTo"), "relayTo", problems)
    entries = document.get("peers", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise PeersConfigError([*problems, "peers: expected a list"])
    if len(entries) > MAX_PEERS:
        raise PeersConfigError([*problems, f"peers: more than {MAX_PEERS} entries"])
    peers: dict[str, StaticPeer] = {}
    for index, entry in enumerate(entries):
        path = f"peers[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{path}: expected a mapping")
            continue
        problems.extend(f"{path}.{key}: unknown key" for key in entry if key not in _PEER_KEYS)
        peer = _parse_peer(path, entry, problems)
        if peer is None:
            continue
        if peer.user in peers:
            problems.append(f"{path}.user: {peer.user!r} appears twice")
            continue
        peers[peer.user] = peer
    if problems:
        raise PeersConfigError(problems)
    return BuiltinSettings(peers=peers, relay_to=relay_to)


def _parse_peer(path: str, entry: dict[object, object], problems: list[str]) -> StaticPeer | None:
    count = len(problems)
    user = entry.get("user")
    if isinstance(user, int) and not isinstance(user, bool):
        user = str(user)  # `user: 1000` without quotes
    if not isinstance(user, str) or not user:
        problems.append(f"{path}.user: required, a non-empty string")
    host = entry.get("host")
    if not isinstance(host, str) or not host:
        problems.append(f"{path}.host: required, a non-empty string")
    transport = Transport.UDP
    transport_value = entry.get("transport", "udp")
    try:
        transport = Transport(str(transport_value).lower())
    except ValueError:
        problems.append(f"{path}.transport: {transport_value!r} is not udp, tcp, tls, ws or wss")
    port = entry.get("port", transport.default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"{path}.port: {port!r} is not a port number (1-65535)")
    if len(problems) > count:
        return None
    assert isinstance(user, str)
    assert isinstance(host, str)
    assert isinstance(port, int)
    return StaticPeer(user=user, host=host, port=port, transport=transport)


def load_peers(path: str | Path) -> dict[str, StaticPeer]:
    """Read and validate a peers file. Raises PeersConfigError (also for I/O and YAML errors)."""
    return load_builtin_file(path).peers


def load_builtin_file(path: str | Path) -> BuiltinSettings:
    """Read and validate a peers file, relayTo included. Raises PeersConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise PeersConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PeersConfigError([f"{path}: not valid YAML: {error}"]) from None
    return parse_builtin_file(document)
