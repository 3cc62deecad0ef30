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


def test_removal_by_another_worker_keeps_the_latest_holder() -> None:
    directory = ConnectionDirectory()
    directory.apply(0, {"add": ["b.invalid"]})
    directory.apply(1, {"add": ["b.invalid"]})  # the browser reconnected to worker 1
    directory.apply(0, {"remove": ["b.invalid"]})  # worker 0's old connection closed
    assert directory.holder(Peer(Transport.WS, "b.invalid", 0)) == 1
    directory.apply(1, {"remove": ["b.invalid"]})
    assert directory.holder(Peer(Transport.WS, "b.invalid", 0)) is None


def test_hello_forgets_what_the_previous_worker_with_that_index_held() -> None:
    directory = ConnectionDirectory()
    directory.apply(0, {"add": [["ws", "127.0.0.1", 50000], "c.invalid"]})
    directory.apply(1, {"add": ["d.invalid"]})
    directory.apply(0, {"hello": True})
    assert directory.peers == {}
    assert directory.aliases == {"d.invalid": 1}


def test_malformed_items_are_ignored() -> None:
    directory = ConnectionDirectory()
    directory.apply(0, {"add": [["sctp", "h", 1], ["tcp", "h"], ["tcp", "h", "port"], 7, None]})
    assert directory.peers == {}
    assert directory.aliases == {}
