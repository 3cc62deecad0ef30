"""Known SIP scanners, spotted by their User-Agent in the raw header bytes.

Runs before parsing: the header section (up to the first empty line) is
searched for ``User-Agent`` header lines, with their folded continuation
lines (RFC 3261 §7.3.1), and their values for any configured substring,
case-insensitively. ``User-Agent`` has no compact form (RFC 3261 §7.3.3
lists none), so only the full name is looked for; header names are
case-insensitive and may have whitespace before the colon (RFC 3261 §7.3.1).

The default list holds the User-Agent strings of widely used scanning and
cracking tools (SIPVicious and its forks, sipcli, sip-scan, sundayddr, iWar,
SIVuS, SIPBomber, and the strings seen in brute-force floods). Tools that are
also used legitimately for testing and monitoring (sipsak, SIPp) are left
out: an operator adds them when they see abuse.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

DEFAULT_SCANNERS: Final[tuple[str, ...]] = (
    "friendly-scanner",  # SIPVicious svmap/svwar/svcrack default
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sundayddr",
    "iwar",
    "sivus",
    "sipbomber",
    "vaxsipuseragent",
    "pplsip",
)

# A User-Agent header line and its folded continuation lines, in the header section.
_USER_AGENT: Final = re.compile(
    rb"^user-agent[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE
)
_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")


class ScannerFilter:
    """Matches raw messages whose User-Agent contains one of ``patterns``."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p for p in (p.strip() for p in patterns) if p)
        alternatives = b"|".join(re.escape(p.encode("utf-8")) for p in self.patterns)
        self._pattern = re.compile(alternatives, re.IGNORECASE) if self.patterns else None

    @property
    def enabled(self) -> bool:
        return self._pattern is not None

    def matches(self, data: bytes) -> bool:
        """True when the header section of ``data`` has a User-Agent naming a scanner."""
        pattern = self._pattern
        if pattern is None:
            return False
        end = _HEADER_END.search(data)
        head = data if end is None else data[: end.start()]
        for found in _USER_AGENT.finditer(head):
            if pattern.search(found.group(1)) is not None:
                return True
        return False
