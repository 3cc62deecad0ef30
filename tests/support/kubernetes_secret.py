"""A Kubernetes Secret volume on disk, updated the way the kubelet updates it.

The kubelet writes each version of the Secret to a new ``..<version>`` directory,
points a new ``..data_tmp`` link at it and renames that over ``..data`` (one atomic
swap); the file's own name, ``edge.p12``, is a link to ``..data/edge.p12`` that
never changes. A file watch that only looks at the name's link sees nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

T = TypeVar("T")
FILE_NAME = "edge.p12"


def update_secret(root: Path, version: str, write: Callable[[Path], T]) -> T:
    """Publish version ``version`` of the Secret in ``root``: ``write`` fills the new
    ``..<version>/edge.p12`` before the swap. Returns what ``write`` returned; the
    keystore's stable name is ``root / FILE_NAME``."""
    data_dir = root / f"..{version}"
    data_dir.mkdir()
    written = write(data_dir / FILE_NAME)
    link = root / "..data_tmp"
    link.symlink_to(data_dir.name)
    os.replace(link, root / "..data")
    name = root / FILE_NAME
    if not name.is_symlink():
        name.symlink_to(f"..data/{FILE_NAME}")
    return written
