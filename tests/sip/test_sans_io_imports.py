"""edgeport/sip/ stays sans-IO: no module there imports I/O, clocks or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIP_PACKAGE = Path(__file__).resolve().parents[2] / "edgeport" / "sip"
FORBIDDEN = frozenset(
    {"trio", "socket", "asyncio", "grpc", "nats", "time", "random", "ssl", "threading"}
)


def forbidden_imports(source: str) -> list[str]:
    """Top-level names of forbidden modules imported anywhere in ``source``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.extend(name for name in names if name.split(".")[0] in FORBIDDEN)
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import trio",
        "import os, socket",
        "from asyncio import sleep",
        "from time import monotonic",
        "import random as r",
        "def f():\n    import threading\n",
        "import nats.aio.client",
        "from ssl import SSLContext",
        "from grpc import insecure_channel",
        "import grpc.aio",
    ],
)
def test_checker_catches_forbidden_import(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import hashlib",
        "from edgeport.sip.time_source import x",
        "from . import timers",
        "import timeit_like",
    ],
)
def test_checker_allows_other_imports(source: str) -> None:
    assert forbidden_imports(source) == []


def test_sip_package_has_modules() -> None:
    assert len(list(SIP_PACKAGE.glob("*.py"))) >= 5


@pytest.mark.parametrize("path", sorted(SIP_PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_module_is_sans_io(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8")) == [], path.name
