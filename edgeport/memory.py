"""One byte budget for what traffic can make edgeport hold (``spec.limits.memory``).

A flood grows memory in three places, and each has a share of the budget
(together 80% of it; the rest covers what the accounts cannot see):

- **transactions** (40%): server and client transactions and what they keep
  (the request while it may be needed, the bytes of the last message sent).
  An entry is charged an estimate of what it really holds in Python
  objects, measured, not its wire size alone: :func:`transaction_cost`, and
  :func:`lingering_transaction_cost` once it only absorbs retransmissions.
  When the share is spent, transactions that only linger to absorb
  retransmissions go first, oldest first; only when none is left is a new
  one refused (503). One source may hold at most a quarter of
  the share, so a single flooding source cannot take it all.
- **inbox** (20%): messages received and waiting for a handler
  (:mod:`edgeport.transports.inbox`), each charged its size and a fixed
  overhead. Past the share, new requests are shed as in overload.
- **streams** (20%): partial messages buffered on TCP, TLS, WS and WSS
  connections. A connection whose buffer would grow past the share is closed.

Fixed-count tables (flood counters, connections, call turns, the answered
INVITEs) have caps of their own; the budget is for what grows with bytes
sent by peers. With worker processes each worker gets an equal part.

Sans-IO: plain numbers; the metrics read :attr:`Account.used`.
"""

from __future__ import annotations

import re
from typing import Final

DEFAULT_MEMORY_BYTES: Final = 256 * 2**20  # a small VM: RSS stays well under 512 MiB
MIN_MEMORY_BYTES: Final = 16 * 2**20
# The shares add up to 80%: the rest is for what the accounts do not see
# (the allocator's own overhead and fragmentation, a connection's read
# buffer, objects in flight). Measured under the flood benchmark
# (benchmarks/flood_memory.py): RSS grew by about 1.3 times what the
# accounts held.
TRANSACTIONS_SHARE: Final = 0.4
INBOX_SHARE: Final = 0.2
STREAMS_SHARE: Final = 0.2
SOURCE_SHARE: Final = 0.25  # of the transactions share, for one source

# Measured with tracemalloc (benchmarks/transactions.py) on live
# transactions, their request's views parsed as the message path parses
# them: about 4.6 KiB whatever the size (the parsed top Via, From, To, CSeq,
# Call-ID, Request-URI and one Contact, the transaction's record, handle,
# machine and timers), plus about 215 bytes per header line, plus the raw
# size; a further Via or Contact line, parsed into its typed view, about
# 800 bytes more. A transaction that only absorbs retransmissions holds
# about 1 KiB (its record, machine, timer and destination, the objects of
# its key), the characters of its key and the bytes of its last message.
# These round them up.
TRANSACTION_OVERHEAD_BYTES: Final = 5120
HEADER_LINE_BYTES: Final = 224
PARSED_LINE_BYTES: Final = 832  # a Via or Contact line past the first
LINGERING_TRANSACTION_BYTES: Final = 1280
INBOX_MESSAGE_OVERHEAD_BYTES: Final = 256  # the InboundMessage, its queue slot

_SIZE: Final = re.compile(r"\s*([0-9]+)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)
_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_byte_size(value: object) -> int:
    """``268435456``, ``"256Mi"``, ``"256MiB"``, ``"1Gi"`` or ``"300M"`` -> bytes.

    Units as Kubernetes writes them: ``Ki``, ``Mi``, ``Gi`` are powers of
    1024, ``K``, ``M``, ``G`` powers of 1000; a trailing ``B`` is allowed.
    Raises ValueError.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size in bytes, got {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as 256Mi, got {value!r}")
    match = _SIZE.fullmatch(value)
    if match is None:
        raise ValueError(f"expected a size such as 256Mi or 1Gi, got {value!r}")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(match.group(1)) * _UNITS[unit]


def transaction_cost(raw_bytes: int, header_lines: int, parsed_lines: int = 0) -> int:
    """What a transaction holding a message of this size and shape costs, with
    ``parsed_lines`` Via and Contact lines past the first of each."""
    return (
        TRANSACTION_OVERHEAD_BYTES
        + raw_bytes
        + HEADER_LINE_BYTES * header_lines
        + PARSED_LINE_BYTES * parsed_lines
    )


def lingering_transaction_cost(wire_bytes: int, key_bytes: int) -> int:
    """What a transaction that only absorbs retransmissions costs: it keeps its
    key (``key_bytes`` characters) and the bytes of its last message."""
    return LINGERING_TRANSACTION_BYTES + wire_bytes + key_bytes


class Account:
    """One share of the budget: ``used`` never goes past ``limit`` through ``take``."""

    __slots__ = ("limit", "name", "peak", "refused", "used")

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the {name} share must be at least 1 byte")
        self.name = name
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.refused = 0  # takes that did not fit

    def __repr__(self) -> str:
        return f"<Account {self.name} {self.used}/{self.limit}>"

    def fits(self, amount: int) -> bool:
        return self.used + amount <= self.limit

    def take(self, amount: int) -> bool:
        """Charge ``amount`` if it fits; False (counted in ``refused``) when it does not."""
        if self.used + amount > self.limit:
            self.refused += 1
            return False
        self.used += amount
        if self.used > self.peak:
            self.peak = self.used
        return True

    def give_back(self, amount: int) -> None:
        self.used = max(0, self.used - amount)


class Charge:
    """What one holder (a connection's buffer) has charged to an account."""

    __slots__ = ("account", "held")

    def __init__(self, account: Account) -> None:
        self.account = account
        self.held = 0

    def resize(self, size: int) -> bool:
        """Charge for holding ``size`` bytes now; False (nothing changed) when it does not fit."""
        delta = size - self.held
        if delta > 0 and not self.account.take(delta):
            return False
        if delta < 0:
            self.account.give_back(-delta)
        self.held = size
        return True

    def release(self) -> None:
        self.account.give_back(self.held)
        self.held = 0


class MemoryBudget:
    """The three shares of ``total`` bytes."""

    def __init__(self, total: int = DEFAULT_MEMORY_BYTES) -> None:
        if total < 3:
            raise ValueError("a memory budget needs at least 3 bytes")
        self.total = total
        self.transactions = Account("transactions", int(total * TRANSACTIONS_SHARE))
        self.inbox = Account("inbox", int(total * INBOX_SHARE))
        self.streams = Account("streams", int(total * STREAMS_SHARE))

    @property
    def accounts(self) -> tuple[Account, Account, Account]:
        return (self.transactions, self.inbox, self.streams)

    @classmethod
    def per_worker(cls, total: int, workers: int) -> MemoryBudget:
        """The part of ``total`` one of ``workers`` worker processes gets."""
        return cls(max(3, total // max(1, workers)))
