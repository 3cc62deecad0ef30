"""Reading an edgeport log for what went wrong: ERROR lines and tracebacks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

_ERROR_LINE: Final = re.compile(r"^\S+ (ERROR|CRITICAL) ")
_TRACEBACK_START: Final = re.compile(
    r"^[\s|+]*(Exception Group )?Traceback \(most recent call last\)"
)
_FRAME: Final = re.compile(r'^[\s|]*File "([^"]+)", line (\d+), in (\S+)')
_EXCEPTION: Final = re.compile(
    r"^[\s|]*((?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt|error)(?:: .*)?)$"
)


@dataclass
class LogScan:
    """What a log says went wrong: ERROR/CRITICAL lines and tracebacks, summed up."""

    errors: int = 0
    tracebacks: int = 0
    lines: list[str] = field(default_factory=list)  # distinct, the first few, with counts

    def add(self, line: str, counts: dict[str, int], keep: int) -> None:
        if line not in counts and len(counts) >= keep:
            return
        counts[line] = counts.get(line, 0) + 1


def scan_log(log: Path, keep: int = 20) -> LogScan:
    """ERROR/CRITICAL lines, and each traceback as its innermost frame and exception
    (``edgeport/capture/hep.py:94 in _chunk: struct.error: ...``), with counts."""
    scan = LogScan()
    counts: dict[str, int] = {}
    frame = ""
    in_traceback = False
    with log.open(errors="replace") as lines:
        for raw in lines:
            line = raw.rstrip()
            if _ERROR_LINE.match(line):
                in_traceback = False
                scan.errors += 1
                scan.add(re.sub(r"^\S+ ", "", line)[:300], counts, keep)
                continue
            if _TRACEBACK_START.match(line):
                if not in_traceback:
                    scan.tracebacks += 1
                in_traceback, frame = True, ""
                continue
            if not in_traceback:
                continue
            if match := _FRAME.match(line):
                path = match.group(1)
                short = path[path.find("edgeport/") :] if "edgeport/" in path else path
                frame = f"{short}:{match.group(2)} in {match.group(3)}"
            elif (match := _EXCEPTION.match(line)) and not match.group(1).startswith(
                ("ExceptionGroup", "BaseExceptionGroup")
            ):
                scan.add(f"traceback at {frame}: {match.group(1)[:300]}", counts, keep)
            elif re.match(r"^\d{4}-\d\d-\d\dT", line):
                in_traceback = False
    scan.lines = [f"{line} (x{n})" if n > 1 else line for line, n in counts.items()]
    return scan
