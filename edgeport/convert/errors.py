"""The one error conversion raises, in both directions.

SIP -> protobuf fails on a typed header the protobuf needs but cannot be
read (``Expires: soon``): the request gets ``status_code`` (400 by default).
protobuf -> SIP fails on a processor reply that cannot become a message
(:class:`ReplyError`): the request gets 500. Anything else a conversion
raises is a defect in edgeport, not in the input, and is reported as one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from edgeport.sip.errors import SipParseError

if TYPE_CHECKING:
    from collections.abc import Callable

P = ParamSpec("P")
R = TypeVar("R")


class ConversionError(Exception):
    """A message that cannot be converted. ``reason`` is safe for a reason phrase."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class ReplyError(ConversionError):
    """A processor reply that cannot be turned into a SIP message; the proxy answers 500."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, 500)


def from_parse_error(error: SipParseError) -> ConversionError:
    return ConversionError(error.reason, error.status_code)


def reply_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report a header of the reply that does not parse as the ReplyError it is."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SipParseError as error:
            raise ReplyError(error.reason) from error

    return wrapper
