"""Prometheus metrics without a dependency: counters, gauges, histograms, text exposition.

Owns the metric types, the registry that renders them in the Prometheus text
exposition format 0.0.4, and ``METRICS``, the edgeport metric families every
layer updates. Everything runs on the trio thread, so no locking.

Label values often come from the network (a SIP method name, a transport).
A family may bound a label's values (``bounds``): the ``method`` label of the
message counters keeps the name of a SIP method edgeport knows and records
any other token as ``"other"``, so a client sending 8 KB method names cannot
make the scrape grow. Besides, each family keeps at most ``max_series``
label sets and records any further set under one series whose every label
value is ``"other"``, so a peer cannot grow memory or the scrape without
bound.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from edgeport.sip.methods import SIP_METHODS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

logger = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MAX_SERIES: Final = 200  # label sets per family
OVERFLOW_LABEL_VALUE: Final = "other"
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)  # seconds

# The methods counted by name (edgeport.sip.methods); any other token is
# counted as OVERFLOW_LABEL_VALUE, so a client cannot grow the scrape.
METHOD_LABELS: Final = frozenset(SIP_METHODS)

_METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS: Final = frozenset({"le", "quantile"})


def format_value(value: float) -> str:
    """A sample value as the exposition format writes it: integers bare, else repr."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _escape_label_value(value: str) -> str:
    # Exposition format 0.0.4: label values escape backslash, double-quote and line feed.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # Exposition format 0.0.4: HELP text escapes backslash and line feed.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def method_label(method: str) -> str:
    """The ``method`` label: a method edgeport knows keeps its name, any other is ``other``."""
    return method if method in METHOD_LABELS else OVERFLOW_LABEL_VALUE


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(
        f'{name}="{_escape_label_value(value)}"' for name, value in zip(names, values, strict=True)
    )
    return "{" + pairs + "}"


class CounterChild:
    """One counter series: only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeChild:
    """One gauge series: a value set by the code, or a callback sampled at render."""

    __slots__ = ("_function", "_value")

    def __init__(self) -> None:
        self._value = 0.0
        self._function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self._function = None
        self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self._value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Sample ``function()`` at each render instead of the stored value."""
        self._function = function

    @property
    def value(self) -> float:
        if self._function is None:
            return self._value
        try:
            return float(self._function())
        except Exception:
            logger.exception("gauge callback failed")
            return math.nan


class HistogramChild:
    """One histogram series: per-bucket counts (cumulated at render), sum and count."""

    __slots__ = ("_bounds", "bucket_counts", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.bucket_counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # A bucket counts observations less than or equal to its upper bound.
        self.bucket_counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value
        self.count += 1


ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class _Family(Generic[ChildT]):
    kind: str = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        bounds: Mapping[str, Callable[[str], str]] | None = None,
    ) -> None:
        """``bounds``: label name -> a function mapping any value to one of a few."""
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} in {name}")
            if label in _RESERVED_LABELS:
                raise ValueError(f"label name {label!r} is reserved in {name}")
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        unknown = set(bounds or ()) - set(labelnames)
        if unknown:
            raise ValueError(f"{name} has no label {sorted(unknown)} to bound")
        # One entry per label: its bound, or None to keep the value as it is.
        self._label_bounds = tuple((bounds or {}).get(label) for label in labelnames)
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._max_series = max_series
        self._children: dict[tuple[str, ...], ChildT] = {}
        self._overflowed = False
        if not self.labelnames:
            self._children[()] = self._new_child()

    def _new_child(self) -> ChildT:
        raise NotImplementedError

    def labels(self, *values: str, **named: str) -> ChildT:
        """The series for these label values (positional, or by name), created on first use."""
        if not named:
            # The hot path: string values of a series that already exists.
            known = self._children.get(values)
            if known is not None:
                return known
        if values and named:
            raise ValueError("pass label values by position or by name, not both")
        if named:
            if set(named) != set(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(named)}")
            values = tuple(named[label] for label in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        # A series is stored under bounded values only (each bound maps its own
        # results to themselves), so the lookup above never finds a raw value.
        key = tuple(
            str(value) if bound is None else bound(str(value))
            for value, bound in zip(values, self._label_bounds, strict=True)
        )
        child = self._children.get(key)
        if child is not None:
            return child
        if len(self._children) >= self._max_series:
            if not self._overflowed:
                self._overflowed = True
                logger.warning(
                    "metric %s reached %d label sets; further ones are counted under %r",
                    self.name,
                    self._max_series,
                    OVERFLOW_LABEL_VALUE,
                )
            key = (OVERFLOW_LABEL_VALUE,) * len(self.labelnames)
            child = self._children.get(key)
            if child is not None:
                return child
        child = self._new_child()
        self._children[key] = child
        return child

    def _unlabelled(self) -> ChildT:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels(...)")
        return self._children[()]

    def _sample_lines(self, labels: tuple[str, ...], child: ChildT) -> Iterator[str]:
        raise NotImplementedError

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.documentation)}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, child in self._children.items():
            yield from self._sample_lines(labels, child)


class Counter(_Family[CounterChild]):
    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled().inc(amount)

    def _sample_lines(self, labels: tuple[str, ...], child: CounterChild) -> Iterator[str]:
        yield f"{self.name}{_label_text(self.labelnames, labels)} {format_value(child.value)}"


class Gauge(_Family[GaugeChild]):
    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        self._unlabelled().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._unlabelled().dec(amount)

    def set_function(self, function: Callable[[], float]) -> None:
        self._unlabelled().set_function(function)

    def _sample_lines(self, labels: tuple[str, ...], child: GaugeChild) -> Iterator[str]:
        yield f"{self.name}{_label_text(self.labelnames, labels)} {format_value(child.value)}"


class Histogram(_Family[HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = LATENCY_BUCKETS,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        bounds = tuple(sorted(float(bound) for bound in buckets if not math.isinf(bound)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name} needs distinct finite bucket bounds")
        self._bounds = bounds
        super().__init__(name, documentation, labelnames, max_series=max_series)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def observe(self, value: float) -> None:
        self._unlabelled().observe(value)

    def _sample_lines(self, labels: tuple[str, ...], child: HistogramChild) -> Iterator[str]:
        names = (*self.labelnames, "le")
        cumulative = 0
        for bound, count in zip((*self._bounds, math.inf), child.bucket_counts, strict=True):
            cumulative += count
            le = _label_text(names, (*labels, format_value(bound)))
            yield f"{self.name}_bucket{le} {cumulative}"
        label_text = _label_text(self.labelnames, labels)
        yield f"{self.name}_sum{label_text} {format_value(child.sum)}"
        yield f"{self.name}_count{label_text} {child.count}"


class Registry:
    """Metric families in registration order; ``render()`` is one scrape."""

    def __init__(self) -> None:
        self._families: dict[str, Counter | Gauge | Histogram] = {}

    def _register(self, family: Counter | Gauge | Histogram) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family

    def counter(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        bounds: Mapping[str, Callable[[str], str]] | None = None,
    ) -> Counter:
        """A counter family; ``bounds`` maps label names to functions bounding their values."""
        family = Counter(name, documentation, labelnames, bounds=bounds)
        self._register(family)
        return family

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        family = Gauge(name, documentation, labelnames)
        self._register(family)
        return family

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        family = Histogram(name, documentation, labelnames, buckets=buckets)
        self._register(family)
        return family

    def families(self) -> tuple[Counter | Gauge | Histogram, ...]:
        """The registered families, in registration order (their names and label names)."""
        return tuple(self._families.values())

    def render(self) -> str:
        """The text exposition format 0.0.4: HELP, TYPE, then the samples of each family."""
        lines: list[str] = []
        for family in self._families.values():
            lines.extend(family.render())
        return "\n".join(lines) + "\n" if lines else ""


def status_class(status_code: int | None) -> str:
    """The ``status_class`` label: ``"request"`` for a request, ``"2xx"`` etc. for a response."""
    if status_code is None:
        return "request"
    if not 100 <= status_code <= 699:
        return OVERFLOW_LABEL_VALUE
    return f"{status_code // 100}xx"


class EdgeportMetrics:
    """The edgeport metric families, in one registry."""

    def __init__(self) -> None:
        registry = Registry()
        self.registry = registry
        message_labels = ("transport", "method", "status_class")
        # The method token comes from the network: bounded to the known methods.
        method_bound = {"method": method_label}
        self.messages_received = registry.counter(
            "edgeport_messages_received_total",
            "SIP messages received (method: a known SIP method, or other).",
            message_labels,
            bounds=method_bound,
        )
        self.messages_sent = registry.counter(
            "edgeport_messages_sent_total",
            "SIP messages sent (method: a known SIP method, or other).",
            message_labels,
            bounds=method_bound,
        )
        self.processor_calls = registry.counter(
            "edgeport_processor_calls_total",
            "Calls to the processor, by outcome (ok, timeout, error, ...).",
            ("outcome",),
        )
        self.processor_latency = registry.histogram(
            "edgeport_processor_latency_seconds", "Processor call latency in seconds."
        )
        self.active_transactions = registry.gauge(
            "edgeport_active_transactions", "SIP transactions currently alive."
        )
        self.active_connections = registry.gauge(
            "edgeport_active_connections", "Open stream connections.", ("transport",)
        )
        self.memory_used = registry.gauge(
            "edgeport_memory_budget_used_bytes",
            "Bytes charged to each share of the memory budget (spec.limits.memory): "
            "transactions, inbox, streams.",
            ("share",),
        )
        self.memory_limit = registry.gauge(
            "edgeport_memory_budget_limit_bytes",
            "The size of each share of the memory budget.",
            ("share",),
        )
        self.transactions_evicted = registry.counter(
            "edgeport_transactions_evicted_total",
            "Answered transactions dropped before their timers ended, to make room in "
            "the memory budget for new ones.",
        )
        self.retransmissions = registry.counter(
            "edgeport_retransmissions_total", "SIP retransmissions sent.", ("transport",)
        )
        self.dropped_messages = registry.counter(
            "edgeport_dropped_messages_total", "SIP messages dropped, by reason.", ("reason",)
        )
        self.bans = registry.counter(
            "edgeport_bans_total", "Sources banned for sending too many requests."
        )
        self.banned_sources = registry.gauge(
            "edgeport_banned_sources", "Sources banned now (their traffic is dropped)."
        )
        self.protection_closed_connections = registry.counter(
            "edgeport_protection_closed_connections_total",
            "Inbound connections closed by edge protection, by reason (denied, banned, "
            "per_source_limit, handshake_timeout, first_message_timeout).",
            ("reason",),
        )
        self.event_queue_depth = registry.gauge(
            "edgeport_event_queue_depth", "Events waiting to be published.", ("publisher",)
        )
        self.events_dropped = registry.counter(
            "edgeport_events_dropped_total",
            "Events dropped because a publisher queue was full.",
            ("publisher",),
        )
        self.events_published = registry.counter(
            "edgeport_events_published_total", "Events published.", ("publisher",)
        )
        self.transport_events = registry.counter(
            "edgeport_transport_events_total",
            "Transport-level events: connections opened, closed, refused, framing errors, "
            "TLS and WebSocket handshake failures, send failures.",
            ("event",),
        )
        self.dns_lookups = registry.counter(
            "edgeport_dns_lookups_total",
            "DNS questions for next hops (NAPTR, SRV, A/AAAA), by result: answer, "
            "negative (no such name or record), failure (timeout, server error), cached.",
            ("result",),
        )
        self.dns_failovers = registry.counter(
            "edgeport_dns_failovers_total",
            "Forwarded requests sent on to the next DNS target after one failed "
            "(RFC 3263 §4.3: transport error, no response, 503).",
        )
        self.hep_sent = registry.counter(
            "edgeport_hep_sent_total", "HEP capture packets sent to the collector."
        )
        self.hep_dropped = registry.counter(
            "edgeport_hep_dropped_total",
            "HEP capture packets dropped (queue full, collector unreachable, encoding).",
        )

        self.config_generation = registry.gauge(
            "edgeport_config_generation",
            "The configuration this process runs: 1 at start, one more per reload applied.",
        )
        self.config_generation.set(1.0)
        self.config_reloads = registry.counter(
            "edgeport_config_reloads_total",
            "Configuration reloads by result: applied, partial (applied, some keys wait "
            "for a restart), failed (invalid: the running configuration is kept).",
            ("result",),
        )
        for result in ("applied", "partial", "failed"):
            self.config_reloads.labels(result=result)  # 0 from the start, for rate()
        self.tls_certificate_expiry = registry.gauge(
            "edgeport_tls_certificate_expiry_seconds",
            "The notAfter of the certificate each TLS or WSS listener serves, as a Unix timestamp.",
            ("listener",),
        )

    def render(self) -> str:
        return self.registry.render()


METRICS: Final = EdgeportMetrics()
