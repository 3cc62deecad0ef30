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

The path is split along the way a message goes:

- ``core.py``: state, wiring, sending and answering, the processor call;
- ``requests.py``: new requests (:class:`Proxy`, the class the server uses);
- ``forwarding.py``: forwarded requests and their client transactions;
- ``upstream.py``: responses going back upstream.

Concurrency: the transport layer runs each inbound message in a task of its
own (bounded, after a bounded inbox that sheds new requests first). A
``trio.CapacityLimiter`` bounds the new requests in flight; past it a request
gets 503 at once. Processor calls for responses, ACKs and CANCELs have a
separate, larger budget (``edgeport.admission``). A retransmission of a
request still being routed is dropped before parsing. Responses of one
forwarded request are relayed in order, by one task per forwarded request.
"""

from edgeport.proxy.core import Destination, Exchange, new_branch, new_tag, on_stream
from edgeport.proxy.forwarding import Forward
from edgeport.proxy.requests import Proxy

__all__ = ["Destination", "Exchange", "Forward", "Proxy", "new_branch", "new_tag", "on_stream"]
