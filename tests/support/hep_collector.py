"""A HEP collector for tests: a UDP socket on 127.0.0.1, and sipcapture's hep-js to read packets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

DECODER_DIR = Path(__file__).resolve().parent.parent / "hep_decoder"


class Collector:
    """Receives HEP packets as a Homer collector would."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock

    @classmethod
    async def open(cls) -> Collector:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        return cls(sock)

    @property
    def addr(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    async def receive(self) -> bytes:
        data: bytes = await self.sock.recv(65535)
        return data

    def close(self) -> None:
        self.sock.close()


def decode_with_hep_js(packets: list[bytes]) -> list[dict[str, Any] | None]:
    """hep-js's ``decapsulate`` on each packet (None where it cannot read one)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (bash .ci/run installs nodejs and npm)", pytrace=False)
    if not (DECODER_DIR / "node_modules" / "hep-js").is_dir():
        pytest.fail(
            f"hep-js is not installed: run `npm ci` in {DECODER_DIR} (bash .ci/run does)",
            pytrace=False,
        )
    completed = subprocess.run(
        [node, str(DECODER_DIR / "decode.js")],
        input="\n".join(packet.hex() for packet in packets),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    decoded: list[dict[str, Any] | None] = json.loads(completed.stdout)
    return decoded
