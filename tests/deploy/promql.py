"""What the dashboard and the alert rules ask Prometheus: their queries, metric and label names.

A light reading of PromQL, enough for the queries in deploy/: metric names
are the ``edgeport_*`` words; label names are those of the matchers in
braces, of ``by``/``without``/``on``/``ignoring``/``group_*`` lists, of
``label_values(..., label)``, and of the ``{{label}}`` legends and
``$labels.label`` annotations that show them. Grafana's variables are
replaced by values Prometheus accepts, so that ``promtool`` can parse
every query (as recording rules).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
DASHBOARD: Final = ROOT / "deploy/grafana/edgeport-dashboard.json"
RULES: Final = ROOT / "deploy/prometheus/edgeport-alerts.yaml"

# Labels every query may use: Prometheus adds job and instance at scrape,
# histograms have le, and an `edgeport --workers N` supervisor labels each
# worker's samples worker="<i>" (edgeport/workers/metrics_merge.py).
ALWAYS_LABELS: Final = frozenset({"job", "instance", "le", "worker"})

_METRIC: Final = re.compile(r"\bedgeport_[a-z_]+\b")
_BRACES: Final = re.compile(r"\{([^{}]*)\}")
_MATCHER: Final = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING: Final = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_LABEL_VALUES: Final = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$")
_LEGEND: Final = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_TEMPLATE_LABEL: Final = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
_GRAFANA_VARIABLES: Final = (
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$job", ".*"),
    ("$instance", ".*"),
    ("$worker", ".*"),
)


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression, where it comes from, and the labels its output shows."""

    where: str
    expr: str
    shown_labels: frozenset[str] = frozenset()  # legend {{label}}, $labels.label
    label_values_of: str | None = None  # label_values(selector, label): the label


def promtool() -> str:
    """The promtool executable; fails in CI and skips elsewhere when it is missing."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def label_names(expr: str) -> set[str]:
    """Label names the expression matches on or groups by."""
    found: set[str] = set()
    for inside in _BRACES.findall(expr):
        found.update(_MATCHER.findall(inside))
    for listed in _GROUPING.findall(expr):
        found.update(name.strip() for name in listed.split(",") if name.strip())
    return found


def as_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced by values Prometheus parses."""
    for variable, value in _GRAFANA_VARIABLES:
        expr = expr.replace(variable, value)
    return expr


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[Query]:
    """Every PromQL expression of the dashboard: panels, annotations, variables."""
    board = dashboard()
    queries: list[Query] = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            shown = frozenset(_LEGEND.findall(target.get("legendFormat", "")))
            queries.append(Query(f"panel {panel['title']!r}", target["expr"], shown))
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            text = annotation.get("titleFormat", "") + annotation.get("textFormat", "")
            shown = frozenset(_LEGEND.findall(text))
            queries.append(Query(f"annotation {annotation['name']!r}", annotation["expr"], shown))
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match is not None, f"variable {variable['name']}: not label_values(...)"
        selector, label = match.groups()
        queries.append(Query(f"variable {variable['name']!r}", selector, label_values_of=label))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def rule_queries() -> list[Query]:
    queries: list[Query] = []
    for rule in alert_rules():
        text = " ".join(str(value) for value in rule.get("annotations", {}).values())
        shown = frozenset(_TEMPLATE_LABEL.findall(text))
        queries.append(Query(f"alert {rule['alert']}", rule["expr"], shown))
    return queries
