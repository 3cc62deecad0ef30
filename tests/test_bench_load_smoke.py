"""The load benchmark's machinery, run at a very low rate for a few seconds so it cannot rot.

Real processes (built-in processor, edgeport, SIPp UAC and UAS) on
127.0.0.1; nothing here asserts speed, only that every phase produced
measurements and the reports were written.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmarks import load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


@pytest.mark.timeout(120)
def test_low_rate_run_measures_every_phase(tmp_path: Path) -> None:
    opts = load.parse_options(
        [
            "--step-seconds", "1.5",
            "--register-start", "20",
            "--call-start", "5",
            "--max-steps", "1",
            "--probe-seconds", "1",
            "--probe-warmup", "0.5",
            "--bare-seconds", "0.5",
            "--no-pin",
            "--out-dir", str(tmp_path),
        ]
    )  # fmt: skip

    summary = load.run(opts)

    assert [(s.kind, s.passed) for s in summary.steps] == [("register", True), ("call", True)]
    assert summary.max_register is not None
    assert summary.max_register.succeeded == 30
    assert summary.max_call is not None
    assert summary.max_call.succeeded >= 7  # 1.5 s at 5 calls/s
    assert summary.probe is not None
    assert summary.probe.lost == 0
    assert len(summary.probe.samples) == summary.probe.sent > 0
    for bare in (summary.bare_register, summary.bare_call, summary.bare_latency):
        assert bare is not None
        assert bare.errors == 0
        assert bare.calls > 0
    assert summary.rss_kib > 0
    assert summary.edgeport_stop.startswith("exit 0")

    table = load.render_table(summary)
    assert "ratio edgeport / bare, calls (6 messages each)" in table
    assert "latency added by edgeport, p99, ms" in table

    load.write_reports(summary, opts)
    markdown = (tmp_path / "results.md").read_text()
    assert "| max calls/s through edgeport (<1% failed) | 5 |" in markdown
    assert "nproc:" in markdown
    svg = ET.parse(tmp_path / "chart.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) == 4


def test_options_come_from_the_environment_when_no_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGEPORT_LOAD_ARGS", "--growth 1.5 --step-seconds 3 --no-pin")

    opts = load.options_from(None)

    assert (opts.growth, opts.step_seconds, opts.pin) == (1.5, 3.0, False)
    assert load.options_from([]).growth == load.GROWTH


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]

    assert load.percentile(values, 0.50) == 50.0
    assert load.percentile(values, 0.99) == 99.0
    assert load.percentile([7.0], 0.99) == 7.0
