"""Known SIP scanners, spotted by their User-Agent in the raw header bytes.

Runs before parsing: the header section (up to the first empty line) is
searched for ``User-Agent`` header lines, with their folded continuation
lines (RFC 3261 §7.3.1), and their values for any configured substring,
case-insensitively. ``User-Agent`` has no compact form (RFC 3261 §7.3.3
lists none), so only the full name is looked for; header names are
case-insensitive and may have whitespace before the colon (RFC 3261 §7.3.1).

The default list (the User-Agent strings of widely used scanning and
cracking tools) is the configuration's:
:data:`edgeport.config.model.DEFAULT_SCANNERS`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

_NAME: Final = b"user-agent"
_HEADER_END: Final = b"\r\n\r\n"
_BARE_LF_END: Final = b"\n\n"
_LF: Final = 0x0A
_SPACE_OR_TAB: Final = b" \t"


class ScannerFilter:
    """Matches raw messages whose User-Agent contains one of ``patterns``.

    Case-insensitive for ASCII letters (the header block is lower-cased with
    ``bytes.lower``, which leaves other bytes alone); a pattern is matched as
    its UTF-8 bytes.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p for p in (p.strip() for p in patterns) if p)
        needles = dict.fromkeys(p.encode("utf-8").lower() for p in self.patterns)
        # One C-level search over a value for all the patterns at once.
        self._search = (
            re.compile(b"|".join(re.escape(n) for n in needles)).search if needles else None
        )

    @property
    def enabled(self) -> bool:
        return self._search is not None

    def matches(self, data: bytes) -> bool:
        """True when the header section of ``data`` has a User-Agent naming a scanner."""
        search = self._search
        if search is None:
            return False
        end = data.find(_HEADER_END)
        head = (data if end < 0 else data[:end]).lower()
        end = head.find(_BARE_LF_END)
        if end >= 0:
            head = head[:end]
        at = head.find(_NAME)
        while at > 0:
            after = at + len(_NAME)
            if (
                head[at - 1] == _LF
                and head[after : after + 64].lstrip(_SPACE_OR_TAB)[:1] == b":"
                and search(_value_from(head, after)) is not None
            ):
                return True
            at = head.find(_NAME, after)
        return False


def _value_from(head: bytes, start: int) -> bytes:
    """The header value from ``start`` to the end of its line, continuation lines
    (starting with space or tab, RFC 3261 §7.3.1) included."""
    end = start
    while True:
        line_end = head.find(b"\n", end)
        if line_end < 0:
            return head[start:]
        if head[line_end + 1 : line_end + 2] not in (b" ", b"\t"):
            return head[start:line_end]
        end = line_end + 1
