"""One Prometheus exposition from many workers' expositions.

Each worker renders its own metrics (text format 0.0.4). The supervisor adds
``worker="<i>"`` to every sample and groups the samples by family, so the
merged text has one HELP and one TYPE per family, as the format requires,
followed by every worker's samples of that family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

WORKER_LABEL: Final = "worker"
_SAMPLE: Final = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?[ \t]+(.*)\Z")


@dataclass(slots=True)
class _Family:
    help: str | None = None
    type: str | None = None
    samples: list[str] = field(default_factory=list)


def with_label(sample: str, name: str, value: str) -> str:
    """``sample`` (one sample line) with the label ``name="value"`` added first."""
    match = _SAMPLE.match(sample)
    if match is None:
        raise ValueError(f"not a sample line: {sample!r}")
    metric, labels, rest = match.groups()
    label = f'{name}="{value}"'
    if labels is None or labels == "{}":
        return f"{metric}{{{label}}} {rest}"
    return f"{metric}{{{label},{labels[1:]} {rest}"


def merge_expositions(by_worker: Mapping[str, str], *, own: str = "") -> str:
    """The expositions of ``by_worker`` (worker label -> text), labelled, in one text.

    ``own`` is the supervisor's exposition, taken as it is. Families keep the
    order in which they first appear; lines that are neither comments nor
    samples are dropped.
    """
    families: dict[str, _Family] = {}
    _collect(families, own, None)
    for worker, text in by_worker.items():
        _collect(families, text, worker)
    lines: list[str] = []
    for name, family in families.items():
        if family.help is not None:
            lines.append(f"# HELP {name} {family.help}")
        if family.type is not None:
            lines.append(f"# TYPE {name} {family.type}")
        lines.extend(family.samples)
    return "\n".join(lines) + "\n" if lines else ""


def _collect(families: dict[str, _Family], text: str, worker: str | None) -> None:
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                current = parts[2]
                family = families.setdefault(current, _Family())
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "HELP" and family.help is None:
                    family.help = rest
                elif parts[1] == "TYPE" and family.type is None:
                    family.type = rest
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        metric = match.group(1)
        if current is None or not _belongs(metric, current):
            current = metric
        family = families.setdefault(current, _Family())
        family.samples.append(line if worker is None else with_label(line, WORKER_LABEL, worker))


def _belongs(metric: str, family: str) -> bool:
    if metric == family:
        return True
    suffix = metric[len(family) :] if metric.startswith(family) else ""
    return suffix in ("_bucket", "_sum", "_count", "_total", "_created")
