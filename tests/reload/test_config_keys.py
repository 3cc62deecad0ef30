"""spec.reload.watchInterval: loaded, described, and every bad value named by its key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from edgeport.config import describe_config, load_config
from edgeport.config.model import DEFAULT_RELOAD_WATCH_INTERVAL
from tests.test_config import problems_of, with_spec, write

if TYPE_CHECKING:
    from pathlib import Path

VALID_SPEC = """\
transport: [{protocol: udp, port: 5060}]
methods: [INVITE]
processor: {addr: "p:1"}
localnets: [10.0.0.0/8]
"""


def test_the_watch_interval_defaults_and_loads(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, with_spec(VALID_SPEC)), {})
    assert default.reload.watch_interval == DEFAULT_RELOAD_WATCH_INTERVAL
    path = write(tmp_path, with_spec(VALID_SPEC + "reload: {watchInterval: 0.5}\n"))
    config = load_config(path, {})
    assert config.reload.watch_interval == 0.5
    assert describe_config(config)["spec"]["reload"] == {"watchInterval": 0.5}
    off = load_config(write(tmp_path, with_spec(VALID_SPEC + "reload: {watchInterval: 0}\n")), {})
    assert off.reload.watch_interval == 0


@pytest.mark.parametrize("value", ["0.001", "-1", "100000", "soon", ".inf"])
def test_a_watch_interval_that_would_spin_or_never_look_is_refused(
    tmp_path: Path, value: str
) -> None:
    path = write(tmp_path, with_spec(VALID_SPEC + f"reload: {{watchInterval: {value}}}\n"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("spec.reload.watchInterval: expected ")
