"""Status codes <-> ``ResponseType``, and method names <-> ``Method`` (contract §1, §2).

Routr names 53 SIP status codes in ``ResponseType`` and crashes on any
other. edgeport maps a code without a value to its class value (SUCCESS,
REDIRECTION, CLIENT_ERROR, SERVER_ERROR, GLOBAL_ERROR); a provisional code
without a value has no class value and is not sent to the processor. The
exact code travels in ``MessageRequest.metadata["statusCode"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edgeport._proto import processor_pb2, sipmessage_pb2

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CLASS_RESPONSE_TYPES",
    "RESPONSE_TYPE_STATUS",
    "method_value",
    "response_type_for_status",
    "should_send_response",
    "status_for_response_type",
]

_RT = sipmessage_pb2.ResponseType

# ResponseType value -> the SIP status code it names (contract §1).
RESPONSE_TYPE_STATUS: Final[Mapping[int, int]] = {
    _RT.TRYING: 100,
    _RT.RINGING: 180,
    _RT.CALL_IS_BEING_FORWARDED: 181,
    _RT.QUEUED: 182,
    _RT.SESSION_PROGRESS: 183,
    _RT.OK: 200,
    _RT.ACCEPTED: 202,
    _RT.MULTIPLE_CHOICES: 300,
    _RT.MOVED_PERMANENTLY: 301,
    _RT.MOVED_TEMPORARILY: 302,
    _RT.USE_PROXY: 305,
    _RT.ALTERNATIVE_SERVICE: 380,
    _RT.BAD_REQUEST: 400,
    _RT.UNAUTHORIZED: 401,
    _RT.PAYMENT_REQUIRED: 402,
    _RT.FORBIDDEN: 403,
    _RT.NOT_FOUND: 404,
    _RT.METHOD_NOT_ALLOWED: 405,
    _RT.NOT_ACCEPTABLE: 406,
    _RT.PROXY_AUTHENTICATION_REQUIRED: 407,
    _RT.REQUEST_TIMEOUT: 408,
    _RT.GONE: 410,
    _RT.REQUEST_ENTITY_TOO_LARGE: 413,
    _RT.REQUEST_URI_TOO_LONG: 414,
    _RT.UNSUPPORTED_MEDIA_TYPE: 415,
    _RT.UNSUPPORTED_URI_SCHEME: 416,
    _RT.BAD_EXTENSION: 420,
    _RT.EXTENSION_REQUIRED: 421,
    _RT.INTERVAL_TOO_BRIEF: 423,
    _RT.TEMPORARILY_UNAVAILABLE: 480,
    _RT.CALL_OR_TRANSACTION_DOES_NOT_EXIST: 481,
    _RT.LOOP_DETECTED: 482,
    _RT.TOO_MANY_HOPS: 483,
    _RT.ADDRESS_INCOMPLETE: 484,
    _RT.AMBIGUOUS: 485,
    _RT.BUSY_HERE: 486,
    _RT.REQUEST_TERMINATED: 487,
    _RT.NOT_ACCEPTABLE_HERE: 488,
    _RT.BAD_EVENT: 489,
    _RT.REQUEST_PENDING: 491,
    _RT.UNDECIPHERABLE: 493,
    _RT.SERVER_INTERNAL_ERROR: 500,
    _RT.NOT_IMPLEMENTED: 501,
    _RT.BAD_GATEWAY: 502,
    _RT.SERVICE_UNAVAILABLE: 503,
    _RT.SERVER_TIMEOUT: 504,
    _RT.VERSION_NOT_SUPPORTED: 505,
    _RT.MESSAGE_TOO_LARGE: 513,
    _RT.BUSY_EVERYWHERE: 600,
    _RT.DECLINE: 603,
    _RT.DOES_NOT_EXIST_ANYWHERE: 604,
    _RT.SESSION_NOT_ACCEPTABLE: 606,
}

_STATUS_RESPONSE_TYPE: Final[Mapping[int, int]] = {
    status: rt for rt, status in RESPONSE_TYPE_STATUS.items()
}

# Status class (code // 100) -> its class value. 1xx has none.
CLASS_RESPONSE_TYPES: Final[Mapping[int, int]] = {
    2: _RT.SUCCESS,
    3: _RT.REDIRECTION,
    4: _RT.CLIENT_ERROR,
    5: _RT.SERVER_ERROR,
    6: _RT.GLOBAL_ERROR,
}
_CLASS_OF_RESPONSE_TYPE: Final[Mapping[int, int]] = {
    rt: klass for klass, rt in CLASS_RESPONSE_TYPES.items()
}

_METHODS: Final[Mapping[str, int]] = {
    name: number
    for name, number in processor_pb2.Method.items()
    if number != processor_pb2.Method.UNKNOWN
}


def response_type_for_status(status_code: int) -> int | None:
    """The ``ResponseType`` for a status code: its own value, else its class value.

    None for a provisional code without a value (199, 110...) and for a code
    outside 100..699: such a response is not sent to the processor.
    """
    rt = _STATUS_RESPONSE_TYPE.get(status_code)
    if rt is not None:
        return rt
    if not 100 <= status_code <= 699:
        return None
    return CLASS_RESPONSE_TYPES.get(status_code // 100)


def should_send_response(status_code: int) -> bool:
    """True when a response with this code has a ``ResponseType`` and goes to the processor."""
    return response_type_for_status(status_code) is not None


def status_for_response_type(
    response_type: int, metadata: Mapping[str, str] | None = None
) -> int | None:
    """The status code a processor's ``ResponseType`` asks for, or None for UNKNOWN/unknown values.

    A class value (SUCCESS, CLIENT_ERROR...) is the class's x00 code, unless
    ``metadata["statusCode"]`` names a code of that class: a processor that
    got a 422 as CLIENT_ERROR with ``statusCode=422`` can answer 422 the same way.
    """
    status = RESPONSE_TYPE_STATUS.get(response_type)
    if status is not None:
        return status
    klass = _CLASS_OF_RESPONSE_TYPE.get(response_type)
    if klass is None:
        return None
    if metadata:
        exact = metadata.get("statusCode", "")
        if len(exact) == 3 and exact.isdigit() and int(exact) // 100 == klass:
            return int(exact)
    return klass * 100


_UNKNOWN_METHOD: Final = processor_pb2.Method.UNKNOWN


def method_value(method: str) -> int:
    """``"INVITE"`` -> ``Method.INVITE``; a method outside the enum is ``Method.UNKNOWN``.

    SIP method names are case-sensitive (RFC 3261 §7.1), so ``invite`` is UNKNOWN.
    """
    return _METHODS.get(method, _UNKNOWN_METHOD)
