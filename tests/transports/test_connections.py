"""The connection table: addresses, extra keys, aliases, removal."""

from __future__ import annotations

from edgeport.sip.transport import Transport
from edgeport.transports import Connection, ConnectionTable, Peer
from edgeport.transports.base import MAX_ALIASES_PER_CONNECTION


class FakeConnection(Connection):
    def __init__(self, name: str, peer: Peer) -> None:
        super().__init__(
            name, peer.transport, peer, Peer(peer.transport, "0.0.0.0", 5060), outbound=False
        )
        self.sent: list[bytes] = []

    async def _send(self, data: bytes) -> None:
        self.sent.append(data)

    async def aclose_transport(self) -> None:
        return None


async def test_lookup_by_address_and_extra_key() -> None:
    removed: list[Connection] = []
    table = ConnectionTable(on_removed=removed.append)
    conn = FakeConnection("tcp-1", Peer(Transport.TCP, "2001:DB8::0001", 5070))
    table.add(conn, (Transport.TCP, "proxy.example.com", 5070))
    assert len(table) == 1
    assert table.get(Transport.TCP, "[2001:db8::1]", 5070) is conn
    assert table.get(Transport.TCP, "PROXY.example.com", 5070) is conn
    assert table.get(Transport.TLS, "2001:db8::1", 5070) is None
    table.remove(conn)
    table.remove(conn)
    assert removed == [conn]
    assert len(table) == 0
    assert table.get(Transport.TCP, "2001:db8::1", 5070) is None


async def test_aliases_latest_binding_wins_and_leave_with_their_connection() -> None:
    table = ConnectionTable()
    first = FakeConnection("ws-1", Peer(Transport.WS, "192.0.2.1", 40000))
    second = FakeConnection("ws-2", Peer(Transport.WS, "192.0.2.1", 40001))
    table.add(first)
    table.add(second)
    table.bind_alias("abc.invalid", first)
    table.bind_alias("ABC.invalid", second)
    assert table.lookup_alias("abc.invalid") is second
    assert first.aliases == set()
    table.remove(first)
    assert table.lookup_alias("abc.invalid") is second
    table.remove(second)
    assert table.lookup_alias("abc.invalid") is None


async def test_alias_count_is_bounded_and_unknown_connections_are_ignored() -> None:
    table = ConnectionTable()
    conn = FakeConnection("ws-1", Peer(Transport.WS, "192.0.2.1", 40000))
    stranger = FakeConnection("ws-2", Peer(Transport.WS, "192.0.2.2", 40000))
    table.add(conn)
    for i in range(MAX_ALIASES_PER_CONNECTION + 3):
        table.bind_alias(f"h{i}.invalid", conn)
    assert len(conn.aliases) == MAX_ALIASES_PER_CONNECTION
    table.bind_alias("s.invalid", stranger)
    assert table.lookup_alias("s.invalid") is None


async def test_a_later_connection_from_the_same_address_replaces_the_entry() -> None:
    table = ConnectionTable()
    peer = Peer(Transport.TCP, "192.0.2.9", 5060)
    old, new = FakeConnection("tcp-1", peer), FakeConnection("tcp-2", peer)
    table.add(old)
    table.add(new)
    assert table.get(Transport.TCP, "192.0.2.9", 5060) is new
    table.remove(old)
    assert table.get(Transport.TCP, "192.0.2.9", 5060) is new
