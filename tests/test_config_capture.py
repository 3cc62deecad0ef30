"""HEP capture keys: spec.capture.hep and the HEP_ADDR variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeport.config import ConfigError, HepConfig, describe_config, load_config
from tests.config_fixtures.spec import write_spec


def test_off_by_default(tmp_path: Path) -> None:
    assert load_config(write_spec(tmp_path), {}).hep is None


def test_all_keys(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """\
        capture:
          hep:
            addr: heplify-server:9060
            agentId: 2001
            password: myHep
        """,
    )
    config = load_config(path, {})
    assert config.hep == HepConfig(addr="heplify-server:9060", agent_id=2001, password="myHep")
    described = describe_config(config)["spec"]["capture"]["hep"]
    assert described["addr"] == "heplify-server:9060"
    assert described["password"] != "myHep"


def test_hep_addr_turns_capture_on_and_overrides_the_file(tmp_path: Path) -> None:
    assert load_config(write_spec(tmp_path), {"HEP_ADDR": "10.0.0.5:9060"}).hep == HepConfig(
        addr="10.0.0.5:9060"
    )
    path = write_spec(tmp_path, "capture:\n  hep:\n    addr: homer:9060\n    agentId: 5\n")
    config = load_config(path, {"HEP_ADDR": "[2001:db8::5]:9060"})
    assert config.hep == HepConfig(addr="[2001:db8::5]:9060", agent_id=5)


@pytest.mark.parametrize(
    ("extra", "env", "problem"),
    [
        ("", {"HEP_ADDR": "homer"}, "HEP_ADDR (spec.capture.hep.addr): expected host:port"),
        ("capture:\n  hep:\n    addr: homer:99999\n", {}, "spec.capture.hep.addr: expected"),
        ("capture:\n  hep:\n    addr: builtin\n", {}, "spec.capture.hep.addr: expected"),
        (
            "capture:\n  hep:\n    addr: homer:9060\n    agentId: -1\n",
            {},
            "spec.capture.hep.agentId: expected an integer from 0 to 4294967295",
        ),
        ("capture:\n  hep:\n    agentId: 3\n", {}, "spec.capture.hep.addr"),
    ],
)
def test_bad_values_are_reported_with_their_key(
    tmp_path: Path, extra: str, env: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_spec(tmp_path, extra), env)
    assert problem in str(caught.value)
