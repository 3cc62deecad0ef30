"""One reload: the file read again, checked, applied or refused; counted and logged."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
import trustme

from edgeport.metrics import EdgeportMetrics
from edgeport.reload.reloader import ConfigSource, Reloader
from tests.config_fixtures import write_leaf_pkcs12

if TYPE_CHECKING:
    from pathlib import Path

    from edgeport.config import EdgePortConfig
    from edgeport.transports.tls import TlsSet

BASE = """kind: EdgePort
apiVersion: v2beta1
ref: edgeport-reload-test
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: 5060
  methods: [REGISTER, INVITE]
  processor:
    addr: 10.0.0.1:51901
  localnets: [10.0.0.0/8]
"""
ENV = {"LOCALNETS": ""}


class Applied:
    def __init__(self) -> None:
        self.configs: list[EdgePortConfig] = []
        self.tls: list[TlsSet | None] = []

    def __call__(self, config: EdgePortConfig, tls: TlsSet | None) -> None:
        self.configs.append(config)
        self.tls.append(tls)


def reloader_for(path: Path, applied: Applied, metrics: EdgeportMetrics) -> Reloader:
    source = ConfigSource(str(path), ENV)
    config, _ = source.load()
    return Reloader(source, config, applied, metrics)


def started_on_base(tmp_path: Path) -> tuple[Path, Applied, EdgeportMetrics, Reloader]:
    """A reloader that started on ``BASE``: its file, what it applies, its metrics."""
    path = tmp_path / "edgeport.yaml"
    path.write_text(BASE)
    applied, metrics = Applied(), EdgeportMetrics()
    return path, applied, metrics, reloader_for(path, applied, metrics)


def reloads(metrics: EdgeportMetrics, result: str) -> float:
    return metrics.config_reloads.labels(result=result).value


async def test_a_valid_change_is_applied_and_counted(tmp_path: Path) -> None:
    path, applied, metrics, reloader = started_on_base(tmp_path)
    assert metrics.config_generation.labels().value == 1
    path.write_text(BASE.replace("methods: [REGISTER, INVITE]", "methods: [REGISTER]"))
    result = await reloader.reload("test")
    assert (result.result, result.generation) == ("applied", 2)
    assert [config.methods for config in applied.configs] == [("REGISTER",)]
    assert reloader.config.methods == ("REGISTER",)
    assert metrics.config_generation.labels().value == 2
    assert (reloads(metrics, "applied"), reloads(metrics, "failed")) == (1, 0)


async def test_an_invalid_file_changes_nothing_and_logs_each_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, applied, metrics, reloader = started_on_base(tmp_path)
    before = reloader.config
    path.write_text(
        BASE.replace("port: 5060", "port: 99999").replace("[REGISTER, INVITE]", "[REGISTER, NOPE]")
    )
    with caplog.at_level(logging.ERROR, logger="edgeport.reload"):
        result = await reloader.reload("test")
    assert (result.result, result.generation) == ("failed", 1)
    assert applied.configs == []
    assert reloader.config is before
    assert metrics.config_generation.labels().value == 1
    assert reloads(metrics, "failed") == 1
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("spec.transport[0].port: ") for line in lines), lines
    assert any(line.startswith("spec.methods[1]: ") for line in lines), lines


async def test_a_new_port_is_applied_partly_and_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, applied, metrics, reloader = started_on_base(tmp_path)
    path.write_text(
        BASE.replace("port: 5060", "port: 5070").replace("10.0.0.1:51901", "10.0.0.2:51901")
    )
    with caplog.at_level(logging.INFO, logger="edgeport.reload"):
        result = await reloader.reload("test")
    assert (result.result, result.restart) == ("partial", ("spec.transport",))
    assert applied.configs[0].processor.addr == "10.0.0.2:51901"  # applied
    assert applied.configs[0].transports[0].port == 5060  # kept until a restart
    restart_lines = [r.getMessage() for r in caplog.records if "needs a restart" in r.getMessage()]
    assert restart_lines == [
        "configuration generation 2 applied; needs a restart to take effect: spec.transport"
    ]
    assert reloads(metrics, "partial") == 1


async def test_a_keystore_that_cannot_be_opened_fails_the_reload(tmp_path: Path) -> None:
    ca = trustme.CA()
    keystore = write_leaf_pkcs12(tmp_path / "edge.p12", "changeit", ca.issue_cert("127.0.0.1"))
    path = tmp_path / "edgeport.yaml"
    secure = (
        BASE + f"  securityContext:\n    keyStore: {keystore}\n    keyStorePassword: changeit\n"
    )
    path.write_text(secure)
    applied, metrics = Applied(), EdgeportMetrics()
    reloader = reloader_for(path, applied, metrics)
    keystore.write_bytes(b"not a keystore")
    result = await reloader.reload("test")
    assert result.result == "failed"
    assert result.problems[0].startswith(f"spec.securityContext.keyStore: cannot open {keystore}")
    assert applied.configs == []
    write_leaf_pkcs12(keystore, "changeit", ca.issue_cert("127.0.0.1"))
    result = await reloader.reload("test")
    assert result.result == "applied"
    assert applied.tls[0] is not None
