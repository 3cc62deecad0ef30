"""Configuration loading: every rule of contract §6 on a literal file, one line per problem."""

from __future__ import annotations

import json
import logging
import tempfile
import textwrap
from pathlib import Path

import pytest
import trustme
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeport.config import (
    ClientAuthType,
    ConfigError,
    EdgePortConfig,
    UnknownMethodAction,
    default_config,
    describe_config,
    load_config,
    load_config_with_warnings,
)
from edgeport.localnets import parse_if_inet6
from edgeport.sip.transport import Transport
from tests.config_fixtures import write_leaf_pkcs12, write_pem

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The header every spec-level case below shares; each case writes its own spec.
HEADER = "kind: EdgePort\napiVersion: v2beta1\nref: edgeport-01\n"


def write(tmp_path: Path, text: str, name: str = "edgeport.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    return caught.value.problems


def with_spec(spec: str) -> str:
    """A whole file: the shared header and ``spec``, given as literal YAML lines."""
    return HEADER + "spec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")


# --- files that load ------------------------------------------------------------


def test_minimal_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        kind: EdgePort
        apiVersion: v2beta1
        ref: edgeport-01
        metadata:
          region: us-east1
        spec:
          bindAddr: 10.0.0.5
          transport:
            - protocol: UDP
              port: 5060
            - protocol: tcp
              port: 5060
              bindAddr: 10.0.0.6
          methods: [invite, Register, BYE]
          processor:
            addr: dispatcher:51901
          localnets: [10.0.0.0/8]
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.ref == "edgeport-01"
    assert config.api_version == "v2beta1"
    assert config.region == "us-east1"
    assert [(t.protocol, t.port, t.bind_addr) for t in config.transports] == [
        (Transport.UDP, 5060, "10.0.0.5"),
        (Transport.TCP, 5060, "10.0.0.6"),
    ]
    assert config.methods == ("INVITE", "REGISTER", "BYE")
    assert config.processor.addr == "dispatcher:51901"
    assert config.processor.timeout == 3.0
    assert config.bind_addr == "10.0.0.5"
    assert config.localnets == ("10.0.0.0/8",)
    assert config.external_addrs == ()
    assert config.unknown_method_action is UnknownMethodAction.DISCARD
    assert config.security_context is None
    assert config.max_in_flight == 100
    assert config.shutdown_timeout == 32.0


def test_json_gives_the_same_configuration_as_yaml(tmp_path: Path) -> None:
    json_path = write(
        tmp_path,
        """\
        {"kind": "EdgePort", "apiVersion": "v2", "ref": "ep",
         "spec": {"transport": [{"protocol": "udp", "port": 5060}],
                  "methods": ["INVITE"], "processor": {"addr": "127.0.0.1:51901"},
                  "localnets": ["192.168.0.0/16"]}}
        """,
        name="edgeport.json",
    )
    yaml_path = write(
        tmp_path,
        """\
        kind: EdgePort
        apiVersion: v2
        ref: ep
        spec:
          transport: [{protocol: udp, port: 5060}]
          methods: [INVITE]
          processor: {addr: "127.0.0.1:51901"}
          localnets: [192.168.0.0/16]
        """,
    )
    assert load_config(json_path, {}) == load_config(yaml_path, {})


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "edgeport.conf",
            '{"kind": "EdgePort", "apiVersion": "v2", "ref": "ep", "spec": {"transport": '
            '[{"protocol": "udp", "port": 5060}], "methods": ["INVITE"], '
            '"processor": {"addr": "p:1"}, "localnets": ["10.0.0.0/8"]}}',
        ),
        (
            "edgeport",
            "kind: EdgePort\napiVersion: v2\nref: ep\nspec:\n"
            "  transport: [{protocol: udp, port: 5060}]\n  methods: [INVITE]\n"
            "  processor: {addr: 'p:1'}\n  localnets: [10.0.0.0/8]\n",
        ),
    ],
)
def test_format_recognised_from_content_without_a_known_extension(
    tmp_path: Path, name: str, text: str
) -> None:
    config = load_config(write(tmp_path, text, name=name), {})
    assert config.ref == "ep"
    assert config.processor.addr == "p:1"


def test_edgeport_extensions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        with_spec(
            """\
            bindAddr: "::"
            transport:
              - {protocol: udp, port: 5060}
              - {protocol: ws, port: 8080, bindAddr: "::1"}
            methods: [INVITE]
            processor:
              addr: "[2001:db8::1]:51901"
              timeout: 0.5
            unknownMethodAction: Respond
            externalAddrs: [203.0.113.1, sip.example.com]
            localnets: [10.0.0.0/8, "fd00::/8"]
            connections:
              idleTimeout: 30
              max: 50
            websocket:
              allowedOrigins: ["https://phone.example.com"]
            maxInFlight: 10
            shutdownTimeout: 0
            """
        ),
    )
    config = load_config(path, {})
    assert config.bind_addr == "::"
    assert [t.bind_addr for t in config.transports] == ["::", "::1"]
    assert config.processor.addr == "[2001:db8::1]:51901"
    assert config.processor.timeout == 0.5
    assert config.unknown_method_action is UnknownMethodAction.RESPOND
    assert config.external_addrs == ("203.0.113.1", "sip.example.com")
    assert config.localnets == ("10.0.0.0/8", "fd00::/8")
    assert config.connections.idle_timeout == 30.0
    assert config.connections.max_connections == 50
    assert config.websocket.allowed_origins == ("https://phone.example.com",)
    assert config.max_in_flight == 10
    assert config.shutdown_timeout == 0.0


def test_security_context_with_a_real_keystore(tmp_path: Path) -> None:
    leaf = trustme.CA().issue_cert("sip.example.com")
    keystore = write_leaf_pkcs12(tmp_path / "signaling.p12", "changeme", leaf)
    path = write(
        tmp_path,
        with_spec(
            f"""\
            transport:
              - {{protocol: tls, port: 5061}}
              - {{protocol: wss, port: 5063}}
            methods: [INVITE]
            processor: {{addr: "dispatcher:51901"}}
            localnets: [10.0.0.0/8]
            securityContext:
              debugging: false
              keyStore: {keystore}
              keyStorePassword: changeme
              keyStoreType: PKCS12
              trustStore: {keystore}
              trustStorePassword: changeme
              client:
                protocols: [TLSv1.3]
                authType: Wanted
            """
        ),
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    security = config.security_context
    assert security is not None
    assert security.key_store == str(keystore)
    assert security.key_store_password == "changeme"
    assert security.key_store_type == "pkcs12"
    assert security.trust_store == str(keystore)
    assert security.client_protocols == ("TLSv1.3",)
    assert security.client_auth_type is ClientAuthType.WANTED


def test_security_context_defaults_and_pem_keystore(tmp_path: Path) -> None:
    keystore = write_pem(tmp_path / "server.pem", trustme.CA().issue_cert("x"), password="pw")
    path = write(
        tmp_path,
        with_spec(
            f"""\
            transport: [{{protocol: tls, port: 5061}}]
            methods: [INVITE]
            processor: {{addr: "dispatcher:51901"}}
            localnets: [10.0.0.0/8]
            securityContext:
              keyStore: {keystore}
              keyStorePassword: pw
              keyStoreType: pem
            """
        ),
    )
    security = load_config(path, {}).security_context
    assert security is not None
    assert security.key_store_type == "pem"
    assert security.trust_store is None
    assert security.client_protocols == ("TLSv1.2", "TLSv1.3")
    assert security.client_auth_type is ClientAuthType.DISABLED


# --- files that are rejected, one exact line per problem ------------------------

VALID_SPEC = """\
transport: [{protocol: udp, port: 5060}]
methods: [INVITE]
processor: {addr: "dispatcher:51901"}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "apiVersion: v2\nref: ep\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["kind: required key missing"],
            id="kind missing",
        ),
        pytest.param(
            "kind: Gateway\napiVersion: v2\nref: ep\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["kind: expected 'EdgePort', got 'Gateway'"],
            id="kind wrong",
        ),
        pytest.param(
            "kind: EdgePort\napiVersion: v1\nref: ep\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["apiVersion: expected v2beta1 or v2, got 'v1'"],
            id="apiVersion wrong",
        ),
        pytest.param(
            "kind: EdgePort\nref: ep\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["apiVersion: required key missing"],
            id="apiVersion missing",
        ),
        pytest.param(
            "kind: EdgePort\napiVersion: v2\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["ref: required key missing"],
            id="ref missing",
        ),
        pytest.param(
            "kind: EdgePort\napiVersion: v2\nref: 42\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["ref: expected a string, got 42"],
            id="ref not a string",
        ),
        pytest.param(
            "kind: EdgePort\napiVersion: v2\nref: ep\n",
            ["spec: required key missing"],
            id="spec missing",
        ),
        pytest.param(
            "kind: EdgePort\napiVersion: v2\nref: ep\nspec: [udp]\n",
            ["spec: expected a mapping, got ['udp']"],
            id="spec not a mapping",
        ),
        pytest.param(
            HEADER + "metadata: us-east1\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["metadata: expected a mapping, got 'us-east1'"],
            id="metadata not a mapping",
        ),
        pytest.param(
            HEADER + "metadata:\n  region: 1\nspec:\n" + textwrap.indent(VALID_SPEC, "  "),
            ["metadata.region: expected a string, got 1"],
            id="region not a string",
        ),
    ],
)
def test_top_level_rules(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems_of(write(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport: required key missing"],
            id="transport missing",
        ),
        pytest.param(
            "transport: udp\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport: expected a list, got 'udp'"],
            id="transport not a list",
        ),
        pytest.param(
            "transport: []\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport: at least one transport is required"],
            id="transport empty",
        ),
        pytest.param(
            "transport:\n  - {protocol: udp, port: 5060}\n  - {protocol: tcp, port: abc}\n"
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport[1].port: expected an integer, got 'abc'"],
            id="port not an integer",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: '5060'}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1'}\n",
            ["spec.transport[0].port: expected an integer, got '5060'"],
            id="port quoted",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 70000}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1'}\n",
            ["spec.transport[0].port: expected a port from 1 to 65535, got 70000"],
            id="port out of range",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 0}]\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport[0].port: expected a port from 1 to 65535, got 0"],
            id="port zero",
        ),
        pytest.param(
            "transport: [{protocol: udp}]\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport[0].port: required key missing"],
            id="port missing",
        ),
        pytest.param(
            "transport: [{port: 5060}]\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport[0].protocol: required key missing"],
            id="protocol missing",
        ),
        pytest.param(
            "transport: [{protocol: sctp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1'}\n",
            [
                "spec.transport[0].protocol: unknown protocol 'sctp' "
                "(expected udp, tcp, tls, ws or wss)"
            ],
            id="protocol unknown",
        ),
        pytest.param(
            "transport: [udp]\nmethods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport[0]: expected a mapping, got 'udp'"],
            id="transport entry not a mapping",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060, bindAddr: eth0}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1'}\n",
            ["spec.transport[0].bindAddr: expected an IPv4 or IPv6 address, got 'eth0'"],
            id="entry bindAddr not an address",
        ),
        pytest.param(
            "transport:\n  - {protocol: udp, port: 5060}\n  - {protocol: UDP, port: 5070}\n"
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.transport: protocol 'udp' appears twice"],
            id="same protocol twice",
        ),
        pytest.param(
            "transport:\n  - {protocol: tcp, port: 5060}\n  - {protocol: ws, port: 5060}\n"
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            [
                "spec.transport: port 5060 is used by both tcp and ws "
                "(only udp and tcp may share a port)"
            ],
            id="same port tcp and ws",
        ),
        pytest.param(
            "transport:\n  - {protocol: udp, port: 5061}\n  - {protocol: tls, port: 5061}\n"
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            [
                "spec.transport: port 5061 is used by both udp and tls "
                "(only udp and tcp may share a port)",
                "spec.securityContext: required key missing (spec.transport uses tls)",
            ],
            id="same port udp and tls",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nprocessor: {addr: 'p:1'}\n",
            ["spec.methods: required key missing"],
            id="methods missing",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: INVITE\nprocessor: {addr: 'p:1'}\n",
            ["spec.methods: expected a list, got 'INVITE'"],
            id="methods not a list",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: []\nprocessor: {addr: 'p:1'}\n",
            ["spec.methods: at least one method is required"],
            id="methods empty",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE, FETCH, 7]\n"
            "processor: {addr: 'p:1'}\n",
            [
                "spec.methods[1]: unknown SIP method 'FETCH'",
                "spec.methods[2]: expected a string, got 7",
            ],
            id="methods unknown and wrong type",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE, invite]\n"
            "processor: {addr: 'p:1'}\n",
            ["spec.methods: 'INVITE' appears twice"],
            id="method twice",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n",
            ["spec.processor: required key missing"],
            id="processor missing",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\nprocessor: {}\n",
            ["spec.processor.addr: required key missing"],
            id="processor addr missing",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: dispatcher}\n",
            ["spec.processor.addr: expected host:port or 'builtin', got 'dispatcher'"],
            id="processor addr without port",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: 'dispatcher:0'}\n",
            ["spec.processor.addr: expected host:port or 'builtin', got 'dispatcher:0'"],
            id="processor addr port zero",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: '2001:db8::1:51901'}\n",
            ["spec.processor.addr: expected host:port or 'builtin', got '2001:db8::1:51901'"],
            id="processor addr unbracketed IPv6",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1', timeout: 0}\n",
            ["spec.processor.timeout: expected a positive number of seconds, got 0"],
            id="processor timeout zero",
        ),
        pytest.param(
            "transport: [{protocol: udp, port: 5060}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1', timeout: soon}\n",
            ["spec.processor.timeout: expected a number of seconds, got 'soon'"],
            id="processor timeout not a number",
        ),
        pytest.param(
            VALID_SPEC + "bindAddr: 300.1.1.1\n",
            ["spec.bindAddr: expected an IPv4 or IPv6 address, got '300.1.1.1'"],
            id="bindAddr invalid",
        ),
        pytest.param(
            VALID_SPEC + "externalAddrs: [203.0.113.1, 203.0.113.1]\n",
            ["spec.externalAddrs: '203.0.113.1' appears twice"],
            id="externalAddrs duplicate",
        ),
        pytest.param(
            VALID_SPEC + "externalAddrs: 203.0.113.1\n",
            ["spec.externalAddrs: expected a list, got '203.0.113.1'"],
            id="externalAddrs not a list",
        ),
        pytest.param(
            VALID_SPEC + "localnets: [10.0.0.0/8, 10.0.0.0/8]\n",
            ["spec.localnets: '10.0.0.0/8' appears twice"],
            id="localnets duplicate",
        ),
        pytest.param(
            VALID_SPEC + "localnets: [10.0.0.0/8, 10.0.0.0/33, 192.168.1.1]\n",
            [
                "spec.localnets[1]: expected a network like 10.0.0.0/8, got '10.0.0.0/33'",
                "spec.localnets[2]: expected a network like 10.0.0.0/8, got '192.168.1.1'",
            ],
            id="localnets invalid",
        ),
        pytest.param(
            VALID_SPEC + "unknownMethodAction: Drop\n",
            ["spec.unknownMethodAction: expected Discard or Respond, got 'Drop'"],
            id="unknownMethodAction invalid",
        ),
        pytest.param(
            "transport:\n  - {protocol: tls, port: 5061}\n  - {protocol: wss, port: 5063}\n"
            "methods: [INVITE]\nprocessor: {addr: 'p:1'}\n",
            ["spec.securityContext: required key missing (spec.transport uses tls or wss)"],
            id="tls and wss without securityContext",
        ),
        pytest.param(
            "transport: [{protocol: wss, port: 443}]\nmethods: [INVITE]\n"
            "processor: {addr: 'p:1'}\nsecurityContext:\n",
            ["spec.securityContext: required key missing (spec.transport uses wss)"],
            id="wss with an empty securityContext",
        ),
        pytest.param(
            VALID_SPEC + "securityContext: {keyStorePassword: x}\n",
            ["spec.securityContext.keyStore: required key missing"],
            id="keyStore missing",
        ),
        pytest.param(
            VALID_SPEC + "securityContext: {keyStore: ks.jks, keyStoreType: jks}\n",
            [
                "spec.securityContext.keyStoreType: jks is not supported: convert the keystore "
                "to PKCS#12 (keytool -importkeystore -deststoretype pkcs12) or use pem"
            ],
            id="keyStoreType jks",
        ),
        pytest.param(
            VALID_SPEC + "securityContext: {keyStore: ks, keyStoreType: der}\n",
            ["spec.securityContext.keyStoreType: expected pkcs12 or pem, got 'der'"],
            id="keyStoreType unknown",
        ),
        pytest.param(
            VALID_SPEC + "securityContext: {keyStore: ks, keyStorePassword: 1234}\n",
            ["spec.securityContext.keyStorePassword: expected a string, got 1234"],
            id="keyStorePassword not a string",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n"
            "    protocols: [TLSv1.2, TLSv1.1]\n",
            [
                "spec.securityContext.client.protocols[1]: TLSv1.1 is insecure and not "
                "supported (use TLSv1.2 or TLSv1.3)"
            ],
            id="TLSv1.1",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n    protocols: [SSLv3]\n",
            [
                "spec.securityContext.client.protocols[0]: SSLv3 is insecure and not "
                "supported (use TLSv1.2 or TLSv1.3)"
            ],
            id="SSLv3",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n    protocols: [TLSv1]\n",
            [
                "spec.securityContext.client.protocols[0]: TLSv1 is insecure and not "
                "supported (use TLSv1.2 or TLSv1.3)"
            ],
            id="TLSv1",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n    protocols: [TLSv4]\n",
            [
                "spec.securityContext.client.protocols[0]: unknown TLS protocol 'TLSv4' "
                "(expected TLSv1.2 or TLSv1.3)"
            ],
            id="TLS protocol unknown",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n    protocols: []\n",
            ["spec.securityContext.client.protocols: at least one protocol is required"],
            id="TLS protocols empty",
        ),
        pytest.param(
            VALID_SPEC + "securityContext:\n  keyStore: ks\n  client:\n    authType: Optional\n",
            [
                "spec.securityContext.client.authType: expected Disabled, DisabledAll, "
                "Required or Wanted, got 'Optional'"
            ],
            id="authType unknown",
        ),
        pytest.param(
            VALID_SPEC + "connections: {idleTimeout: -1, max: 0}\n",
            [
                "spec.connections.idleTimeout: expected a positive number of seconds, got -1",
                "spec.connections.max: expected a positive integer, got 0",
            ],
            id="connections limits",
        ),
        pytest.param(
            VALID_SPEC + "websocket: {allowedOrigins: '*'}\n",
            ["spec.websocket.allowedOrigins: expected a list, got '*'"],
            id="allowedOrigins not a list",
        ),
        pytest.param(
            VALID_SPEC + "maxInFlight: 2.5\nshutdownTimeout: -3\n",
            [
                "spec.maxInFlight: expected an integer, got 2.5",
                "spec.shutdownTimeout: expected zero or a positive number of seconds, got -3",
            ],
            id="maxInFlight and shutdownTimeout",
        ),
        pytest.param(
            VALID_SPEC + "maxInFlight: true\n",
            ["spec.maxInFlight: expected an integer, got True"],
            id="boolean is not an integer",
        ),
    ],
)
def test_spec_rules(tmp_path: Path, spec: str, expected: list[str]) -> None:
    assert problems_of(write(tmp_path, with_spec(spec))) == expected


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        kind: EdgePort
        apiVersion: v3
        spec:
          transport:
            - {protocol: udp, port: 5060}
            - {protocol: quic, port: x}
          methods: [INVITE, JUMP]
          processor: {timeout: 0}
          unknownMethodAction: discard
        """,
    )
    assert problems_of(path) == [
        "apiVersion: expected v2beta1 or v2, got 'v3'",
        "ref: required key missing",
        "spec.transport[1].protocol: unknown protocol 'quic' (expected udp, tcp, tls, ws or wss)",
        "spec.transport[1].port: expected an integer, got 'x'",
        "spec.methods[1]: unknown SIP method 'JUMP'",
        "spec.processor.addr: required key missing",
        "spec.processor.timeout: expected a positive number of seconds, got 0",
        "spec.unknownMethodAction: expected Discard or Respond, got 'discard'",
    ]


def test_keystore_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "missing.p12"
    path = write(
        tmp_path,
        with_spec(
            f"""\
            transport: [{{protocol: tls, port: 5061}}]
            methods: [INVITE]
            processor: {{addr: "p:1"}}
            securityContext:
              keyStore: {missing}
              keyStorePassword: changeme
            """
        ),
    )
    assert problems_of(path) == [
        f"spec.securityContext.keyStore: cannot open {missing}: No such file or directory"
    ]


def test_keystore_with_the_wrong_password(tmp_path: Path) -> None:
    keystore = write_leaf_pkcs12(tmp_path / "k.p12", "right", trustme.CA().issue_cert("x"))
    path = write(
        tmp_path,
        with_spec(
            f"""\
            transport: [{{protocol: tls, port: 5061}}]
            methods: [INVITE]
            processor: {{addr: "p:1"}}
            securityContext:
              keyStore: {keystore}
              keyStorePassword: wrong
              trustStore: {keystore}
              trustStorePassword: also-wrong
            """
        ),
    )
    assert problems_of(path) == [
        f"spec.securityContext.keyStore: cannot open {keystore}: "
        "wrong password (or a damaged PKCS#12 file)",
        f"spec.securityContext.trustStore: cannot open {keystore}: "
        "wrong password (or a damaged PKCS#12 file)",
    ]


# --- file-level problems -----------------------------------------------------------


def test_file_name_with_a_nul_character() -> None:
    assert problems_of(Path("edge\x00port.yaml")) == [
        "'edge\\x00port.yaml': cannot read the file: not a valid file name"
    ]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert problems_of(path) == [f"{path}: cannot read the file: No such file or directory"]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: EdgePort\nspec:\n  transport: [udp\n")
    (line,) = problems_of(path)
    assert line.startswith(f"{path}: line 4, column 1: ")


def test_json_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, '{"kind": "EdgePort",\n "ref" "x"}', name="edgeport.json")
    assert problems_of(path) == [f"{path}: line 2, column 8: Expecting ':' delimiter"]


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    assert problems_of(path) == [f"{path}: the file is empty"]


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- kind: EdgePort\n")
    assert problems_of(path) == [
        f"{path}: expected a mapping at the top level, got [{{'kind': 'EdgePort'}}]"
    ]


# --- unknown keys ----------------------------------------------------------------


def test_unknown_keys_are_warnings_naming_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        """\
        kind: EdgePort
        apiVersion: v2beta1
        ref: ep
        labels: {team: voice}
        spec:
          transport:
            - {protocol: udp, port: 5060, proto: x}
          methods: [INVITE]
          processor: {addr: "p:1", retries: 3}
          bindadr: 10.0.0.1
          localnets: [10.0.0.0/8]
        """,
    )
    expected = [
        "labels: unknown key, ignored",
        "spec.transport[0].proto: unknown key, ignored (did you mean protocol?)",
        "spec.processor.retries: unknown key, ignored",
        "spec.bindadr: unknown key, ignored (did you mean bindAddr?)",
    ]
    _, warnings = load_config_with_warnings(path, {})
    assert warnings == expected
    with caplog.at_level(logging.WARNING, logger="edgeport.config"):
        load_config(path, {})
    assert [r.getMessage() for r in caplog.records if r.name == "edgeport.config"] == expected


def test_warnings_travel_with_the_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path, with_spec("transport: [{protocol: udp, port: 5060}]\nmethod: [INVITE]\n")
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "spec.methods: required key missing",
        "spec.processor: required key missing",
    ]
    assert caught.value.warnings == ["spec.method: unknown key, ignored (did you mean methods?)"]


# --- environment --------------------------------------------------------------------

MINIMAL = with_spec(VALID_SPEC + "localnets: [10.0.0.0/8]\nexternalAddrs: [203.0.113.1]\n")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        {
            "PROCESSOR_ADDR": "routr-dispatcher:51902",
            "HOSTNAME": "edgeport-7f9c",
            "EXTERNAL_ADDRS": "198.51.100.1, sip.example.net,",
            "LOCALNETS": "172.16.0.0/12,192.168.0.0/16",
        },
    )
    assert config.processor.addr == "routr-dispatcher:51902"
    assert config.ref == "edgeport-7f9c"
    assert config.external_addrs == ("198.51.100.1", "sip.example.net")
    assert config.localnets == ("172.16.0.0/12", "192.168.0.0/16")


def test_empty_environment_values_are_unset(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        {"PROCESSOR_ADDR": "", "HOSTNAME": " ", "EXTERNAL_ADDRS": "", "LOCALNETS": ""},
    )
    assert config.processor.addr == "dispatcher:51901"
    assert config.ref == "edgeport-01"
    assert config.external_addrs == ("203.0.113.1",)
    assert config.localnets == ("10.0.0.0/8",)


def test_environment_fills_required_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        kind: EdgePort
        apiVersion: v2
        spec:
          transport: [{protocol: udp, port: 5060}]
          methods: [INVITE]
          localnets: [10.0.0.0/8]
        """,
    )
    config = load_config(path, {"HOSTNAME": "ep-host", "PROCESSOR_ADDR": "10.1.1.1:51901"})
    assert config.ref == "ep-host"
    assert config.processor.addr == "10.1.1.1:51901"


def test_invalid_environment_values_name_the_variable(tmp_path: Path) -> None:
    env = {
        "PROCESSOR_ADDR": "nowhere",
        "LOCALNETS": "10.0.0.0/8,10.0.0.0/99",
        "EXTERNAL_ADDRS": "1.1.1.1,1.1.1.1",
        "HEALTHCHECK_PORT": "http",
        "NATS_PUBLISHER_URL": "http://nats:4222",
        "NATS_PUBLISHER_SUBJECT": "routr events",
    }
    assert problems_of(write(tmp_path, MINIMAL), env) == [
        "PROCESSOR_ADDR (spec.processor.addr): expected host:port or 'builtin', got 'nowhere'",
        "EXTERNAL_ADDRS (spec.externalAddrs): '1.1.1.1' appears twice",
        "LOCALNETS (spec.localnets[1]): expected a network like 10.0.0.0/8, got '10.0.0.0/99'",
        "NATS_PUBLISHER_SUBJECT: not a valid NATS subject: 'routr events'",
        "NATS_PUBLISHER_URL: expected nats://host:port, got 'http://nats:4222'",
        "HEALTHCHECK_PORT: expected a port from 1 to 65535, got 'http'",
    ]


def test_environment_only_settings(tmp_path: Path) -> None:
    config, warnings = load_config_with_warnings(
        write(tmp_path, MINIMAL),
        {
            "CONSOLE_PUBLISHER_ENABLED": "TRUE",
            "NATS_PUBLISHER_ENABLED": "True",
            "NATS_PUBLISHER_URL": "nats://nats.routr:4222",
            "NATS_PUBLISHER_SUBJECT": "voice.events",
            "STRIP_SESSION_PROGRESS_SDP": "true",
            "ENABLE_HEALTHCHECKS": "true",
            "HEALTHCHECK_PORT": "9090",
        },
    )
    assert warnings == []
    assert config.publishers.console_enabled is True
    assert config.publishers.nats_enabled is True
    assert config.publishers.nats_url == "nats://nats.routr:4222"
    assert config.publishers.nats_subject == "voice.events"
    assert config.strip_session_progress_sdp is True
    assert config.health.enabled is True
    assert config.health.port == 9090


def test_environment_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), {})
    assert config.publishers.console_enabled is False
    assert config.publishers.nats_enabled is False
    assert config.publishers.nats_url == "nats://localhost:4222"
    assert config.publishers.nats_subject == "routr"
    assert config.strip_session_progress_sdp is False
    assert config.health.enabled is False
    assert config.health.port == 8080


@pytest.mark.parametrize(
    ("value", "enabled", "warning"),
    [
        ("true", True, None),
        ("tRuE", True, None),
        ("false", False, None),
        ("FALSE", False, None),
        ("1", False, "ENABLE_HEALTHCHECKS: '1' is not true or false; read as false"),
        ("yes", False, "ENABLE_HEALTHCHECKS: 'yes' is not true or false; read as false"),
    ],
)
def test_booleans_are_true_only_for_true(
    tmp_path: Path, value: str, enabled: bool, warning: str | None
) -> None:
    config, warnings = load_config_with_warnings(
        write(tmp_path, MINIMAL), {"ENABLE_HEALTHCHECKS": value}
    )
    assert config.health.enabled is enabled
    assert warnings == ([warning] if warning else [])


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("edgeport-01", "from-config-path"))
    assert load_config(None, {"CONFIG_PATH": str(path)}).ref == "from-config-path"


def test_explicit_path_wins_over_config_path(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_config(path, {"CONFIG_PATH": str(tmp_path / "absent.yaml")}).ref == "edgeport-01"


def test_no_file_at_all_gives_the_default_with_the_environment() -> None:
    config = load_config(None, {"PROCESSOR_ADDR": "dispatcher:51901", "LOCALNETS": "10.0.0.0/8"})
    assert config.ref == "edgeport-01"
    assert config.processor.addr == "dispatcher:51901"
    assert config.localnets == ("10.0.0.0/8",)


# --- localnets ------------------------------------------------------------------------


def test_localnets_detected_when_none_are_given(tmp_path: Path) -> None:
    path = write(tmp_path, with_spec(VALID_SPEC))
    detected = load_config(path, {}).localnets
    assert "127.0.0.1/8" in detected
    for entry in detected:
        address, _, prefix = entry.partition("/")
        assert address
        assert prefix.isdigit()


def test_loopback_skipped_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path, with_spec(VALID_SPEC))
    detected = load_config(path, {"IGNORE_LOOPBACK_FROM_LOCALNETS": "True"}).localnets
    assert "127.0.0.1/8" not in detected
    assert "::1/128" not in detected


def test_configured_localnets_are_not_replaced_by_detection(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_config(path, {"IGNORE_LOOPBACK_FROM_LOCALNETS": "true"}).localnets == (
        "10.0.0.0/8",
    )


def test_parse_if_inet6() -> None:
    text = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fd000000000000000000000000000002 04 40 00 82     eth0\n"
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
        "garbage\n"
    )
    assert [str(item) for item in parse_if_inet6(text)] == [
        "::1/128",
        "fd00::2/64",
        "fe80::fc:ff:fe00:1/64",
    ]


# --- default and description -----------------------------------------------------------


def test_default_config() -> None:
    config = default_config()
    assert config.ref == "edgeport-01"
    assert [(t.protocol, t.port, t.bind_addr) for t in config.transports] == [
        (Transport.UDP, 5060, "0.0.0.0"),
        (Transport.TCP, 5060, "0.0.0.0"),
        (Transport.WS, 5062, "0.0.0.0"),
    ]
    assert config.methods == (
        "REGISTER",
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "MESSAGE",
        "INFO",
        "NOTIFY",
        "SUBSCRIBE",
        "PRACK",
        "UPDATE",
        "REFER",
        "PUBLISH",
    )
    assert config.processor.addr == "builtin"
    assert config.security_context is None


def test_describe_masks_passwords(tmp_path: Path) -> None:
    keystore = write_leaf_pkcs12(tmp_path / "k.p12", "hunter2", trustme.CA().issue_cert("x"))
    path = write(
        tmp_path,
        with_spec(
            f"""\
            transport: [{{protocol: tls, port: 5061}}]
            methods: [INVITE]
            processor: {{addr: "p:1"}}
            localnets: [10.0.0.0/8]
            securityContext:
              keyStore: {keystore}
              keyStorePassword: hunter2
            """
        ),
    )
    described = describe_config(load_config(path, {}))
    security = described["spec"]["securityContext"]
    assert security["keyStore"] == str(keystore)
    assert security["keyStorePassword"] == "****"
    assert security["trustStorePassword"] == ""
    assert "hunter2" not in yaml.safe_dump(described)


def test_description_loads_back_to_the_same_configuration(tmp_path: Path) -> None:
    original = load_config(
        write(
            tmp_path,
            with_spec(
                """\
                transport:
                  - {protocol: udp, port: 5060, bindAddr: 10.0.0.2}
                  - {protocol: ws, port: 5062}
                methods: [INVITE, BYE]
                processor: {addr: "p:1", timeout: 2}
                externalAddrs: [203.0.113.1]
                localnets: [10.0.0.0/8]
                unknownMethodAction: Respond
                connections: {idleTimeout: 60, max: 10}
                websocket: {allowedOrigins: ["https://a.example"]}
                maxInFlight: 5
                shutdownTimeout: 1.5
                """
            ),
        ),
        {},
    )
    described = describe_config(original)
    env = {name: str(value).lower() for name, value in described.pop("environment").items()}
    again = write(tmp_path, yaml.safe_dump(described), name="again.yaml")
    reloaded, warnings = load_config_with_warnings(again, env)
    assert warnings == []
    assert reloaded == original
    assert isinstance(reloaded, EdgePortConfig)


# --- the shipped examples -------------------------------------------------------------


@pytest.mark.parametrize("name", ["edgeport.minimal.yaml", "edgeport.json"])
def test_examples_are_valid(name: str) -> None:
    config, warnings = load_config_with_warnings(EXAMPLES / name, {})
    assert warnings == []
    assert config.processor.addr == "dispatcher:51901"


def test_full_example_fails_only_for_its_absent_keystore() -> None:
    problems = problems_of(EXAMPLES / "edgeport.yaml")
    assert problems == [
        "spec.securityContext.keyStore: cannot open /etc/routr/certs/signaling.p12: "
        "No such file or directory",
        "spec.securityContext.trustStore: cannot open /etc/routr/certs/signaling.p12: "
        "No such file or directory",
    ]


# --- robustness: whatever the document, problems come back as lines -------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=True)
    | st.sampled_from(["udp", "TLS", "wss", "INVITE", "p:1", "10.0.0.0/8", "", "\x00", "a\nb"])
    | st.text(max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["protocol", "port", "bindAddr", "addr", "keyStore", "client", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)
_SPECS = st.fixed_dictionaries(
    {},
    optional={
        "transport": _VALUES,
        "methods": _VALUES,
        "processor": _VALUES,
        "bindAddr": _VALUES,
        "localnets": _VALUES,
        "externalAddrs": _VALUES,
        "securityContext": _VALUES,
        "connections": _VALUES,
        "unknownMethodAction": _VALUES,
    },
)
_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["EdgePort", "x"]) | _SCALARS,
        "apiVersion": st.sampled_from(["v2", "v2beta1"]) | _SCALARS,
        "ref": _SCALARS,
        "metadata": _VALUES,
        "spec": _SPECS | _VALUES,
        "1": _SCALARS,
    },
)


@settings(max_examples=150, deadline=None)
@given(document=_DOCUMENTS)
def test_any_document_gives_a_configuration_or_problem_lines(document: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "edgeport.json"
        path.write_text(json.dumps(document))
        accepted = False
        try:
            _, lines = load_config_with_warnings(path, {"LOCALNETS": "10.0.0.0/8"})
            accepted = True
        except ConfigError as error:
            lines = error.problems + error.warnings
            if not error.problems:
                pytest.fail("ConfigError without a problem")
    if accepted and document.get("kind") != "EdgePort":
        pytest.fail("a document without kind EdgePort was accepted")
    for line in lines:
        assert "\n" not in line
        assert ": " in line
