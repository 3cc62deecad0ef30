"""SIP final status code -> the ``hangupCause`` of a ``call.ended`` event.

The table is the one Routr's EdgePort publishes (contract §5); consumers
(billing, dashboards) match on these names, so they are part of the wire
contract. A forwarded CANCEL is reported as 200, so it reads NORMAL_CLEARING.
"""

from __future__ import annotations

import enum
from typing import Final


class HangupCause(enum.StrEnum):
    NORMAL_CLEARING = "NORMAL_CLEARING"
    CALL_REJECTED = "CALL_REJECTED"
    UNALLOCATED = "UNALLOCATED"
    NO_USER_RESPONSE = "NO_USER_RESPONSE"
    NO_ROUTE_DESTINATION = "NO_ROUTE_DESTINATION"
    NO_ANSWER = "NO_ANSWER"
    INVALID_NUMBER_FORMAT = "INVALID_NUMBER_FORMAT"
    USER_BUSY = "USER_BUSY"
    NOT_ACCEPTABLE_HERE = "NOT_ACCEPTABLE_HERE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    UNKNOWN = "UNKNOWN"


_CAUSE_BY_STATUS: Final[dict[int, HangupCause]] = {
    200: HangupCause.NORMAL_CLEARING,
    487: HangupCause.NORMAL_CLEARING,
    401: HangupCause.CALL_REJECTED,
    403: HangupCause.CALL_REJECTED,
    407: HangupCause.CALL_REJECTED,
    603: HangupCause.CALL_REJECTED,
    404: HangupCause.UNALLOCATED,
    485: HangupCause.UNALLOCATED,
    604: HangupCause.UNALLOCATED,
    408: HangupCause.NO_USER_RESPONSE,
    420: HangupCause.NO_ROUTE_DESTINATION,
    480: HangupCause.NO_ANSWER,
    483: HangupCause.NO_ANSWER,
    484: HangupCause.INVALID_NUMBER_FORMAT,
    486: HangupCause.USER_BUSY,
    600: HangupCause.USER_BUSY,
    488: HangupCause.NOT_ACCEPTABLE_HERE,
    503: HangupCause.SERVICE_UNAVAILABLE,
}


def hangup_cause(status_code: int) -> HangupCause:
    """The hangup cause for a final status code; UNKNOWN for any code not in the table."""
    return _CAUSE_BY_STATUS.get(status_code, HangupCause.UNKNOWN)
