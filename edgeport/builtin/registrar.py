"""An in-memory registrar: address-of-record -> contact bindings (RFC 3261 §10.3).

No I/O and no clock of its own: the clock is injected, so expiry is tested
with a fake one. Each binding also remembers where the REGISTER really came
from (the top Via's ``received``/``rport``, which the EdgePort stamps before
conversion, contract §2): a client behind NAT, or on a TCP or WebSocket
connection, is reached there rather than at the address its Contact claims.

Bounds: at most :data:`MAX_AORS` addresses of record and
:data:`MAX_BINDINGS_PER_AOR` contacts each (the oldest binding is dropped
for a new one); the router refuses a Contact or AOR URI longer than
:data:`MAX_STORED_URI_BYTES`. Expired bindings are purged when their AOR is touched, and
the whole table is swept before it would refuse a new AOR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from edgeport._proto import common_pb2, sipmessage_pb2
from edgeport.builtin.edge import normalise_host, uri_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MAX_AORS: Final = 100_000
MAX_BINDINGS_PER_AOR: Final = 10
DEFAULT_EXPIRES: Final = 3600  # seconds, RFC 3261 §10.2.1.1 "a recommended default"
MAX_EXPIRES: Final = 86_400  # seconds; a registrar may shorten the requested time
# A Contact or AOR URI as stored (the fields the protobuf SipURI holds), in bytes.
# RFC 3261 sets no limit; real ones stay under 100 bytes. 512 leaves room for
# long user parts and still lets one binding and the request's own lines fit
# the 1300-byte datagram of RFC 3261 §18.1.1 (register_answer.py), and it
# bounds the table: MAX_AORS * MAX_BINDINGS_PER_AOR URIs of this size at most.
MAX_STORED_URI_BYTES: Final = 512


class RegistrarFull(Exception):
    """No room for another address of record."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a REGISTER came from: the transport-level address of the client."""

    host: str
    port: int
    transport: common_pb2.Transport


@dataclass(frozen=True, slots=True)
class Binding:
    contact: sipmessage_pb2.SipURI
    source: Source
    expires_at: float
    registered_at: float


def contact_key(uri: sipmessage_pb2.SipURI) -> tuple[str, str, int, str]:
    """Two Contact URIs are the same binding when user, host, port and transport agree.

    An approximation of RFC 3261 §19.1.4 URI equality, enough to refresh a
    binding rather than add a second one.
    """
    return (uri.user, normalise_host(uri.host), uri_port(uri), uri.transport_param.lower())


class Registrar:
    """AOR keys are strings the caller chooses (see the router's ``aor_key``)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_aors: int = MAX_AORS,
        max_bindings_per_aor: int = MAX_BINDINGS_PER_AOR,
    ) -> None:
        self._clock = clock
        self._max_aors = max_aors
        self._max_bindings = max_bindings_per_aor
        # aor -> contact key -> binding, in registration order (oldest first)
        self._table: dict[str, dict[tuple[str, str, int, str], Binding]] = {}
        # contact (host, port) -> aors holding it, for requests sent to a remote target
        self._by_contact: dict[tuple[str, int], set[str]] = {}

    def __len__(self) -> int:
        return len(self._table)

    def now(self) -> float:
        return self._clock()

    def update(
        self, aor: str, contact: sipmessage_pb2.SipURI, expires: int, source: Source
    ) -> None:
        """Add, refresh (expires > 0) or remove (expires == 0) one binding.

        RFC 3261 §10.3 step 7: "If the binding does not exist, it is tentatively
        added. If the binding does exist, the registrar checks the Call-ID
        value." (Call-ID/CSeq ordering is not checked here: a later REGISTER wins.)
        """
        key = contact_key(contact)
        now = self._clock()
        bindings = self._live(aor, now)
        if expires <= 0:
            if bindings is not None and key in bindings:
                self._forget(aor, bindings.pop(key))
                if not bindings:
                    del self._table[aor]
            return
        if bindings is None:
            if len(self._table) >= self._max_aors:
                self.purge_expired()
                if len(self._table) >= self._max_aors:
                    raise RegistrarFull(f"registrar holds {self._max_aors} addresses of record")
            bindings = self._table[aor] = {}
        old = bindings.pop(key, None)
        if old is not None:
            self._forget(aor, old)
        while len(bindings) >= self._max_bindings:
            oldest = next(iter(bindings))
            self._forget(aor, bindings.pop(oldest))
        stored = sipmessage_pb2.SipURI()
        stored.CopyFrom(contact)
        bindings[key] = Binding(
            contact=stored,
            source=source,
            expires_at=now + min(expires, MAX_EXPIRES),
            registered_at=now,
        )
        self._by_contact.setdefault(key[1:3], set()).add(aor)

    def remove_all(self, aor: str) -> None:
        """RFC 3261 §10.3 step 6: ``Contact: *`` with ``Expires: 0`` removes every binding."""
        bindings = self._table.pop(aor, None)
        for binding in (bindings or {}).values():
            self._forget(aor, binding)

    def bindings(self, aor: str) -> list[Binding]:
        """The live bindings of an AOR, most recently registered first."""
        bindings = self._live(aor, self._clock())
        if not bindings:
            return []
        # Kept in registration order (a refresh moves a binding to the end).
        return list(reversed(bindings.values()))

    def remaining(self, binding: Binding) -> int:
        """Whole seconds left, for ``Contact: <...>;expires=N`` in a 200 (never below 0)."""
        return max(0, round(binding.expires_at - self._clock()))

    def binding_for_contact(self, uri: sipmessage_pb2.SipURI) -> Binding | None:
        """The live binding whose Contact is this URI (host, port, user), if any.

        In-dialog requests go to the remote target, which is a Contact; when
        that Contact is registered, its binding says where the client really is.
        """
        key = contact_key(uri)
        now = self._clock()
        for aor in sorted(self._by_contact.get(key[1:3], ())):
            bindings = self._live(aor, now)
            if not bindings:
                continue
            for binding_key, binding in bindings.items():
                if binding_key[:3] == key[:3]:
                    return binding
        return None

    def purge_expired(self) -> None:
        now = self._clock()
        for aor in list(self._table):
            self._live(aor, now)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table))

    def _live(self, aor: str, now: float) -> dict[tuple[str, str, int, str], Binding] | None:
        bindings = self._table.get(aor)
        if bindings is None:
            return None
        for key in [k for k, b in bindings.items() if b.expires_at <= now]:
            self._forget(aor, bindings.pop(key))
        if not bindings:
            del self._table[aor]
            return None
        return bindings

    def _forget(self, aor: str, binding: Binding) -> None:
        index_key = contact_key(binding.contact)[1:3]
        aors = self._by_contact.get(index_key)
        if aors is None:
            return
        if not any(
            contact_key(b.contact)[1:3] == index_key
            for b in self._table.get(aor, {}).values()
            if b is not binding
        ):
            aors.discard(aor)
        if not aors:
            del self._by_contact[index_key]
