"""The message path: what edgeport does with each SIP message (contract §3-4).

A request is parsed, stamped with where it came from (RFC 3261 §18.2.1,
RFC 3581), matched to a server transaction, checked at the edge, sent to the
processor, and then answered or forwarded as the reply says. A response
finds its client transaction, goes to the processor and back upstream
through the server transaction it belongs to. Everything that can go wrong
ends in a SIP answer or one log line and a counter, never a silent drop:
a failed or late processor call is 503 with Retry-After, a reply that cannot
become a message is 500, a forwarded request without a final response is
408 (RFC 3261 §16.7 step 10), a broken connection fails its transactions.

The path is a few parts, each owning one stage, composed in
:mod:`.compose` (:class:`Proxy`):

- ``inbound.py``: every inbound message starts here (parse, count, route);
- ``requests.py``: new requests and their processor call;
- ``forwarding.py``: the forward lifecycle, driven by ``edgeport.forward_state``;
- ``failover.py``: RFC 3263 failover between the targets of a next hop
  (``targets.py``), and ``own_requests.py``: the CANCEL, ACK and BYE edgeport
  sends itself;
- ``upstream.py``: responses going back upstream, stray responses;
- ``answers.py``: the send side (and the transaction layer's send callback);
- ``processor_calls.py``, ``loop_guard.py``, ``dialog_state.py``,
  ``answered.py``, ``ordering.py``, ``tasks.py``: what those share.

Concurrency: the transport layer runs each inbound message in a task of its
own (bounded, after a bounded inbox that sheds new requests first). A
``trio.CapacityLimiter`` bounds the new requests in flight; past it a request
gets 503 at once. Processor calls for responses, ACKs and CANCELs have a
separate, larger budget (``edgeport.admission``). A retransmission of a
request still being routed is dropped before parsing. Responses of one
forwarded request are relayed in order, by one task per forwarded request.
"""

from edgeport.proxy.answers import Responder
from edgeport.proxy.compose import Proxy
from edgeport.proxy.forwarding import Forward
from edgeport.proxy.model import Destination, Exchange, new_branch, new_tag, on_stream

__all__ = [
    "Destination",
    "Exchange",
    "Forward",
    "Proxy",
    "Responder",
    "new_branch",
    "new_tag",
    "on_stream",
]
