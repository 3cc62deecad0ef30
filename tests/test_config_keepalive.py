"""spec.largeRequestsOverTcp and spec.connections.webSocketPingInterval: defaults,
values, the one-line error naming the key, and what check-config shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeport.config import ConfigError, describe_config, load_config
from tests.config_fixtures.spec import write_spec


def test_defaults_are_1300_bytes_and_a_ping_every_25_s(tmp_path: Path) -> None:
    config = load_config(write_spec(tmp_path), {})
    assert config.large_requests_over_tcp == 1300
    assert config.connections.web_socket_ping_interval == 25.0
    spec = describe_config(config)["spec"]
    assert spec["largeRequestsOverTcp"] == 1300
    assert spec["connections"]["webSocketPingInterval"] == 25.0


@pytest.mark.parametrize(
    ("value", "expected"), [("4000", 4000), ("false", None), ("true", 1300), ("200", 200)]
)
def test_large_requests_over_tcp_values(tmp_path: Path, value: str, expected: int | None) -> None:
    config = load_config(write_spec(tmp_path, f"largeRequestsOverTcp: {value}\n"), {})
    assert config.large_requests_over_tcp == expected
    shown = describe_config(config)["spec"]["largeRequestsOverTcp"]
    assert shown == (expected if expected is not None else False)


@pytest.mark.parametrize("value", ["0", "1", "30"])
def test_ping_interval_values(tmp_path: Path, value: str) -> None:
    path = write_spec(tmp_path, f"connections: {{webSocketPingInterval: {value}}}\n")
    assert load_config(path, {}).connections.web_socket_ping_interval == float(value)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "largeRequestsOverTcp: 100\n",
            "spec.largeRequestsOverTcp: expected 200 to 65507 bytes, or false, got 100",
        ),
        (
            "largeRequestsOverTcp: 70000\n",
            "spec.largeRequestsOverTcp: expected 200 to 65507 bytes, or false, got 70000",
        ),
        (
            "largeRequestsOverTcp: big\n",
            "spec.largeRequestsOverTcp: expected a number of bytes, or false, got 'big'",
        ),
        (
            "connections: {webSocketPingInterval: 0.5}\n",
            "spec.connections.webSocketPingInterval: expected 0 (off) or at least 1 seconds, "
            "got 0.5",
        ),
        (
            "connections: {webSocketPingInterval: -3}\n",
            "spec.connections.webSocketPingInterval: expected zero or a positive number of "
            "seconds, got -3",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_spec(tmp_path, extra), {})
    assert problem in str(caught.value)
