"""deploy/prometheus: the alert rules load in Prometheus, and each fires when it should.

``promtool`` (Debian's ``prometheus`` package; .ci/run installs it) checks
the rules and runs their unit tests, edgeport-alerts.test.yaml. Without it
these tests skip locally, but fail in CI (``CI=true``), where a skip would
hide rules nobody checked.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import yaml

from tests.deploy.promql import RULES, alert_rules, promtool

if TYPE_CHECKING:
    from pathlib import Path

RULE_TESTS = RULES.with_name("edgeport-alerts.test.yaml")
PROMTOOL_TIMEOUT = 60.0  # seconds for one promtool run


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_each_alert_fires_in_its_promtool_case_and_a_healthy_edgeport_raises_none() -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_fails_an_alert_that_does_not_fire_as_its_case_expects(tmp_path: Path) -> None:
    # The unit tests have teeth: with the error threshold raised out of reach,
    # the processor-errors case fails.
    rules = RULES.read_text().replace("> 0.05", "> 0.9")
    assert rules != RULES.read_text()
    (tmp_path / RULES.name).write_text(rules)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "EdgeportProcessorErrors" in result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {
        "EdgeportProcessorErrors",
        "EdgeportProcessorLatencyHigh",
        "EdgeportOverloadShedding",
        "EdgeportTlsCertificateExpiringSoon",
        "EdgeportWorkerRestarted",
        "EdgeportEventsDropped",
        "EdgeportConfigReloadFailed",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_every_alert_has_a_case_that_fires_it_and_the_quiet_case_covers_them_all() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            if check["exp_alerts"]:
                fired.add(check["alertname"])
            elif case["name"].startswith("a healthy edgeport"):
                quiet.add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert fired == names
    assert quiet == names
