"""DNS keys: spec.dns (servers, timeouts, avoid time, cache size) and DNS_SERVERS."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeport.config import ConfigError, DnsCacheConfig, DnsConfig, describe_config, load_config
from tests.config_fixtures.spec import write_spec


def test_defaults_use_the_system_resolver(tmp_path: Path) -> None:
    dns = load_config(write_spec(tmp_path), {}).dns
    assert dns == DnsConfig()
    assert dns.servers == ()
    assert (dns.timeout, dns.failover_timeout, dns.avoid_for) == (5.0, 4.0, 30.0)


def test_all_keys(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        dns:
          servers: [10.0.0.2, "10.0.0.3:5353", "[2001:db8::53]:53", "2001:db8::54"]
          timeout: 2
          failoverTimeout: 1.5
          avoidFor: 0
          cache: {maxEntries: 500}
        """,
    )
    config = load_config(path, {})
    assert config.dns == DnsConfig(
        servers=("10.0.0.2:53", "10.0.0.3:5353", "[2001:db8::53]:53", "[2001:db8::54]:53"),
        timeout=2.0,
        failover_timeout=1.5,
        avoid_for=0.0,
        cache=DnsCacheConfig(max_entries=500),
    )
    assert describe_config(config)["spec"]["dns"] == {
        "servers": ["10.0.0.2:53", "10.0.0.3:5353", "[2001:db8::53]:53", "[2001:db8::54]:53"],
        "timeout": 2.0,
        "failoverTimeout": 1.5,
        "avoidFor": 0.0,
        "cache": {"maxEntries": 500},
    }


def test_bad_values_are_named_by_key_path(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        dns:
          servers: [dns.example.com, "10.0.0.2:99999"]
          timeout: 0
          failoverTimeout: -1
          avoidFor: forever
          cache: {maxEntries: 0}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "spec.dns.servers[0]: expected a DNS server as ip or ip:port (e.g. 10.0.0.2:53), "
        "got 'dns.example.com'",
        "spec.dns.servers[1]: expected a DNS server as ip or ip:port (e.g. 10.0.0.2:53), "
        "got '10.0.0.2:99999'",
        "spec.dns.timeout: expected a positive number of seconds, got 0",
        "spec.dns.failoverTimeout: expected a positive number of seconds, got -1",
        "spec.dns.avoidFor: expected a number of seconds, got 'forever'",
        "spec.dns.cache.maxEntries: expected a positive integer, got 0",
    ]


def test_dns_servers_variable_overrides_the_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "dns: {servers: [10.0.0.2]}\n")
    config = load_config(path, {"DNS_SERVERS": "10.9.9.9, 10.9.9.8:5353"})
    assert config.dns.servers == ("10.9.9.9:53", "10.9.9.8:5353")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"DNS_SERVERS": "resolver.local"})
    assert caught.value.problems == [
        "DNS_SERVERS (spec.dns.servers[0]): expected a DNS server as ip or ip:port "
        "(e.g. 10.0.0.2:53), got 'resolver.local'"
    ]
