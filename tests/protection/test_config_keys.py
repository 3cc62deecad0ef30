"""The protection keys of the configuration: loading, defaults, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgeport.config import describe_config, load_config, load_config_with_warnings
from edgeport.config.model import DEFAULT_SCANNERS
from tests.test_config import problems_of, with_spec, write

VALID_SPEC = """\
transport: [{protocol: udp, port: 5060}]
methods: [INVITE]
processor: {addr: "p:1"}
localnets: [10.0.0.0/8]
"""


def test_protection_keys_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        with_spec(
            VALID_SPEC
            + """\
accessControl:
  allow: [192.0.2.0/24, "2001:db8::/32"]
  deny: [192.0.2.64/26]
protection:
  flood: {enabled: true, requests: 50, window: 2, banTime: 120, maxTracked: 1000,
          trusted: [198.51.100.0/24]}
  scanners: [friendly-scanner, my-bad-agent]
  maxConnectionsPerSource: 8
  handshakeTimeout: 3
  firstMessageTimeout: 4.5
"""
        ),
    )
    config = load_config(path, {})
    assert config.access_control.allow == ("192.0.2.0/24", "2001:db8::/32")
    assert config.access_control.deny == ("192.0.2.64/26",)
    flood = config.protection.flood
    assert (flood.enabled, flood.requests, flood.window, flood.ban_time, flood.max_tracked) == (
        True,
        50,
        2.0,
        120.0,
        1000,
    )
    assert flood.trusted == ("198.51.100.0/24",)
    assert config.protection.scanners == ("friendly-scanner", "my-bad-agent")
    assert config.protection.max_connections_per_source == 8
    assert config.protection.handshake_timeout == 3.0
    assert config.protection.first_message_timeout == 4.5


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, with_spec(VALID_SPEC)), {})
    assert config.access_control.allow == ()
    assert config.access_control.deny == ()
    assert config.protection.flood.enabled
    assert config.protection.flood.requests == 300
    assert config.protection.flood.window == 10.0
    assert config.protection.flood.ban_time == 60.0
    assert config.protection.scanners == DEFAULT_SCANNERS
    assert config.protection.max_connections_per_source == 256
    assert config.protection.handshake_timeout == 10.0
    assert config.protection.first_message_timeout == 30.0


def test_empty_scanner_list_turns_it_off(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, with_spec(VALID_SPEC + "protection: {scanners: []}\n")), {}
    )
    assert config.protection.scanners == ()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            "accessControl: {allow: [10.0.0.0/33], deny: [nope]}\n",
            [
                "spec.accessControl.allow[0]: expected a network like 10.0.0.0/8, "
                "got '10.0.0.0/33'",
                "spec.accessControl.deny[0]: expected a network like 10.0.0.0/8, got 'nope'",
            ],
            id="bad networks",
        ),
        pytest.param(
            "accessControl: {deny: 10.0.0.0/8}\n",
            ["spec.accessControl.deny: expected a list, got '10.0.0.0/8'"],
            id="deny not a list",
        ),
        pytest.param(
            "protection:\n  flood: {enabled: 1, requests: 0, window: -1, banTime: 0,"
            " maxTracked: 2.5, trusted: [x]}\n",
            [
                "spec.protection.flood.enabled: expected true or false, got 1",
                "spec.protection.flood.requests: expected a positive integer, got 0",
                "spec.protection.flood.window: expected a positive number of seconds, got -1",
                "spec.protection.flood.banTime: expected a positive number of seconds, got 0",
                "spec.protection.flood.maxTracked: expected an integer, got 2.5",
                "spec.protection.flood.trusted[0]: expected a network like 10.0.0.0/8, got 'x'",
            ],
            id="flood",
        ),
        pytest.param(
            "protection: {scanners: [' '], maxConnectionsPerSource: 0, handshakeTimeout: 0,"
            " firstMessageTimeout: '5'}\n",
            [
                "spec.protection.scanners[0]: must not be empty",
                "spec.protection.maxConnectionsPerSource: expected a positive integer, got 0",
                "spec.protection.handshakeTimeout: expected a positive number of seconds, got 0",
                "spec.protection.firstMessageTimeout: expected a number of seconds, got '5'",
            ],
            id="protection",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, extra: str, expected: list[str]) -> None:
    assert problems_of(write(tmp_path, with_spec(VALID_SPEC + extra))) == expected


def test_misspelled_key_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, with_spec(VALID_SPEC + "protection: {flood: {bantime: 5}}\n"))
    _, warnings = load_config_with_warnings(path, {})
    assert warnings == [
        "spec.protection.flood.bantime: unknown key, ignored (did you mean banTime?)"
    ]


def test_description_loads_back(tmp_path: Path) -> None:
    original = load_config(
        write(
            tmp_path,
            with_spec(
                VALID_SPEC
                + "accessControl: {deny: [203.0.113.0/24]}\n"
                + "protection: {flood: {requests: 9, trusted: [10.1.0.0/16]}, scanners: [x],"
                " maxConnectionsPerSource: 3}\n"
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
