"""Every metric and label the dashboard and the alert rules name is one edgeport exposes.

A real ``edgeport --workers 2`` (UDP, TCP, TLS and WSS listeners, HEP
capture, the console event publisher, health server on) answers an OPTIONS,
then its ``/metrics`` is read: every ``edgeport_*`` name a query uses must be
a family there (a histogram's ``_bucket``, ``_sum`` and ``_count`` too).
Label names come from that exposition's samples and from the families
edgeport registers (a labelled family shows no sample before its first
event), plus job, instance, le and worker, which Prometheus and the
supervisor add.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Final

import pytest
import trio
import trustme

import edgeport.server  # noqa: F401  (imports every module that registers a family)
from edgeport.metrics import METRICS
from tests.config_fixtures import write_leaf_pkcs12
from tests.deploy.promql import (
    ALWAYS_LABELS,
    Query,
    dashboard_queries,
    label_names,
    metric_names,
    rule_queries,
)
from tests.support.edgeport_process import edgeport_env, open_edgeport
from tests.support.http_get import http_get
from tests.support.ports import free_port, stop_process
from tests.support.ua import UdpUA, sip

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

pytestmark = pytest.mark.slow

START_TIMEOUT: Final = 30.0  # seconds for the supervisor and both workers to be healthy
HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")


class Exposed:
    """The families of one exposition and the label names each may carry."""

    def __init__(self, exposition: str) -> None:
        self.names: set[str] = set()
        self.labels: dict[str, set[str]] = defaultdict(set)
        histograms: set[str] = set()
        for line in exposition.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(None, 3)
                self.names.add(name)
                if kind == "histogram":
                    histograms.add(name)
            elif line and not line.startswith("#") and "{" in line:
                name, rest = line.split("{", 1)
                pairs = rest.rsplit("}", 1)[0]
                for pair in pairs.split('",'):
                    if "=" in pair:
                        self.labels[name].add(pair.split("=", 1)[0].strip())
        for name in histograms:
            for suffix in HISTOGRAM_SUFFIXES:
                self.names.add(name + suffix)
                self.labels[name + suffix] |= self.labels[name]
        for family in METRICS.registry.families():
            self.labels[family.name].update(family.labelnames)
            if family.kind == "histogram":
                for suffix in HISTOGRAM_SUFFIXES:
                    self.labels[family.name + suffix].update(family.labelnames)

    def problems(self, queries: Iterable[Query]) -> list[str]:
        """One line per unknown metric or label name in ``queries``."""
        found: list[str] = []
        for query in queries:
            metrics = metric_names(query.expr)
            if not metrics:
                found.append(f"{query.where}: names no edgeport metric: {query.expr}")
            found.extend(
                f"{query.where}: edgeport exposes no metric {name}"
                for name in sorted(metrics - self.names)
            )
            known = set(ALWAYS_LABELS)
            for name in metrics:
                known |= self.labels.get(name, set())
            used = label_names(query.expr) | query.shown_labels
            if query.label_values_of is not None:
                used.add(query.label_values_of)
            found.extend(
                f"{query.where}: no metric of {sorted(metrics)} has a label {label!r}"
                for label in sorted(used - known)
            )
        return found


def write_config(tmp_path: Path, ports: dict[str, int], hep: str) -> Path:
    ca = trustme.CA()
    keystore = write_leaf_pkcs12(tmp_path / "edge.p12", "changeit", ca.issue_cert("127.0.0.1"))
    path = tmp_path / "edgeport.yaml"
    path.write_text(
        f"""kind: EdgePort
apiVersion: v2beta1
ref: edgeport-metric-names
spec:
  bindAddr: 127.0.0.1
  transport:
    - protocol: udp
      port: {ports["sip"]}
    - protocol: tcp
      port: {ports["sip"]}
    - protocol: tls
      port: {ports["tls"]}
    - protocol: wss
      port: {ports["wss"]}
  methods: [REGISTER, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE]
  processor:
    addr: builtin
  securityContext:
    keyStore: {keystore}
    keyStorePassword: changeit
    keyStoreType: pkcs12
  capture:
    hep:
      addr: {hep}
"""
    )
    return path


async def scrape_running_edgeport(tmp_path: Path) -> str:
    """``/metrics`` of a real ``edgeport --workers 2`` that answered one OPTIONS."""
    collector = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await collector.bind(("127.0.0.1", 0))
    ports = {"sip": free_port(), "tls": free_port(), "wss": free_port(), "health": free_port()}
    hep_host, hep_port = collector.getsockname()
    config = write_config(tmp_path, ports, f"{hep_host}:{hep_port}")
    env = edgeport_env(
        ENABLE_HEALTHCHECKS="true",
        HEALTHCHECK_PORT=str(ports["health"]),
        CONSOLE_PUBLISHER_ENABLED="true",
    )
    log = tmp_path / "edgeport.log"
    process = await open_edgeport(config, log, env, "--workers", "2")
    try:
        with trio.fail_after(START_TIMEOUT):
            while (await http_get(ports["health"], "/healthz"))[0] != 200:
                assert process.poll() is None, log.read_text()
                await trio.sleep(0.05)
        ua = await UdpUA.open(("127.0.0.1", ports["sip"]))
        await ua.send(
            sip(
                f"""OPTIONS sip:127.0.0.1:{ports["sip"]} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-metric-names;rport
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=metric-names
To: <sip:127.0.0.1>
Call-ID: metric-names@127.0.0.1
CSeq: 1 OPTIONS
Content-Length: 0

"""
            )
        )
        answer = await ua.receive_until(lambda message: message.status is not None)
        assert answer.status == 200
        status, exposition = await http_get(ports["health"], "/metrics")
        assert status == 200
        return exposition
    finally:
        await stop_process(process)
        collector.close()


async def test_every_metric_and_label_the_dashboard_and_alerts_name_is_exposed(
    tmp_path: Path,
) -> None:
    exposition = await scrape_running_edgeport(tmp_path)
    exposed = Exposed(exposition)
    # The scrape is a real one: workers' series carry their worker label.
    assert 'edgeport_messages_received_total{worker="' in exposition
    # The checker catches a misspelt metric and a label no metric has.
    assert exposed.problems(
        [
            Query("typo", "rate(edgeport_messages_recieved_total[5m])"),
            Query("label", "sum by (methd) (rate(edgeport_messages_received_total[5m]))"),
            Query("legend", "edgeport_active_transactions", frozenset({"transport"})),
        ]
    ) == [
        "typo: edgeport exposes no metric edgeport_messages_recieved_total",
        "label: no metric of ['edgeport_messages_received_total'] has a label 'methd'",
        "legend: no metric of ['edgeport_active_transactions'] has a label 'transport'",
    ]
    problems = exposed.problems([*dashboard_queries(), *rule_queries()])
    assert problems == [], "\n".join(problems)
