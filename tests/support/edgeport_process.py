"""A real ``python -m edgeport`` process for end-to-end tests: its environment and its start.

The environment is the test run's own without the variables that would
override the test's configuration file (``CONFIG_PATH``, ``HOSTNAME``,
``WORKERS``), with this checkout first on ``PYTHONPATH``. Output goes to a
log file the test reads when something fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import trio

# Variables that would replace what the test's configuration file says.
_OVERRIDING: Final = frozenset({"CONFIG_PATH", "HOSTNAME", "WORKERS"})


def edgeport_env(**extra: str) -> dict[str, str]:
    """The environment for an edgeport under test, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in _OVERRIDING}
    env["PYTHONPATH"] = os.getcwd()
    env.update(extra)
    return env


async def open_edgeport(config: Path, log: Path, env: dict[str, str], *args: str) -> trio.Process:
    """``python -m edgeport --config CONFIG ARGS...``, stdout and stderr into ``log``."""
    argv = [sys.executable, "-m", "edgeport", "--config", str(config), *args]
    with log.open("wb") as sink:
        return await trio.lowlevel.open_process(argv, stdout=sink, stderr=sink, env=env)
