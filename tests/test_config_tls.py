"""Outbound TLS keys: spec.securityContext.client.useSystemTrustStore (an edgeport extension)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import trustme
import yaml

from edgeport.config import ConfigError, describe_config, load_config, load_config_with_warnings
from tests.config_fixtures import write_leaf_pkcs12

HEADER = "kind: EdgePort\napiVersion: v2beta1\nref: edgeport-01\n"


def write_spec(tmp_path: Path, security: str, *, trust_store: bool) -> Path:
    ca = trustme.CA()
    keystore = write_leaf_pkcs12(tmp_path / "edge.p12", "changeit", ca.issue_cert("127.0.0.1"))
    lines = [f"keyStore: {keystore}", "keyStorePassword: changeit"]
    if trust_store:
        trust = tmp_path / "trust.pem"
        ca.cert_pem.write_to_path(str(trust))
        lines.append(f"trustStore: {trust}")
    spec = textwrap.dedent(
        """\
        methods: [REGISTER, INVITE]
        processor:
          addr: 127.0.0.1:51904
        localnets: [10.0.0.0/8]
        transport:
          - protocol: tls
            port: 5061
        securityContext:
        """
    )
    spec += textwrap.indent("\n".join(lines) + "\n" + textwrap.dedent(security), "  ")
    path = tmp_path / "edgeport.yaml"
    path.write_text(HEADER + "spec:\n" + textwrap.indent(spec, "  "))
    return path


def test_outbound_tls_trusts_the_system_cas_by_default(tmp_path: Path) -> None:
    config = load_config(write_spec(tmp_path, "", trust_store=False), {})
    assert config.security_context is not None
    assert config.security_context.client_use_system_trust_store is True
    described = describe_config(config)["spec"]["securityContext"]["client"]
    assert described["useSystemTrustStore"] is True


def test_the_system_cas_can_be_left_out_when_a_trust_store_is_given(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "client:\n  useSystemTrustStore: false\n", trust_store=True)
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.security_context is not None
    assert config.security_context.client_use_system_trust_store is False
    described = describe_config(config)
    assert described["spec"]["securityContext"]["client"]["useSystemTrustStore"] is False
    described.pop("environment")
    described["spec"]["securityContext"]["keyStorePassword"] = "changeit"  # masked
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(described))
    assert load_config(again, {}) == config


def test_no_system_cas_and_no_trust_store_is_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "client:\n  useSystemTrustStore: false\n", trust_store=False)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "spec.securityContext.client.useSystemTrustStore: false needs "
        "spec.securityContext.trustStore (outbound TLS would trust no certificate)"
    ]


@pytest.mark.parametrize("value", ["'yes'", "1", "null"])
def test_use_system_trust_store_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    path = write_spec(tmp_path, f"client:\n  useSystemTrustStore: {value}\n", trust_store=True)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    (problem,) = caught.value.problems
    assert problem.startswith(
        "spec.securityContext.client.useSystemTrustStore: expected true or false"
    )
