"""deploy/grafana/edgeport-dashboard.json: importable, complete, and every query parses.

The file is tools/gen_dashboard.py's output. Its PromQL is parsed by
``promtool`` (as recording rules, Grafana's variables replaced), and a
worker selection of "All" is shown to keep a single process's series, which
have no ``worker`` label.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import yaml

from tests.deploy.promql import (
    DASHBOARD,
    ROOT,
    as_promql,
    dashboard,
    dashboard_queries,
    promtool,
)

PROMTOOL_TIMEOUT = 60.0  # seconds for one promtool run
GRID_WIDTH = 24


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_dashboard", ROOT / "tools/gen_dashboard.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_promtool(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT,
        check=False,
    )


def test_the_committed_dashboard_is_what_tools_gen_dashboard_renders() -> None:
    assert DASHBOARD.read_text() == generator().render(), (
        "run `python tools/gen_dashboard.py` and commit deploy/grafana/edgeport-dashboard.json"
    )


def test_the_dashboard_picks_a_prometheus_datasource_and_job_instance_and_worker() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] == "edgeport"
    assert "id" not in board  # Grafana assigns it at import
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "worker"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "worker"):
        variable = variables[name]
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"
        assert variable["query"]["query"].endswith(f", {name})")


def test_every_panel_asks_the_chosen_datasource_and_filters_on_the_variables() -> None:
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            expr = target["expr"]
            assert 'job=~"$job"' in expr, (panel["title"], expr)
            assert 'instance=~"$instance"' in expr, (panel["title"], expr)
            # The supervisor's own gauge has no worker label: filtering it on a
            # chosen worker would hide it.
            if "edgeport_workers_running" not in expr:
                assert 'worker=~"$worker"' in expr, (panel["title"], expr)


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid() -> None:
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


def test_the_dashboard_shows_what_an_operator_of_edgeport_watches() -> None:
    exprs = " ".join(query.expr for query in dashboard_queries())
    for needed in (
        "sum by (method) (rate(edgeport_messages_received_total",
        "sum by (status_class) (rate(edgeport_messages_sent_total",
        "histogram_quantile(0.99, sum by (le) (rate(edgeport_processor_latency_seconds_bucket",
        "sum by (outcome) (rate(edgeport_processor_calls_total",
        "edgeport_active_transactions",
        "sum by (transport) (edgeport_active_connections",
        "sum by (reason) (rate(edgeport_dropped_messages_total",
        "edgeport_bans_total",
        "edgeport_banned_sources",
        "edgeport_events_published_total",
        "edgeport_events_dropped_total",
        "edgeport_hep_sent_total",
        "edgeport_hep_dropped_total",
        "sum by (result) (increase(edgeport_config_reloads_total",
        "edgeport_config_generation",
        "edgeport_tls_certificate_expiry_seconds",
        "sum by (instance, worker) (rate(edgeport_messages_received_total",
        "edgeport_worker_restarts_total",
    ):
        assert needed in exprs, needed


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": as_promql(query.expr)}
                    for n, query in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules))
    result = run_promtool(tmp_path, "check", "rules", "dashboard.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_promtool_rejects_a_broken_dashboard_query(tmp_path: Path) -> None:
    # The check above has teeth: one unbalanced parenthesis fails it.
    rules = {"groups": [{"name": "d", "rules": [{"record": "d:q", "expr": "sum(rate(x[5m])"}]}]}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(rules))
    assert run_promtool(tmp_path, "check", "rules", "broken.yaml").returncode != 0


def test_worker_all_keeps_the_series_of_a_single_process_without_a_worker_label(
    tmp_path: Path,
) -> None:
    # The "Active transactions" panel's query with worker "All" (.*), over one
    # single process (no worker label) and one supervisor's two workers.
    expr = next(
        as_promql(query.expr)
        for query in dashboard_queries()
        if query.where == "panel 'Active transactions'"
    )
    (tmp_path / "record.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "d:q", "expr": expr}]}]})
    )
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["record.yaml"],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": 'edgeport_active_transactions{job="e",instance="one"}',
                                "values": "7x5",
                            },
                            {
                                "series": 'edgeport_active_transactions{job="e",instance="two",'
                                'worker="0"}',
                                "values": "3x5",
                            },
                            {
                                "series": 'edgeport_active_transactions{job="e",instance="two",'
                                'worker="1"}',
                                "values": "4x5",
                            },
                        ],
                        "promql_expr_test": [
                            {
                                "expr": "d:q",
                                "eval_time": "2m",
                                "exp_samples": [
                                    {"labels": 'd:q{instance="one"}', "value": 7},
                                    {"labels": 'd:q{instance="two",worker="0"}', "value": 3},
                                    {"labels": 'd:q{instance="two",worker="1"}', "value": 4},
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = run_promtool(tmp_path, "test", "rules", "test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
