"""A configuration file for the config tests: the EdgePort header, a minimal valid spec
(two methods, a processor, one UDP listener) and whatever keys a test adds to it."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

HEADER = "kind: EdgePort\napiVersion: v2beta1\nref: edgeport-01\n"
MINIMAL_SPEC = """\
methods: [REGISTER, INVITE]
processor:
  addr: 127.0.0.1:51904
transport:
  - protocol: udp
    port: 5060
"""


def write_spec(tmp_path: Path, extra: str = "") -> Path:
    """``tmp_path/edgeport.yaml``: the minimal spec plus ``extra`` (spec keys, dedented)."""
    path = tmp_path / "edgeport.yaml"
    spec = MINIMAL_SPEC + textwrap.dedent(extra)
    path.write_text(HEADER + "spec:\n" + textwrap.indent(spec, "  "))
    return path
