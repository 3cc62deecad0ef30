"""Generate deploy/grafana/edgeport-dashboard.json, edgeport's Grafana dashboard.

The dashboard is written here as code (one function per kind of panel, one
line per query) and rendered to the JSON Grafana imports, so a panel is
added or changed in one place and the layout is computed, not hand-placed.

Variables: ``datasource`` (any Prometheus), ``job``, ``instance`` and
``worker``. An ``edgeport --workers N`` supervisor labels every worker's
samples ``worker="<i>"`` (edgeport/workers/metrics_merge.py); a single
process has no ``worker`` label, which the ``worker`` variable's "All"
(``.*``) still matches, so one dashboard serves both.

Usage: ``python tools/gen_dashboard.py [OUTPUT]`` (default
``deploy/grafana/edgeport-dashboard.json``). tests/deploy/test_dashboard.py
checks that the committed file is this script's output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "deploy" / "grafana" / "edgeport-dashboard.json"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query's matchers; WORKERLESS for the supervisor's own series.
SEL = 'job=~"$job", instance=~"$instance", worker=~"$worker"'
WORKERLESS = 'job=~"$job", instance=~"$instance"'
RATE = "[$__rate_interval]"
REQUESTS = 'status_class="request"'
RESPONSES = 'status_class!="request"'
GRID_WIDTH = 24
PANEL_HEIGHT = 8
DAY_SECONDS = 86400

Json = dict[str, Any]


def rate(metric: str, extra: str = "") -> str:
    matchers = f"{SEL}, {extra}" if extra else SEL
    return f"rate({metric}{{{matchers}}}{RATE})"


def increase(metric: str, extra: str = "") -> str:
    matchers = f"{SEL}, {extra}" if extra else SEL
    return f"increase({metric}{{{matchers}}}{RATE})"


def quantile(q: float, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({group}) "
        f"({rate('edgeport_processor_latency_seconds_bucket')}))"
    )


def now(metric: str) -> str:
    """A gauge's samples now, under the dashboard's matchers."""
    return f"{metric}{{{SEL}}}"


def by(labels: str, expr: str, legend: str = "{}", *, agg: str = "sum") -> tuple[str, str]:
    """A query with one series per value of ``labels`` (``sum by (labels) (expr)``) and
    its legend: ``{}`` in ``legend`` stands for the labels' values (``{{method}}``)."""
    values = " ".join(f"{{{{{name.strip()}}}}}" for name in labels.split(","))
    return f"{agg} by ({labels}) ({expr})", legend.replace("{}", values)


def target(expr: str, legend: str, ref: int) -> Json:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": chr(ord("A") + ref),
    }


def timeseries(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    unit: str,
    *,
    stack: bool = False,
    width: int = 8,
) -> Json:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": PANEL_HEIGHT},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "showPoints": "never",
                    "spanNulls": False,
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [target(expr, legend, i) for i, (expr, legend) in enumerate(queries)],
    }


def stat(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    unit: str,
    steps: list[tuple[str, float | None]],
    *,
    width: int = 8,
) -> Json:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": PANEL_HEIGHT},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for color, value in steps],
                },
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
        "targets": [
            {**target(expr, legend, i), "instant": True, "range": False}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def traffic() -> list[Json]:
    received = "edgeport_messages_received_total"
    sent = "edgeport_messages_sent_total"
    return [
        row("Traffic"),
        timeseries(
            "Requests received by method",
            "SIP requests received per second (method `other`: any method edgeport does not know).",
            [by("method", rate(received, REQUESTS))],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Responses sent by status class",
            "Responses edgeport sent to clients and peers (its own and relayed).",
            [by("status_class", rate(sent, RESPONSES))],
            "ops",
            stack=True,
        ),
        timeseries(
            "Responses received by status class",
            "Responses received from the peers edgeport forwarded requests to.",
            [by("status_class", rate(received, RESPONSES))],
            "ops",
            stack=True,
        ),
        timeseries(
            "Requests sent by method",
            "Requests edgeport forwarded (and retransmitted), by method.",
            [by("method", rate(sent, REQUESTS))],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Messages by transport",
            "Every SIP message received (in) and sent (out), by transport.",
            [
                by("transport", rate(received), "{} in"),
                by("transport", rate(sent), "{} out"),
            ],
            "ops",
        ),
        timeseries(
            "Messages received by worker",
            "How the kernel spreads traffic over the worker processes of `--workers N` "
            "(one line, with no worker, for a single process).",
            [by("instance, worker", rate(received))],
            "ops",
        ),
    ]


def processor() -> list[Json]:
    calls = "edgeport_processor_calls_total"
    return [
        row("Processor"),
        timeseries(
            "Processor latency",
            "Latency of successful processor calls (gRPC to the Routr Dispatcher or "
            "Processor, or the built-in processor), from the histogram's buckets.",
            [
                (quantile(0.5), "p50"),
                (quantile(0.9), "p90"),
                (quantile(0.99), "p99"),
            ],
            "s",
            width=6,
        ),
        timeseries(
            "Processor calls by outcome",
            "ok, error (the processor failed or was unreachable), timeout.",
            [by("outcome", rate(calls))],
            "ops",
            stack=True,
            width=6,
        ),
        timeseries(
            "Processor p99 latency by worker",
            "The 99th percentile per instance and worker process.",
            [(quantile(0.99, "instance, worker"), "{{instance}} {{worker}}")],
            "s",
            width=6,
        ),
        stat(
            "Processor failures",
            "Share of processor calls that failed or timed out over the last 5 minutes "
            "(the EdgeportProcessorErrors alert fires above 5%).",
            [
                (
                    f'sum(rate({calls}{{{SEL}, outcome=~"error|timeout"}}[5m])) '
                    f"/ sum(rate({calls}{{{SEL}}}[5m]))",
                    "failed",
                )
            ],
            "percentunit",
            [("green", None), ("orange", 0.01), ("red", 0.05)],
            width=6,
        ),
    ]


def transactions_and_connections() -> list[Json]:
    return [
        row("Transactions and connections"),
        timeseries(
            "Active transactions",
            "Live SIP transactions, per instance and worker.",
            [by("instance, worker", now("edgeport_active_transactions"))],
            "short",
            stack=True,
        ),
        timeseries(
            "Retransmissions by transport",
            "Requests and responses sent again by transaction timers.",
            [by("transport", rate("edgeport_retransmissions_total"))],
            "ops",
        ),
        timeseries(
            "Open connections by transport",
            "TCP, TLS, WS and WSS connections open now.",
            [by("transport", now("edgeport_active_connections"))],
            "short",
            stack=True,
        ),
        timeseries(
            "Transport events",
            "Connections opened, closed, refused, idle-closed; framing errors; TLS and "
            "WebSocket handshake failures; PROXY protocol refusals.",
            [by("event", rate("edgeport_transport_events_total"))],
            "ops",
        ),
        timeseries(
            "Memory budget",
            "Bytes charged to each share of spec.limits.memory, and each share's size.",
            [
                by("share", now("edgeport_memory_budget_used_bytes"), "{} used"),
                by("share", now("edgeport_memory_budget_limit_bytes"), "{} limit"),
            ],
            "bytes",
        ),
        timeseries(
            "Transactions evicted",
            "Answered transactions dropped before their timers ended, to make room in "
            "the memory budget.",
            [(f"sum ({rate('edgeport_transactions_evicted_total')})", "evicted")],
            "ops",
        ),
    ]


def drops_and_protection() -> list[Json]:
    return [
        row("Drops and edge protection"),
        timeseries(
            "Dropped messages by reason",
            "Messages dropped or refused: parse errors, overload shedding (overload*), "
            "access lists (denied), bans (banned), scanners, loops, stray responses...",
            [by("reason", rate("edgeport_dropped_messages_total"))],
            "ops",
            stack=True,
            width=12,
        ),
        timeseries(
            "Bans",
            "Sources banned for going over spec.protection.flood, and sources banned now "
            "(bans are shared by the workers: the largest worker's count).",
            [
                (f"sum ({increase('edgeport_bans_total')})", "new bans"),
                (
                    f"sum (max by (job, instance) (edgeport_banned_sources{{{SEL}}}))",
                    "banned now",
                ),
            ],
            "short",
            width=12,
        ),
        timeseries(
            "Connections closed by edge protection",
            "Inbound connections closed: denied, banned, per_source_limit, "
            "handshake_timeout, first_message_timeout.",
            [by("reason", rate("edgeport_protection_closed_connections_total"))],
            "ops",
            stack=True,
            width=12,
        ),
        timeseries(
            "WebSocket aliases",
            "Claims of a `.invalid` Contact host held by another live connection "
            "(refused), and probes of the holder.",
            [
                (f"sum ({rate('edgeport_alias_claims_refused_total')})", "claims refused"),
                by("result", rate("edgeport_alias_probes_total"), "probe {}"),
            ],
            "ops",
            width=12,
        ),
    ]


def events_and_hep() -> list[Json]:
    return [
        row("Events (NATS) and HEP capture"),
        timeseries(
            "Events",
            "call.started, call.ended, endpoint.registered events published and dropped "
            "(queue full or too large), by publisher.",
            [
                by("publisher", rate("edgeport_events_published_total"), "{} published"),
                by("publisher", rate("edgeport_events_dropped_total"), "{} dropped"),
            ],
            "ops",
        ),
        timeseries(
            "Event queue depth",
            "Events waiting to be published (each publisher holds at most 10,000).",
            [by("publisher", now("edgeport_event_queue_depth"))],
            "short",
        ),
        timeseries(
            "HEP capture",
            "HEP packets sent to the collector (Homer) and dropped.",
            [
                (f"sum ({rate('edgeport_hep_sent_total')})", "sent"),
                (f"sum ({rate('edgeport_hep_dropped_total')})", "dropped"),
            ],
            "pps",
        ),
    ]


def workers() -> list[Json]:
    return [
        row("Worker processes"),
        stat(
            "Workers running",
            "Worker processes each supervisor runs (`--workers N`; empty for a single process).",
            [
                (
                    f"sum by (instance) (edgeport_workers_running{{{WORKERLESS}}})",
                    "{{instance}}",
                )
            ],
            "short",
            [("red", None), ("green", 1)],
            width=6,
        ),
        timeseries(
            "Worker restarts",
            "Workers that died and were restarted by their supervisor.",
            [by("instance, worker", increase("edgeport_worker_restarts_total"))],
            "short",
            width=6,
        ),
        timeseries(
            "Hand-offs by kind",
            "Messages one worker handed to another: responses, sends over a connection "
            "another worker holds, connection announcements, edge protection (guard).",
            [by("kind", rate("edgeport_handoffs_total"))],
            "ops",
            width=6,
        ),
        timeseries(
            "Hand-offs dropped",
            "Hand-offs lost: the other worker's socket was full, it was restarting, or "
            "its connection had closed.",
            [by("kind, reason", rate("edgeport_handoff_drops_total"))],
            "ops",
            width=6,
        ),
    ]


def configuration_and_tls() -> list[Json]:
    return [
        row("Configuration and TLS"),
        timeseries(
            "Configuration generation",
            "The configuration each instance and worker runs (1 at start, one more at "
            "each applied reload).",
            [by("instance, worker", now("edgeport_config_generation"), agg="max")],
            "short",
        ),
        timeseries(
            "Configuration reloads",
            "Reloads applied and failed (a failed reload keeps the running configuration).",
            [by("result", increase("edgeport_config_reloads_total"))],
            "short",
        ),
        stat(
            "TLS certificate expiry",
            "Time left before the server certificate of each TLS and WSS listener expires "
            "(the EdgeportTlsCertificateExpiringSoon alert fires under 14 days).",
            [
                (
                    "min by (instance, listener) "
                    f"(edgeport_tls_certificate_expiry_seconds{{{SEL}}}) - time()",
                    "{{instance}} {{listener}}",
                )
            ],
            "dtdurations",
            [("red", None), ("orange", 14 * DAY_SECONDS), ("green", 30 * DAY_SECONDS)],
        ),
    ]


def layout(panels: list[Json]) -> list[Json]:
    """Number the panels and place them left to right, a row panel starting a line."""
    x = y = 0
    line_height = 0
    placed: list[Json] = []
    for number, panel in enumerate(panels, start=1):
        if panel["type"] == "row":
            y += line_height
            panel = {**panel, "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1}}
            x, y, line_height = 0, y + 1, 0
        else:
            width, height = panel["gridPos"]["w"], panel["gridPos"]["h"]
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panel = {**panel, "gridPos": {"x": x, "y": y, "w": width, "h": height}}
            x += width
            line_height = max(line_height, height)
        placed.append({"id": number, **panel})
    return placed


def query_variable(name: str, label: str, query: str) -> Json:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def templating() -> Json:
    return {
        "list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Data source",
                "query": "prometheus",
                "current": {},
                "options": [],
                "regex": "",
                "refresh": 1,
                "includeAll": False,
                "multi": False,
                "hide": 0,
            },
            query_variable("job", "Job", "label_values(edgeport_active_transactions, job)"),
            query_variable(
                "instance",
                "Instance",
                'label_values(edgeport_active_transactions{job=~"$job"}, instance)',
            ),
            query_variable(
                "worker",
                "Worker",
                "label_values(edgeport_active_transactions"
                '{job=~"$job", instance=~"$instance"}, worker)',
            ),
        ]
    }


def annotations() -> Json:
    return {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            {
                "datasource": DATASOURCE,
                "enable": True,
                "hide": False,
                "iconColor": "blue",
                "name": "Configuration reloaded",
                "expr": f"changes(edgeport_config_generation{{{SEL}}}[2m]) > 0",
                "step": "1m",
                "titleFormat": "configuration reloaded",
                "textFormat": "{{instance}} {{worker}}",
            },
            {
                "datasource": DATASOURCE,
                "enable": True,
                "hide": False,
                "iconColor": "red",
                "name": "Worker restarted",
                "expr": f"changes(edgeport_worker_restarts_total{{{SEL}}}[2m]) > 0",
                "step": "1m",
                "titleFormat": "worker restarted",
                "textFormat": "{{instance}} worker {{worker}}",
            },
        ]
    }


def dashboard() -> Json:
    panels = [
        *traffic(),
        *processor(),
        *transactions_and_connections(),
        *drops_and_protection(),
        *events_and_hep(),
        *workers(),
        *configuration_and_tls(),
    ]
    return {
        "title": "edgeport",
        "uid": "edgeport",
        "description": "edgeport, the SIP edge proxy for Routr: traffic, processor, "
        "transactions, connections, drops, bans, events, HEP, workers, reloads and "
        "certificates.",
        "tags": ["edgeport", "sip", "routr"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "links": [],
        "annotations": annotations(),
        "templating": templating(),
        "panels": layout(panels),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
