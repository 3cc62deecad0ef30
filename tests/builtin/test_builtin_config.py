"""The static peers file: parsing, defaults, every problem reported with its path."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from edgeport._proto.processor_pb2 import MessageRequest
from edgeport.builtin.config import PeersConfigError, StaticPeer, load_builtin_file, load_peers
from edgeport.builtin.edge import EdgeView
from edgeport.builtin.service import builtin_processor_for
from edgeport.config import (
    BuiltinConfig,
    ConfigError,
    describe_config,
    load_config,
    load_config_with_warnings,
)
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


# -- relayTo in the peers file ------------------------------------------------------


def test_peers_file_relay_to_networks_and_addresses(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text("relayTo: [203.0.113.0/24, 198.51.100.7, '2001:db8::/32']\npeers: []\n")
    settings = load_builtin_file(path)
    assert settings.relay_to == (
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("198.51.100.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert settings.peers == {}


def test_peers_file_without_relay_to_leaves_the_default_and_empty_means_none(
    tmp_path: Path,
) -> None:
    absent = tmp_path / "absent.yaml"
    absent.write_text(PEERS_YAML)
    assert load_builtin_file(absent).relay_to is None
    empty = tmp_path / "empty.yaml"
    empty.write_text("relayTo: []\n")
    assert load_builtin_file(empty).relay_to == ()


def test_peers_file_bad_relay_to_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "peers.yaml"
    path.write_text("relayTo: [10.0.0.0/33, carrier.example.com, 7]\n")
    with pytest.raises(PeersConfigError) as caught:
        load_builtin_file(path)
    assert caught.value.problems == [
        "relayTo[0]: expected a network like 10.0.0.0/8 or an IP address, got '10.0.0.0/33'",
        "relayTo[1]: expected a network like 10.0.0.0/8 or an IP address, "
        "got 'carrier.example.com'",
        "relayTo[2]: expected a network like 10.0.0.0/8 or an IP address, got 7",
    ]
    path.write_text("relayTo: 10.0.0.0/8\n")
    with pytest.raises(PeersConfigError, match=r"^relayTo: expected a list of networks$"):
        load_builtin_file(path)


# -- spec.builtin in the EdgePort configuration ------------------------------------

EDGEPORT_YAML = """\
kind: EdgePort
apiVersion: v2beta1
ref: edgeport-01
spec:
  transport: [{protocol: udp, port: 5060}]
  methods: [REGISTER, INVITE]
  processor: {addr: builtin}
  localnets: [10.0.0.1/24]
"""


def test_spec_builtin_relay_to_and_peers_reach_the_processor(tmp_path: Path) -> None:
    peers = tmp_path / "peers.yaml"
    peers.write_text("relayTo: [192.0.2.0/24]\n" + PEERS_YAML)
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        EDGEPORT_YAML + f"  builtin:\n    relayTo: [203.0.113.0/24, 198.51.100.7]\n"
        f"    peers: {peers}\n"
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.builtin == BuiltinConfig(
        relay_to=("203.0.113.0/24", "198.51.100.7/32"), peers=str(peers)
    )
    assert describe_config(config)["spec"]["builtin"] == {
        "relayTo": ["203.0.113.0/24", "198.51.100.7/32"],
        "peers": str(peers),
    }
    router = builtin_processor_for(config).router
    assert set(router.peers) == {"1000", "2000", "3000"}
    # spec.builtin.relayTo wins over the file's relayTo.
    assert router.relay.networks(EdgeView(MessageRequest())) == (
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("198.51.100.7/32"),
    )


def test_spec_builtin_absent_means_the_localnets_and_no_peers(tmp_path: Path) -> None:
    path = tmp_path / "edgeport.yaml"
    path.write_text(EDGEPORT_YAML)
    config = load_config(path, {})
    assert config.builtin == BuiltinConfig()
    assert "builtin" not in describe_config(config)["spec"]
    router = builtin_processor_for(config).router
    view = EdgeView(MessageRequest(localnets=["10.0.0.1/24"]))
    assert router.relay.networks(view) == [ipaddress.ip_network("10.0.0.0/24")]


def test_spec_builtin_problems_name_the_key(tmp_path: Path) -> None:
    broken = tmp_path / "peers.yaml"
    broken.write_text("peers:\n  - host: 10.0.0.80\n")
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        EDGEPORT_YAML + f"  builtin:\n    relayTo: [10.0.0.0/8, nonsense]\n    peers: {broken}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "spec.builtin.relayTo[1]: expected a network like 10.0.0.0/8 or an IP address, "
        "got 'nonsense'",
        "spec.builtin.peers: peers[0].user: required, a non-empty string",
    ]
    path.write_text(EDGEPORT_YAML + "  builtin:\n    relayTo: 10.0.0.0/8\n    peers: ''\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "spec.builtin.relayTo: expected a list, got '10.0.0.0/8'",
        "spec.builtin.peers: must not be empty",
    ]
    missing = tmp_path / "missing.yaml"
    path.write_text(EDGEPORT_YAML + f"  builtin:\n    peers: {missing}\n")
    with pytest.raises(ConfigError, match=r"spec\.builtin\.peers: .*missing\.yaml: cannot read"):
        load_config(path, {})
