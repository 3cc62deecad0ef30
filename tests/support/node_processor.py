"""Routr's own processor library in a test: tests/routr_processor/processor.js under Node.

    async with running_routr_processor(tmp_path, numbers={...}) as running:
        ... point edgeport at running.addr ...
        running.log_lines()   # one JSON object per message the processor saw

Started on 127.0.0.1 and a free port, stopped by its PID. A missing Node or
missing packages fail the test with the command that fixes it (``.ci/run``
runs ``npm ci`` in tests/routr_processor).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from tests.support.ports import free_port, stop_process, wait_listening

PROCESSOR_DIR: Final = Path(__file__).resolve().parent.parent / "routr_processor"
START_TIMEOUT: Final = 20.0  # seconds for Node to load the library and listen


@dataclass
class RunningRoutrProcessor:
    addr: str
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON line the processor printed for each message it received."""
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def node_binary() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed (bash .ci/run installs nodejs and npm)", pytrace=False)
    if not (PROCESSOR_DIR / "node_modules" / "@routr" / "processor").is_dir():
        pytest.fail(
            f"@routr/processor is not installed: run `npm ci` in {PROCESSOR_DIR} "
            "(bash .ci/run does)",
            pytrace=False,
        )
    return path


@asynccontextmanager
async def running_routr_processor(
    directory: Path, *, numbers: Mapping[str, Mapping[str, object]] | None = None
) -> AsyncIterator[RunningRoutrProcessor]:
    node = node_binary()
    port = free_port()
    env = dict(os.environ)
    env.update(
        BIND_ADDR=f"127.0.0.1:{port}",
        NUMBERS=json.dumps(dict(numbers or {})),
        LOGS_LEVEL="warn",
    )
    log = directory / "routr-processor.log"
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [node, str(PROCESSOR_DIR / "processor.js")],
            cwd=str(PROCESSOR_DIR),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with trio.fail_after(START_TIMEOUT):
            await wait_listening(process, {port}, log)
        yield RunningRoutrProcessor(f"127.0.0.1:{port}", log)
    finally:
        await stop_process(process)
