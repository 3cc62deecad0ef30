"""Which worker holds which connection and alias, as the announcements say (sans-IO)."""

from __future__ import annotations

from edgeport.sip.transport import Transport
from edgeport.transports import Peer
from edgeport.workers.mesh import ConnectionDirectory


def test_announced_peers_and_aliases_name_their_holder() -> None:
    directory = ConnectionDirectory()
    directory.apply(1, {"add": [["tcp", "203.0.113.7", 40123], "Abc123.INVALID"]})
    assert directory.holder(Peer(Transport.TCP, "203.0.113.7", 40123)) == 1
    assert directory.holder(Peer(Transport.WS, "abc123.invalid", 0)) == 1
    assert directory.holder(Peer(Transport.TCP, "203.0.113.7", 40124)) is None
    assert directory.holder(Peer(Transport.TLS, "203.0.113.7", 40123)) is None
    assert directory.holder(Peer(Transport.UDP, "203.0.113.7", 40123)) is None


def test_concurrent_bindings_resolve_to_the_earliest_whatever_the_order() -> None:
    browser = Peer(Transport.WS, "b.invalid", 0)
    for order in ((1, 2), (2, 1)):
        directory = ConnectionDirectory()
        stamps = {1: 500.25, 2: 500.5}  # worker 1 bound it first
        for worker in order:
            directory.apply(worker, {"add": [["b.invalid", stamps[worker]]]})
        assert directory.holder(browser) == 1, order
        # The later binding's worker drops it: its removal changes nothing here.
        assert directory.apply(2, {"remove": ["b.invalid"]}) == []
        assert directory.holder(browser) == 1
        # The holder's connection goes: the alias is free.
        assert directory.apply(1, {"remove": ["b.invalid"]}) == ["b.invalid"]
        assert directory.holder(browser) is None


def test_equal_stamps_go_to_the_lower_worker_index() -> None:
    directory = ConnectionDirectory()
    directory.apply(3, {"add": [["b.invalid", 7.0]]})
    directory.apply(2, {"add": [["b.invalid", 7.0]]})
    assert directory.aliases == {"b.invalid": 2}


def test_hello_forgets_what_the_previous_worker_with_that_index_held() -> None:
    directory = ConnectionDirectory()
    directory.apply(0, {"add": [["ws", "127.0.0.1", 50000], "c.invalid"]})
    directory.apply(1, {"add": ["d.invalid"]})
    assert directory.apply(0, {"hello": True}) == ["c.invalid"]
    assert directory.peers == {}
    assert directory.aliases == {"d.invalid": 1}


def test_malformed_items_are_ignored() -> None:
    directory = ConnectionDirectory()
    directory.apply(
        0,
        {
            "add": [
                ["sctp", "h", 1],
                ["tcp", "h", "port"],
                ["x.invalid", "soon"],
                ["x.invalid", float("nan")],
                [7, 1.0],
                7,
                None,
            ]
        },
    )
    directory.apply(1, {"add": "not a list", "remove": {"x.invalid": 1}})
    assert directory.peers == {}
    assert directory.aliases == {}
