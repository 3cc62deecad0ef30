"""Merging the workers' Prometheus expositions: labelled by worker, one HELP/TYPE per family."""

from __future__ import annotations

import pytest

from edgeport.metrics import Registry
from edgeport.workers.metrics_merge import merge_expositions, with_label

WORKER_TEXT = """# HELP edgeport_messages_received_total SIP messages received.
# TYPE edgeport_messages_received_total counter
edgeport_messages_received_total{transport="udp",method="INVITE",status_class="request"} 3
# HELP edgeport_active_transactions SIP transactions currently alive.
# TYPE edgeport_active_transactions gauge
edgeport_active_transactions 2
# HELP edgeport_processor_latency_seconds Processor call latency in seconds.
# TYPE edgeport_processor_latency_seconds histogram
edgeport_processor_latency_seconds_bucket{le="0.001"} 1
edgeport_processor_latency_seconds_bucket{le="+Inf"} 4
edgeport_processor_latency_seconds_sum 0.25
edgeport_processor_latency_seconds_count 4
"""


def test_every_sample_gets_the_worker_label_and_every_family_one_help_and_type() -> None:
    own = "# HELP edgeport_workers_running Worker processes running.\n"
    own += "# TYPE edgeport_workers_running gauge\nedgeport_workers_running 2\n"
    merged = merge_expositions(
        {"0": WORKER_TEXT, "1": WORKER_TEXT.replace(" 3\n", " 5\n")}, own=own
    )
    assert merged.splitlines() == [
        "# HELP edgeport_workers_running Worker processes running.",
        "# TYPE edgeport_workers_running gauge",
        "edgeport_workers_running 2",
        "# HELP edgeport_messages_received_total SIP messages received.",
        "# TYPE edgeport_messages_received_total counter",
        'edgeport_messages_received_total{worker="0",transport="udp",method="INVITE",'
        'status_class="request"} 3',
        'edgeport_messages_received_total{worker="1",transport="udp",method="INVITE",'
        'status_class="request"} 5',
        "# HELP edgeport_active_transactions SIP transactions currently alive.",
        "# TYPE edgeport_active_transactions gauge",
        'edgeport_active_transactions{worker="0"} 2',
        'edgeport_active_transactions{worker="1"} 2',
        "# HELP edgeport_processor_latency_seconds Processor call latency in seconds.",
        "# TYPE edgeport_processor_latency_seconds histogram",
        'edgeport_processor_latency_seconds_bucket{worker="0",le="0.001"} 1',
        'edgeport_processor_latency_seconds_bucket{worker="0",le="+Inf"} 4',
        'edgeport_processor_latency_seconds_sum{worker="0"} 0.25',
        'edgeport_processor_latency_seconds_count{worker="0"} 4',
        'edgeport_processor_latency_seconds_bucket{worker="1",le="0.001"} 1',
        'edgeport_processor_latency_seconds_bucket{worker="1",le="+Inf"} 4',
        'edgeport_processor_latency_seconds_sum{worker="1"} 0.25',
        'edgeport_processor_latency_seconds_count{worker="1"} 4',
    ]


def test_a_family_only_one_worker_has_is_kept() -> None:
    extra = "# HELP edgeport_handoffs_total Hand-offs.\n# TYPE edgeport_handoffs_total counter\n"
    extra += 'edgeport_handoffs_total{kind="response"} 7\n'
    merged = merge_expositions({"0": WORKER_TEXT, "1": WORKER_TEXT + extra})
    assert merged.count("# TYPE edgeport_handoffs_total counter") == 1
    assert 'edgeport_handoffs_total{worker="1",kind="response"} 7' in merged


def test_a_real_registry_merges_to_valid_text() -> None:
    registry = Registry()
    counter = registry.counter("edgeport_x_total", "X.", ("kind",))
    counter.labels(kind='a "quoted", {odd} value').inc()
    registry.histogram("edgeport_y_seconds", "Y.").observe(0.3)
    merged = merge_expositions({"0": registry.render(), "1": registry.render()})
    assert merged.count("# HELP edgeport_x_total X.") == 1
    assert merged.count("# TYPE edgeport_y_seconds histogram") == 1
    assert 'edgeport_x_total{worker="1",kind="a \\"quoted\\", {odd} value"} 1' in merged
    assert 'edgeport_y_seconds_count{worker="0"} 1' in merged


def test_nothing_merges_to_nothing() -> None:
    assert merge_expositions({}) == ""


def test_with_label_refuses_a_comment() -> None:
    with pytest.raises(ValueError, match="not a sample line"):
        with_label("# HELP x y", "worker", "0")
