"""The transactions benchmark's machinery, run on a few transactions so it cannot rot.

Nothing here asserts speed: only that each figure is measured, in this
process and in a process of its own (as ``--tree`` runs an older tree).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import transactions

pytestmark = pytest.mark.slow

TREE = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("figure", transactions.FIGURES)
def test_each_figure_is_measured(figure: str) -> None:
    line = transactions.measure(figure, 50)
    assert re.fullmatch(r"[0-9.]+ (B held, [0-9.]+ B charged|us).*", line), line


@pytest.mark.timeout(60)
def test_a_tree_is_measured_in_a_process_of_its_own() -> None:
    line = transactions._in_process(TREE, "register-memory", 50)
    assert re.fullmatch(r"[0-9]+ B held, [0-9]+ B charged per transaction", line), line
