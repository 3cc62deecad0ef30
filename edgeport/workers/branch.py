"""Via branches that name a worker, and finding that worker in a raw response.

With more than one worker, the top Via of every request a worker forwards
statefully carries a branch ``z9hG4bKw<index>-<random>``. A response to that
request comes back with that Via on top, to whichever worker the kernel
picks; :func:`response_worker` reads the index back from the raw bytes (no
parse) so the response can be handed to its worker before anything else.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

WORKER_BRANCH_PREFIX: Final = "z9hG4bKw"  # RFC 3261 magic cookie, then "w" and the index
MAX_HEAD_SCAN: Final = 8192  # bytes of a response searched for its top Via

_STATUS_LINE: Final = b"SIP/2.0 "
_VIA_NAMES: Final = (b"via", b"v")
_WORKER_BRANCH: Final = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*z9hG4bKw([0-9]{1,3})-", re.I)


def worker_branch_factory(index: int) -> Callable[[], str]:
    """A branch factory whose branches name worker ``index``."""
    if index < 0:
        raise ValueError(f"worker index must not be negative, got {index}")
    prefix = f"{WORKER_BRANCH_PREFIX}{index}-"

    def new_branch() -> str:
        return prefix + secrets.token_hex(8)

    return new_branch


def response_worker(data: bytes) -> int | None:
    """The worker named by the top Via branch of a raw response; None for a request or none."""
    if not data.startswith(_STATUS_LINE):
        return None
    head = data[:MAX_HEAD_SCAN]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[:end]
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        if name.strip().lower() in _VIA_NAMES:
            top = value.split(b",", 1)[0]  # the first value of the first Via line
            match = _WORKER_BRANCH.search(top)
            return int(match.group(1)) if match else None
    return None
