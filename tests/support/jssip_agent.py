"""A JsSIP softphone in a test: tests/jssip_agent/agent.js under Node.

    async with running_jssip_agent(tmp_path, ws_url=..., uri="sip:bob@127.0.0.1") as agent:
        await agent.wait_for("registered")
        ... call it ...
        await agent.wait_for("ended", callId="...")

The agent prints one JSON object per event (``event`` plus details); it is
stopped by its PID. A missing Node or missing packages fail the test with
the command that fixes it (``.ci/run`` runs ``npm ci`` in tests/jssip_agent).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from tests.support.ports import stop_process

AGENT_DIR: Final = Path(__file__).resolve().parent.parent / "jssip_agent"
EVENT_TIMEOUT: Final = 20.0  # seconds for one event (Node start-up included)
POLL_INTERVAL: Final = 0.05  # seconds between reads of the agent's output


@dataclass
class RunningJsSipAgent:
    process: trio.Process
    log: Path

    def events(self) -> list[dict[str, Any]]:
        """Every event the agent printed so far."""
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    async def wait_for(
        self, event: str, timeout: float = EVENT_TIMEOUT, **fields: object
    ) -> dict[str, Any]:
        """The first ``event`` whose fields include ``fields``; fails with the agent's output."""
        with trio.move_on_after(timeout):
            for _ in range(int(timeout / POLL_INTERVAL) + 1):
                for seen in self.events():
                    if seen["event"] == event and all(seen.get(k) == v for k, v in fields.items()):
                        return seen
                if self.process.poll() is not None:
                    break
                await trio.sleep(POLL_INTERVAL)
        raise AssertionError(
            f"JsSIP agent: no {event} {fields}; its output:\n{self.log.read_text()}"
        )


def node_binary() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed (bash .ci/run installs nodejs and npm)", pytrace=False)
    if not (AGENT_DIR / "node_modules" / "jssip").is_dir():
        pytest.fail(
            f"jssip is not installed: run `npm ci` in {AGENT_DIR} (bash .ci/run does)",
            pytrace=False,
        )
    return path


@asynccontextmanager
async def running_jssip_agent(
    directory: Path, *, ws_url: str, uri: str, call_target: str | None = None
) -> AsyncIterator[RunningJsSipAgent]:
    node = node_binary()
    env = dict(os.environ)
    env.update(WS_URL=ws_url, SIP_URI=uri)
    if call_target is not None:
        env["CALL_TARGET"] = call_target
    log = directory / "jssip-agent.log"
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [node, str(AGENT_DIR / "agent.js")],
            cwd=str(AGENT_DIR),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RunningJsSipAgent(process, log)
    finally:
        await stop_process(process)
