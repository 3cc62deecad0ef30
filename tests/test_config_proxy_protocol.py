"""PROXY protocol keys: transport[*].proxyProtocol and spec.proxyProtocol.trustedProxies."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgeport.config import ConfigError, ProxyProtocolConfig, describe_config, load_config

HEADER = "kind: EdgePort\napiVersion: v2beta1\nref: edgeport-01\n"


def write_spec(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "edgeport.yaml"
    path.write_text(HEADER + "spec:\n" + textwrap.indent(textwrap.dedent(spec), "  "))
    return path


BASE = """\
methods: [REGISTER, INVITE]
processor:
  addr: 127.0.0.1:51904
"""


def test_enabled_per_listener_with_trusted_networks(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        BASE
        + """\
transport:
  - protocol: udp
    port: 5060
  - protocol: tcp
    port: 5060
    proxyProtocol: true
  - protocol: ws
    port: 5062
proxyProtocol:
  trustedProxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32", 172.16.5.9/16]
""",
    )
    config = load_config(path, {})
    assert [(t.protocol.value, t.proxy_protocol) for t in config.transports] == [
        ("udp", False),
        ("tcp", True),
        ("ws", False),
    ]
    assert config.proxy_protocol == ProxyProtocolConfig(
        trusted_proxies=("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "172.16.0.0/16")
    )
    described = describe_config(config)["spec"]
    assert described["transport"][1]["proxyProtocol"] is True
    assert "proxyProtocol" not in described["transport"][0]
    assert described["proxyProtocol"]["trustedProxies"][1] == "192.0.2.7/32"


def test_off_by_default(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + "transport:\n  - protocol: tcp\n    port: 5060\n")
    config = load_config(path, {})
    assert not config.transports[0].proxy_protocol
    assert config.proxy_protocol.trusted_proxies == ()
    assert "proxyProtocol" not in describe_config(config)["spec"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "transport:\n  - {protocol: tcp, port: 5060, proxyProtocol: true}\n",
            [
                "spec.proxyProtocol.trustedProxies: required when a transport sets "
                "proxyProtocol (the networks of the load balancers allowed to send the header)"
            ],
        ),
        (
            "transport:\n  - {protocol: udp, port: 5060, proxyProtocol: true}\n"
            "proxyProtocol: {trustedProxies: [10.0.0.0/8]}\n",
            [
                "spec.transport[0].proxyProtocol: only tcp, tls, ws and wss listeners "
                "take a PROXY protocol header"
            ],
        ),
        (
            "transport:\n  - {protocol: tcp, port: 5060, proxyProtocol: 'yes'}\n",
            ["spec.transport[0].proxyProtocol: expected true or false, got 'yes'"],
        ),
        (
            "transport:\n  - {protocol: tcp, port: 5060, proxyProtocol: true}\n"
            "proxyProtocol: {trustedProxies: [10.0.0.0/33, lb.example.com]}\n",
            [
                "spec.proxyProtocol.trustedProxies[0]: expected a network like 10.0.0.0/8 "
                "or an IP address, got '10.0.0.0/33'",
                "spec.proxyProtocol.trustedProxies[1]: expected a network like 10.0.0.0/8 "
                "or an IP address, got 'lb.example.com'",
            ],
        ),
        (
            "transport:\n  - {protocol: tcp, port: 5060}\n"
            "proxyProtocol: {trustedProxies: 10.0.0.0/8}\n",
            ["spec.proxyProtocol.trustedProxies: expected a list, got '10.0.0.0/8'"],
        ),
    ],
)
def test_problems(tmp_path: Path, spec: str, expected: list[str]) -> None:
    path = write_spec(tmp_path, BASE + spec)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == expected
