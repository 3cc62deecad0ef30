"""``spec.workers``, ``WORKERS`` and ``--workers``: how many processes share the ports."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

import pytest

from edgeport.cli import main
from edgeport.config import ConfigError, describe_config, load_config

if TYPE_CHECKING:
    from pathlib import Path


def write(tmp_path: Path, extra: str = "", processor: str = "builtin") -> Path:
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            kind: EdgePort
            apiVersion: v2beta1
            ref: edgeport-01
            spec:
              transport:
                - protocol: udp
                  port: 5060
              methods: [REGISTER, INVITE]
              processor:
                addr: {processor}
            """
        )
        + extra
    )
    return path


def test_one_worker_by_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), {})
    assert config.workers == 1
    assert describe_config(config)["spec"]["workers"] == 1


def test_spec_workers_count(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "  workers: 4\n"), {}).workers == 4


def test_spec_workers_auto_is_one_per_usable_core(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "  workers: auto\n"), {})
    assert config.workers == len(os.sched_getaffinity(0))


def test_environment_overrides_spec_workers(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "  workers: 4\n"), {"WORKERS": "3"}).workers == 3
    auto = load_config(write(tmp_path), {"WORKERS": "AUTO"}).workers
    assert auto == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-1", "257", "many", "1.5"])
def test_bad_worker_counts_are_named(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, f"  workers: {value}\n"), {})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("spec.workers: expected 'auto' or a count")


def test_bad_environment_worker_count_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path), {"WORKERS": "none"})
    assert caught.value.problems[0].startswith("WORKERS")


def test_processor_on_a_unix_socket_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, processor="unix:/run/processor.sock"), {})
    assert config.processor.addr == "unix:/run/processor.sock"


def test_bad_workers_flag_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(write(tmp_path)), "--workers", "zero"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["--workers: expected 'auto' or a count from 1 to 256, got 'zero'"]


def test_worker_command_refuses_an_index_beyond_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config", str(write(tmp_path)), "worker", "--index", "2", "--count", "2"]
    assert main([*argv, "--rundir", str(tmp_path)]) == 2
    assert "worker index 2 is not below the count 2" in capsys.readouterr().err


def test_max_in_flight_and_connections_max_are_divided_among_the_workers(tmp_path: Path) -> None:
    from edgeport.workers.worker import worker_share

    config = load_config(
        write(tmp_path, "  maxInFlight: 1001\n  connections:\n    max: 10\n  workers: 4\n"), {}
    )
    share = worker_share(config, 4)
    assert share.max_in_flight == 251  # each worker: the ceiling of its share
    assert share.connections.max_connections == 3
    assert share.connections.idle_timeout == config.connections.idle_timeout
    assert share.protection == config.protection  # per-source limits hold for all together
    one = worker_share(config, 1)
    assert (one.max_in_flight, one.connections.max_connections) == (1001, 10)
