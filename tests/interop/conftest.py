"""Fixtures of the SIPp interop tests: a real edgeport process and SIPp agents against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import SIPP_MISSING, Edgeport, Sipp, find_sipp, running_edgeport


@pytest.fixture
def sipp_executable() -> str:
    """The SIPp binary; its absence is a failure, never a skip (CI installs it)."""
    path = find_sipp()
    if path is None:
        pytest.fail(SIPP_MISSING, pytrace=False)
    return path


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def edge(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Edgeport]:
    """``python -m edgeport`` with the built-in processor on a free 127.0.0.1 port,
    as one process and as a supervisor with two worker processes."""
    with running_edgeport(tmp_path / "edgeport", workers=request.param) as running:
        yield running


@pytest.fixture
def sipp(sipp_executable: str, tmp_path: Path, edge: Edgeport) -> Iterator[Sipp]:
    agents = Sipp(sipp_executable, tmp_path / "sipp", edge)
    try:
        yield agents
    finally:
        agents.stop_all()
