"""Where the health server listens: spec.bindAddr, or the HEALTHCHECK_BIND_ADDR variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeport.config import ConfigError, describe_config, load_config
from tests.config_fixtures.spec import write_spec as minimal_spec


def write_spec(tmp_path: Path, bind_addr: str | None) -> Path:
    return minimal_spec(tmp_path, "" if bind_addr is None else f"bindAddr: {bind_addr}\n")


@pytest.mark.parametrize(
    ("bind_addr", "expected"),
    [(None, "0.0.0.0"), ("127.0.0.1", "127.0.0.1"), ("::1", "::1")],
)
def test_the_health_server_binds_spec_bind_addr_by_default(
    tmp_path: Path, bind_addr: str | None, expected: str
) -> None:
    config = load_config(write_spec(tmp_path, bind_addr), {"ENABLE_HEALTHCHECKS": "true"})
    assert config.health.bind_addr is None
    assert config.health_bind_addr == expected
    assert describe_config(config)["environment"]["HEALTHCHECK_BIND_ADDR"] == ""


def test_healthcheck_bind_addr_overrides_spec_bind_addr(tmp_path: Path) -> None:
    config = load_config(
        write_spec(tmp_path, "0.0.0.0"),
        {"ENABLE_HEALTHCHECKS": "true", "HEALTHCHECK_BIND_ADDR": " 127.0.0.1 "},
    )
    assert config.health_bind_addr == "127.0.0.1"
    assert config.bind_addr == "0.0.0.0"
    assert describe_config(config)["environment"]["HEALTHCHECK_BIND_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1:8080", "10.0.0.0/8", "999.1.1.1"])
def test_a_healthcheck_bind_addr_that_is_not_an_ip_address_is_refused(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_spec(tmp_path, None), {"HEALTHCHECK_BIND_ADDR": value})
    assert caught.value.problems == [
        f"HEALTHCHECK_BIND_ADDR: expected an IPv4 or IPv6 address, got {value!r}"
    ]
