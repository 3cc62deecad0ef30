"""The Prometheus registry: exact text exposition format 0.0.4."""

from __future__ import annotations

import logging

import pytest

from edgeport._proto import processor_pb2
from edgeport.config import SIP_METHODS
from edgeport.metrics import (
    METHOD_LABELS,
    METRICS,
    Counter,
    EdgeportMetrics,
    Gauge,
    Histogram,
    Registry,
    format_value,
    method_label,
    status_class,
)


def test_counter_with_labels() -> None:
    registry = Registry()
    messages = registry.counter(
        "edgeport_messages_received_total", "SIP messages received.", ("transport", "method")
    )
    messages.labels("udp", "INVITE").inc()
    messages.labels(transport="udp", method="INVITE").inc(2)
    messages.labels("tcp", "BYE").inc()
    assert registry.render() == (
        "# HELP edgeport_messages_received_total SIP messages received.\n"
        "# TYPE edgeport_messages_received_total counter\n"
        'edgeport_messages_received_total{transport="udp",method="INVITE"} 3\n'
        'edgeport_messages_received_total{transport="tcp",method="BYE"} 1\n'
    )


def test_gauge_values_and_callback() -> None:
    registry = Registry()
    active = registry.gauge("edgeport_active_transactions", "Live transactions.")
    depth = registry.gauge("edgeport_event_queue_depth", "Queued events.", ("publisher",))
    active.inc(5)
    active.dec(2)
    queued = [1, 2, 3]
    depth.labels("nats").set_function(lambda: len(queued))
    first = registry.render()
    queued.append(4)
    assert first == (
        "# HELP edgeport_active_transactions Live transactions.\n"
        "# TYPE edgeport_active_transactions gauge\n"
        "edgeport_active_transactions 3\n"
        "# HELP edgeport_event_queue_depth Queued events.\n"
        "# TYPE edgeport_event_queue_depth gauge\n"
        'edgeport_event_queue_depth{publisher="nats"} 3\n'
    )
    assert registry.render().endswith('edgeport_event_queue_depth{publisher="nats"} 4\n')


def test_histogram_buckets_sum_count() -> None:
    registry = Registry()
    latency = registry.histogram(
        "edgeport_processor_latency_seconds", "Processor latency.", buckets=(0.01, 0.1, 1.0)
    )
    for value in (0.005, 0.01, 0.05, 0.5, 3.0):
        latency.observe(value)
    assert registry.render() == (
        "# HELP edgeport_processor_latency_seconds Processor latency.\n"
        "# TYPE edgeport_processor_latency_seconds histogram\n"
        'edgeport_processor_latency_seconds_bucket{le="0.01"} 2\n'
        'edgeport_processor_latency_seconds_bucket{le="0.1"} 3\n'
        'edgeport_processor_latency_seconds_bucket{le="1"} 4\n'
        'edgeport_processor_latency_seconds_bucket{le="+Inf"} 5\n'
        "edgeport_processor_latency_seconds_sum 3.565\n"
        "edgeport_processor_latency_seconds_count 5\n"
    )


def test_labelled_histogram_puts_le_last() -> None:
    histogram = Histogram("rtt_seconds", "RTT.", ("peer",), buckets=(1.0,))
    histogram.labels("a").observe(2.0)
    assert list(histogram.render())[2:] == [
        'rtt_seconds_bucket{peer="a",le="1"} 0',
        'rtt_seconds_bucket{peer="a",le="+Inf"} 1',
        'rtt_seconds_sum{peer="a"} 2',
        'rtt_seconds_count{peer="a"} 1',
    ]


def test_escaping() -> None:
    registry = Registry()
    counter = registry.counter("odd_total", 'Help with \\ and\nnewline and "quotes".', ("value",))
    counter.labels('a"b\\c\nd').inc()
    assert registry.render() == (
        '# HELP odd_total Help with \\\\ and\\nnewline and "quotes".\n'
        "# TYPE odd_total counter\n"
        'odd_total{value="a\\"b\\\\c\\nd"} 1\n'
    )


def test_label_cardinality_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    counter = Counter("methods_total", "Methods.", ("method",), max_series=2)
    with caplog.at_level(logging.WARNING, logger="edgeport.metrics"):
        for method in ("INVITE", "BYE", "FOO1", "FOO2", "FOO3"):
            counter.labels(method).inc()
    assert list(counter.render())[2:] == [
        'methods_total{method="INVITE"} 1',
        'methods_total{method="BYE"} 1',
        'methods_total{method="other"} 3',
    ]
    assert len([r for r in caplog.records if "methods_total" in r.getMessage()]) == 1


def test_misuse_is_refused() -> None:
    counter = Counter("c_total", "C.", ("a",))
    with pytest.raises(ValueError, match="labels"):
        counter.labels("x", "y")
    with pytest.raises(ValueError, match="labels"):
        counter.inc()
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("x").inc(-1)
    with pytest.raises(ValueError, match="invalid metric name"):
        Gauge("bad-name", "B.")
    with pytest.raises(ValueError, match="reserved"):
        Histogram("h", "H.", ("le",))
    registry = Registry()
    registry.counter("dup_total", "D.")
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("dup_total", "D.")


def test_failing_gauge_callback_renders_nan() -> None:
    gauge = Gauge("g", "G.")

    def broken() -> float:
        raise RuntimeError("gone")

    gauge.set_function(broken)
    assert list(gauge.render())[2:] == ["g NaN"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (3.0, "3"), (0.25, "0.25"), (1e-05, "1e-05"), (float("inf"), "+Inf")],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


def test_status_class() -> None:
    assert [status_class(code) for code in (None, 100, 200, 487, 503, 99, 700, 10_000)] == [
        "request",
        "1xx",
        "2xx",
        "4xx",
        "5xx",
        "other",
        "other",
        "other",
    ]


def test_the_known_methods_are_those_of_processor_proto_and_of_the_configuration() -> None:
    assert set(processor_pb2.Method.keys()) - {"UNKNOWN"} == METHOD_LABELS
    assert set(SIP_METHODS) == METHOD_LABELS


def test_a_method_edgeport_does_not_know_is_counted_as_other() -> None:
    assert method_label("INVITE") == "INVITE"
    assert method_label("invite") == "other"  # SIP methods are case-sensitive (RFC 3261 §7.1)
    assert method_label("X" * 8192) == "other"
    assert method_label("other") == "other"


def test_a_bounded_label_keeps_the_scrape_small_whatever_the_values() -> None:
    # 60 distinct 8 KB method names made one series each, under the cap of 200.
    registry = Registry()
    messages = registry.counter(
        "m_total", "M.", ("transport", "method"), bounds={"method": method_label}
    )
    for n in range(60):
        messages.labels("udp", f"{n:04d}" + "X" * 8188).inc()
    messages.labels("udp", "INVITE").inc()
    messages.labels(transport="udp", method="FOO").inc()
    assert registry.render() == (
        "# HELP m_total M.\n"
        "# TYPE m_total counter\n"
        'm_total{transport="udp",method="other"} 61\n'
        'm_total{transport="udp",method="INVITE"} 1\n'
    )


def test_a_bound_on_a_label_the_family_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no label"):
        Counter("c_total", "C.", ("a",), bounds={"b": method_label})


def test_the_message_families_bound_the_method_label() -> None:
    metrics = EdgeportMetrics()
    metrics.messages_received.labels("udp", "A" * 8192, "request").inc()
    metrics.messages_sent.labels("udp", "B" * 8192, "4xx").inc()
    text = metrics.render()
    assert 'edgeport_messages_received_total{transport="udp",method="other",' in text
    assert 'edgeport_messages_sent_total{transport="udp",method="other",status_class="4xx"}' in text
    assert len(text) < 8192


def test_edgeport_families() -> None:
    metrics = EdgeportMetrics()
    metrics.messages_received.labels("udp", "INVITE", "request").inc()
    metrics.processor_calls.labels("timeout").inc()
    metrics.active_connections.labels("tcp").set(2)
    text = metrics.render()
    for name, kind in [
        ("edgeport_messages_received_total", "counter"),
        ("edgeport_messages_sent_total", "counter"),
        ("edgeport_processor_calls_total", "counter"),
        ("edgeport_processor_latency_seconds", "histogram"),
        ("edgeport_active_transactions", "gauge"),
        ("edgeport_active_connections", "gauge"),
        ("edgeport_retransmissions_total", "counter"),
        ("edgeport_dropped_messages_total", "counter"),
        ("edgeport_event_queue_depth", "gauge"),
        ("edgeport_events_dropped_total", "counter"),
        ("edgeport_events_published_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
    labels = 'transport="udp",method="INVITE",status_class="request"'
    assert f"edgeport_messages_received_total{{{labels}}} 1\n" in text
    assert 'edgeport_processor_calls_total{outcome="timeout"} 1\n' in text
    assert 'edgeport_active_connections{transport="tcp"} 2\n' in text
    assert "edgeport_processor_latency_seconds_count 0\n" in text
    assert isinstance(METRICS, EdgeportMetrics)


def test_a_hand_off_kind_read_from_a_datagram_is_bounded() -> None:
    from edgeport.workers.handoff import HANDOFF_DROPS, KIND_SEND

    HANDOFF_DROPS.labels(kind="K" * 8192, reason="full").inc()
    HANDOFF_DROPS.labels(kind=KIND_SEND, reason="full").inc()
    text = "\n".join(HANDOFF_DROPS.render())
    assert 'kind="other",reason="full"' in text
    assert 'kind="send",reason="full"' in text
    assert "KKKK" not in text
