"""Log lines that a flood of bad traffic cannot multiply without bound.

Every dropped or refused message is worth a log line with its Call-ID and the
reason, until a flood makes that a way to fill the disk. ``RateLimitedLog``
lets ``burst`` lines through per ``interval`` seconds, counts what it holds
back, and says how many were held back in the first line it lets through
afterwards.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_BURST: Final = 20  # lines per interval
DEFAULT_INTERVAL: Final = 10.0  # seconds


class RateLimitedLog:
    """A logger wrapper allowing ``burst`` lines per ``interval`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = DEFAULT_BURST,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("burst must be at least 1 and interval positive")
        self._logger = logger
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window_start = clock()
        self._in_window = 0
        self.suppressed = 0  # lines held back since the last one let through

    def log(self, level: int, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless over the limit; returns whether the line was written.

        ``exc_info``: add the exception being handled (its traceback) to the line.
        """
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        if now - self._window_start >= self._interval:
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self._burst:
            self.suppressed += 1
            return False
        self._in_window += 1
        if self.suppressed:
            msg = f"{msg} ({self.suppressed} similar lines suppressed)"
            self.suppressed = 0
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def info(self, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, msg, *args)

    def exception(self, msg: str, *args: object) -> bool:
        """An ERROR line with the traceback of the exception being handled."""
        return self.log(logging.ERROR, msg, *args, exc_info=True)
