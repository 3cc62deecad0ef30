"""The overload benchmark's machinery, run at a very low rate for a few seconds so it cannot rot.

Real processes (built-in processor, edgeport, SIPp UAC and UAS) on
127.0.0.1, this tree only (building the baseline's venv is the benchmark's
job); nothing here asserts speed, only that every part produced figures and
the report was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import overload

SMOKE_ARGS = (
    "--max", "20", "--factors", "1.5", "--seconds", "1.5",
    "--register-rate", "10", "--call-rate", "4", "--cpu-seconds", "1.5", "--cpu-rounds", "1",
    "--no-baseline", "--no-pin",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
@pytest.mark.timeout(120)
def test_low_rate_run_measures_every_part(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text("# edgeport load benchmark\n\n| measure | value |\n")
    opts = overload.parse_options([*SMOKE_ARGS, "--out-dir", str(tmp_path)])

    report = overload.run(opts)

    assert list(report.overload) == ["current"]
    (at_1_5x,) = report.overload["current"]
    assert at_1_5x.rate == 30
    assert at_1_5x.succeeded == at_1_5x.attempted == 45
    assert at_1_5x.p99_ms is not None
    ((registers, calls),) = report.cpu["current"]
    assert registers.succeeded == 15
    assert calls.succeeded >= 5
    assert registers.cpu_us_each is not None
    assert calls.cpu_us_each is not None

    overload.write_section(results, overload.render(report, opts))
    overload.write_section(results, overload.render(report, opts))
    text = results.read_text()
    assert text.startswith("# edgeport load benchmark\n")  # the load benchmark's part stays
    assert text.count(overload.SECTION) == 1  # replaced, not appended twice
    assert "| current | 1.5x | 30 | 45 / 45 |" in text


def test_options() -> None:
    opts = overload.parse_options(["--factors", "2,4", "--max", "100"])
    assert (opts.factors, opts.max_register, opts.baseline) == ((2.0, 4.0), 100.0, "7da4699")
    assert overload.parse_options(["--no-baseline"]).baseline is None
    compiled = overload.parse_options(["--compiled"])
    assert (compiled.compiled, compiled.baseline) == (True, None)
    with pytest.raises(SystemExit):
        overload.parse_options(["--factors", "0"])


def test_baseline_cache_is_keyed_by_full_commit(tmp_path: Path) -> None:
    commit = "7da469907628b75f6b0f96b30be19f35bab96106"
    assert overload.cache_dir(commit, tmp_path) == tmp_path / commit
    with pytest.raises(ValueError, match="full commit"):
        overload.cache_dir("7da4699", tmp_path)
    with pytest.raises(ValueError, match="full commit"):
        overload.cache_dir("../../" + commit[6:], tmp_path)
