"""The processor hop benchmark's machinery, run for a fraction of a second so it cannot rot.

Real processes on 127.0.0.1 (the built-in processor, one client process per
measurement); nothing here asserts speed, only that each client made calls
without errors and the report names them.
"""

from __future__ import annotations

import pytest

from benchmarks import processor_hop

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_short_run_measures_each_client() -> None:
    opts = processor_hop.parse_options(
        ["--seconds", "0.3", "--rounds", "1", "--concurrency", "4", "--warmup", "20", "--no-pin"]
    )

    pinned, results = processor_hop.run(opts)

    assert not pinned
    expected = ["grpcio", "grpclib"] if processor_hop.grpclib_available() else ["grpcio"]
    assert [result.client for result in results] == expected
    for result in results:
        assert result.errors == 0
        assert result.calls > 0
        assert result.cpu_seconds > 0
    report = processor_hop.report(results, opts, pinned)
    assert "grpcio mean:" in report
