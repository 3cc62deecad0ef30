"""SIP message <-> Routr protobuf, as pure functions (contract §2-4).

- SIP -> protobuf: :func:`to_sip_message`, :func:`to_message_request`.
- protobuf -> SIP: :func:`build_answer`, :func:`build_forward_request`,
  :func:`build_forward_response`, and :func:`next_hop` for the target.
- Tables: ResponseType <-> status code, Method.
- :func:`show_browser_source`: a LAN browser's ``.invalid`` Via host as the
  processor sees it.
"""

from edgeport.convert.browser_via import show_browser_source
from edgeport.convert.codes import (
    method_value,
    response_type_for_status,
    should_send_response,
    status_for_response_type,
)
from edgeport.convert.errors import ConversionError, ReplyError
from edgeport.convert.next_hop import NextHop, next_hop
from edgeport.convert.replies import (
    ForwardedRequest,
    build_answer,
    build_forward_request,
    build_forward_response,
)
from edgeport.convert.to_proto import MessageRequestBuilder, to_message_request, to_sip_message

__all__ = [
    "ConversionError",
    "ForwardedRequest",
    "MessageRequestBuilder",
    "NextHop",
    "ReplyError",
    "build_answer",
    "build_forward_request",
    "build_forward_response",
    "method_value",
    "next_hop",
    "response_type_for_status",
    "should_send_response",
    "show_browser_source",
    "status_for_response_type",
    "to_message_request",
    "to_sip_message",
]
