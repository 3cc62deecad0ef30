"""Errors raised by the SIP codec, and the message size limit.

One parse-error type carries a status hint (400, 413, 505, 513), in the h11
style: a request too broken to handle gets a stateless response with that
code, a broken response is logged and dropped (RFC 3261 §16.3, §21.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from edgeport.sip.message import Request, Response

__all__ = ["MAX_MESSAGE_BYTES", "SipParseError", "SipSerializeError"]

# Routr refuses a SIP message over 1 MiB; so does edgeport (status 513).
MAX_MESSAGE_BYTES: Final = 1 << 20  # bytes


class SipParseError(ValueError):
    """Input that is not a well-formed SIP message, URI or header value.

    ``reason`` is short and safe for a reason phrase (no CR, LF or user data
    beyond a header name). ``status_code`` is the response a request should
    get. ``message`` is the partially parsed message when the start line and
    headers were readable, so a ``400 <reason>`` can still be built.
    """

    reason: str
    status_code: int
    message: Request | Response | None

    def __init__(
        self,
        reason: str,
        status_code: int = 400,
        message: Request | Response | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.message = message

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status_code={self.status_code})"


class SipSerializeError(ValueError):
    """A value that cannot go on the wire, such as a header value holding CR or LF.

    Refusing it is what stops header injection: a value with a line break
    would otherwise start a new header line or end the header section.
    """
