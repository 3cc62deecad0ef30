"""The connection table: addresses, extra keys, aliases, removal."""

from __future__ import annotations

from edgeport.sip.transport import Transport
from edgeport.transports import Connection, ConnectionTable, Peer
from edgeport.transports.base import MAX_ALIASES_PER_CONNECTION
from edgeport.transports.connections import ALIAS_CLAIMS_REFUSED, CLAIM_TTL, AliasClaim


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


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingProber:
    def __init__(self) -> None:
        self.probed: list[Connection] = []

    def probe(self, holder: Connection) -> None:
        self.probed.append(holder)


def ws(name: str, port: int) -> FakeConnection:
    return FakeConnection(name, Peer(Transport.WS, "192.0.2.1", port))


async def test_websocket_alias_hijack_first_binding_wins_while_the_holder_lives() -> None:
    prober = RecordingProber()
    table = ConnectionTable(prober=prober, clock=Clock())
    browser, attacker, second_attacker = ws("ws-1", 40000), ws("ws-2", 40001), ws("ws-3", 40002)
    for conn in (browser, attacker, second_attacker):
        table.add(conn)
    refused_before = ALIAS_CLAIMS_REFUSED.labels().value
    assert table.bind_alias("abc.invalid", browser) is AliasClaim.BOUND
    assert table.bind_alias("ABC.invalid.", attacker) is AliasClaim.REFUSED
    assert table.lookup_alias("abc.invalid") is browser
    assert attacker.aliases == set()
    assert ALIAS_CLAIMS_REFUSED.labels().value == refused_before + 1
    # The holder is probed once, however many claims come while the first waits.
    assert table.bind_alias("abc.invalid", attacker) is AliasClaim.REFUSED
    assert table.bind_alias("abc.invalid", second_attacker) is AliasClaim.REFUSED
    assert prober.probed == [browser]
    assert ALIAS_CLAIMS_REFUSED.labels().value == refused_before + 3
    assert table.bind_alias("abc.invalid", browser) is AliasClaim.HELD


async def test_a_holder_that_goes_hands_its_alias_to_the_waiting_claim() -> None:
    clock = Clock()
    table = ConnectionTable(prober=RecordingProber(), clock=clock)
    old, new, late = ws("ws-1", 40000), ws("ws-2", 40001), ws("ws-3", 40002)
    for conn in (old, new, late):
        table.add(conn)
    table.bind_alias("abc.invalid", old)
    assert table.bind_alias("abc.invalid", new) is AliasClaim.REFUSED
    assert table.bind_alias("abc.invalid", late) is AliasClaim.REFUSED
    clock.now += CLAIM_TTL / 2
    table.remove(old)  # the probe went unanswered: the old connection was closed
    assert table.lookup_alias("abc.invalid") is new
    assert new.aliases == {"abc.invalid"}
    assert late.aliases == set()


async def test_a_claim_older_than_its_ttl_takes_nothing() -> None:
    clock = Clock()
    table = ConnectionTable(prober=RecordingProber(), clock=clock)
    holder, claimant = ws("ws-1", 40000), ws("ws-2", 40001)
    table.add(holder)
    table.add(claimant)
    table.bind_alias("abc.invalid", holder)
    table.bind_alias("abc.invalid", claimant)
    clock.now += CLAIM_TTL
    table.remove(holder)
    assert table.lookup_alias("abc.invalid") is None
    # A new claim after the holder went binds at once.
    assert table.bind_alias("abc.invalid", claimant) is AliasClaim.BOUND


async def test_a_closed_holder_not_yet_removed_yields_its_alias() -> None:
    prober = RecordingProber()
    table = ConnectionTable(prober=prober, clock=Clock())
    old, new = ws("ws-1", 40000), ws("ws-2", 40001)
    table.add(old)
    table.add(new)
    table.bind_alias("abc.invalid", old)
    old.close()
    assert table.bind_alias("abc.invalid", new) is AliasClaim.BOUND
    assert prober.probed == []
    table.remove(old)
    assert table.lookup_alias("abc.invalid") is new


async def test_a_claimant_that_goes_leaves_no_claim_behind() -> None:
    table = ConnectionTable(prober=RecordingProber(), clock=Clock())
    holder, claimant = ws("ws-1", 40000), ws("ws-2", 40001)
    table.add(holder)
    table.add(claimant)
    table.bind_alias("abc.invalid", holder)
    table.bind_alias("abc.invalid", claimant)
    table.remove(claimant)
    table.remove(holder)
    assert table.lookup_alias("abc.invalid") is None
    assert claimant.aliases == set()


async def test_pending_claims_per_connection_are_bounded() -> None:
    prober = RecordingProber()
    table = ConnectionTable(prober=prober, clock=Clock())
    claimant = ws("ws-0", 39999)
    table.add(claimant)
    holders = [ws(f"ws-{i + 1}", 40000 + i) for i in range(MAX_ALIASES_PER_CONNECTION + 2)]
    for i, holder in enumerate(holders):
        table.add(holder)
        table.bind_alias(f"h{i}.invalid", holder)
        assert table.bind_alias(f"h{i}.invalid", claimant) is AliasClaim.REFUSED
    # Each claim beyond the bound is refused without waiting (and without a probe).
    assert len(prober.probed) == MAX_ALIASES_PER_CONNECTION


async def test_aliases_leave_with_their_connection() -> None:
    table = ConnectionTable()
    first = ws("ws-1", 40000)
    table.add(first)
    table.bind_alias("abc.invalid", first)
    table.remove(first)
    assert table.lookup_alias("abc.invalid") is None
    assert table.binding("abc.invalid") is None


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
