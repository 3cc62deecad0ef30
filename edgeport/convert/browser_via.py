"""A browser's ``.invalid`` Via host, as a processor sees it (contract §3).

RFC 7118 §5.2: a WebSocket client cannot know the address it is reached at,
so a browser (JsSIP, SIP.js) writes a random name under ``.invalid`` as the
sent-by host of its Via (and its Contact host). Routr's location service
stores that Via host as the route's ``advertisedHost``, and Routr's processor
library (``getEdgeInterface``) places the EdgePort towards it: the localnet
that holds the host, else the first external address. A ``.invalid`` name is
in no localnet, so with no external address every call to the browser fails
with "unable to find a valid interface for host ….invalid" (a 500).

When no external address is configured, edgeport shows a request that came
over a WebSocket with a ``.invalid`` top Via host to the processor with the
connection's source address as that host: the address the browser would have
written had it known it, and the one ``received`` already carries. A browser
on the local network is then placed in its localnet. Nothing else changes:
the Via port and parameters stay, requests over UDP, TCP and TLS, responses,
and deployments with external addresses (where the library already uses the
first one) are shown as before. On the wire the browser's Via is never
rewritten: a Via the processor returns unchanged is written back as the
browser sent it (``edgeport.convert.replies``), so its responses carry the
sent-by it expects (a UA drops a response whose Via sent-by is not its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edgeport._proto import common_pb2
from edgeport.sip.uri import is_websocket_alias

if TYPE_CHECKING:
    from edgeport._proto import processor_pb2

__all__ = ["show_browser_source"]

_WEBSOCKETS: Final = frozenset({common_pb2.WS, common_pb2.WSS})


def show_browser_source(request: processor_pb2.MessageRequest) -> bool:
    """In place: the top Via host of a browser's request becomes ``sender.host``.

    Only for a request (not a response) whose sender came over WS or WSS,
    whose top Via host is a ``.invalid`` name, in a ``MessageRequest`` with no
    ``external_addrs``. True when the host was replaced.
    """
    sender = request.sender
    if sender.transport not in _WEBSOCKETS or request.external_addrs or not sender.host:
        return False
    message = request.message
    if not message.via or message.WhichOneof("message_type") != "request_uri":
        return False
    via = message.via[0]
    if not is_websocket_alias(via.host):
        return False
    via.host = sender.host
    return True
