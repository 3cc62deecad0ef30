"""The configuration model is a leaf: it imports nothing of edgeport's runtime.

``edgeport/config/model.py`` may import the standard library and the few
edgeport modules named in LEAVES, which are plain facts (the SIP method
names, the Transport enum, the memory budget's default) and themselves
import only the standard library. The runtime reads its defaults from the
model, never the other way round. And loading a configuration
(``edgeport check-config``) brings in none of the runtime either.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "edgeport" / "config" / "model.py"
LEAVES = frozenset({"edgeport.memory", "edgeport.sip.methods", "edgeport.sip.transport"})
# What serving needs and loading a configuration must not import.
RUNTIME = (
    "trio",
    "grpc",
    "nats",
    "prometheus_client",
    "edgeport.protection",
    "edgeport.transports",
    "edgeport.proxy",
    "edgeport.server",
    "edgeport.processor",
    "edgeport.builtin",
)


def imported_modules(source: str) -> list[str]:
    """Every module ``source`` imports, anywhere in it; a relative import as ``.name``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return found


def not_allowed(source: str, allowed: frozenset[str]) -> list[str]:
    """The imports of ``source`` that are neither the standard library nor in ``allowed``."""
    return [
        name
        for name in imported_modules(source)
        if name not in allowed and name.split(".")[0] not in sys.stdlib_module_names
    ]


def module_path(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")).with_suffix(".py")


@pytest.mark.parametrize(
    "source",
    [
        "from edgeport.protection.guard import DEFAULT_HANDSHAKE_TIMEOUT",
        "import edgeport.keystore",
        "from edgeport.config.load import load_config",
        "from edgeport import memory",
        "from . import schema",
        "from .values import port",
        "def f():\n    from edgeport.localnets import detect_localnets\n",
        "import trio",
        "import cattrs",
        "from edgeport.sip import Transport",
    ],
)
def test_checker_catches_a_runtime_import(source: str) -> None:
    assert not_allowed(source, LEAVES)


@pytest.mark.parametrize(
    "source",
    [
        "import enum",
        "from dataclasses import dataclass, field",
        "from typing import Final",
        "from edgeport.sip.transport import Transport",
        "from edgeport.memory import DEFAULT_MEMORY_BYTES",
    ],
)
def test_checker_allows_the_standard_library_and_the_leaves(source: str) -> None:
    assert not_allowed(source, LEAVES) == []


def test_model_imports_only_leaves() -> None:
    source = MODEL.read_text(encoding="utf-8")
    assert not_allowed(source, LEAVES) == []
    assert {name for name in imported_modules(source) if name.startswith("edgeport")} <= LEAVES


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_each_leaf_imports_only_the_standard_library(name: str) -> None:
    assert not_allowed(module_path(name).read_text(encoding="utf-8"), frozenset()) == []


def test_the_protection_defaults_live_in_the_model() -> None:
    """The runtime imports its defaults from the model, and defines none of its own."""
    from edgeport.config import model
    from edgeport.protection import flood, guard

    assert flood.FloodLimits().requests == model.DEFAULT_FLOOD_REQUESTS
    assert guard.DEFAULT_HANDSHAKE_TIMEOUT is model.DEFAULT_HANDSHAKE_TIMEOUT
    for runtime in ("flood", "guard", "scanners"):
        source = (ROOT / "edgeport" / "protection" / f"{runtime}.py").read_text(encoding="utf-8")
        defined = [
            target.id
            for node in ast.parse(source).body
            if isinstance(node, ast.AnnAssign | ast.Assign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name) and target.id.startswith("DEFAULT_")
        ]
        assert defined == [], runtime


def test_loading_a_configuration_imports_none_of_the_runtime() -> None:
    code = (
        "import sys\n"
        "from edgeport.config import describe_config, default_config\n"
        "describe_config(default_config())\n"
        "print('\\n'.join(sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert "edgeport.config.model" in loaded
    runtime = [
        name for name in loaded if any(name == r or name.startswith(f"{r}.") for r in RUNTIME)
    ]
    assert runtime == []
