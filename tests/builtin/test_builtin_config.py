"""The static peers file: parsing, defaults, every problem reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeport.builtin.config import PeersConfigError, StaticPeer, load_peers
from edgeport.sip.transport import Transport

PEERS_YAML = """\
peers:
  - user: "1000"
    host: 10.0.0.80
    port: 5080
    transport: TCP
  - user: 2000
    host: pbx.example.com
  - user: "3000"
    host: 10.0.0.81
    transport: tls
"""


def test_peers_file_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text(PEERS_YAML)
    assert load_peers(path) == {
        "1000": StaticPeer("1000", "10.0.0.80", 5080, Transport.TCP),
        "2000": StaticPeer("2000", "pbx.example.com", 5060, Transport.UDP),
        "3000": StaticPeer("3000", "10.0.0.81", 5061, Transport.TLS),
    }


def test_empty_file_means_no_peers(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text("")
    assert load_peers(path) == {}


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text(
        "peers:\n"
        "  - host: 10.0.0.80\n"
        "  - user: '1000'\n"
        "    host: 10.0.0.81\n"
        "    port: 99999\n"
        "    transport: sctp\n"
        "    weight: 3\n"
        "  - user: '2000'\n"
        "    host: a\n"
        "  - user: '2000'\n"
        "    host: b\n"
        "trunks: []\n"
    )
    with pytest.raises(PeersConfigError) as caught:
        load_peers(path)
    assert caught.value.problems == [
        "trunks: unknown key",
        "peers[0].user: required, a non-empty string",
        "peers[1].weight: unknown key",
        "peers[1].transport: 'sctp' is not udp, tcp, tls, ws or wss",
        "peers[1].port: 99999 is not a port number (1-65535)",
        "peers[3].user: '2000' appears twice",
    ]


def test_unreadable_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PeersConfigError, match="cannot read"):
        load_peers(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("peers: [\n")
    with pytest.raises(PeersConfigError, match="not valid YAML"):
        load_peers(broken)
