"""The transaction layer on trio: transaction tables, timers, retransmissions.

It runs the sans-IO machines of :mod:`edgeport.sip.transaction` (RFC 3261
§17) for the proxy, in parts that each own one job:

- :mod:`.layer`: ``TransactionLayer``, the tables and what their machines
  ask for (matching, sending, telling the TU);
- :mod:`.entries`: a transaction's record in a table and the handle its TU
  holds; an answered transaction keeps only what absorbing retransmissions
  needs (its key, the bytes of its final response, its state and timers);
- :mod:`.timer_heap`: every timer, on trio's clock, fired from one task;
- :mod:`.budget`: the table caps and the memory budget (per-source shares,
  lingering transactions dropped oldest first to make room);
- :mod:`.destinations`: transactions by destination, so a closed connection
  fails its own at once;
- :mod:`.outgoing`: what the send callback gets and may raise.
"""

from edgeport.transaction_layer.budget import MAX_TRANSACTIONS, TransactionTableFull
from edgeport.transaction_layer.entries import (
    ClientTransactionHandle,
    ClientTU,
    ServerTransactionHandle,
    StrayAck,
)
from edgeport.transaction_layer.layer import TransactionLayer
from edgeport.transaction_layer.outgoing import Outgoing, SendFailed

__all__ = [
    "MAX_TRANSACTIONS",
    "ClientTU",
    "ClientTransactionHandle",
    "Outgoing",
    "SendFailed",
    "ServerTransactionHandle",
    "StrayAck",
    "TransactionLayer",
    "TransactionTableFull",
]
