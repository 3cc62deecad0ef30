"""The WebSocket keep-alive schedule (sans-IO): when a silent peer is pinged, when it is
given up on, and that hearing from it puts both off."""

from __future__ import annotations

import math

from edgeport.transports.ws_keepalive import Due, KeepalivePings


def test_a_silent_peer_is_pinged_every_interval_then_given_up_after_three() -> None:
    pings = KeepalivePings(25.0, now=100.0)
    assert pings.deadline == 125.0
    assert pings.due(124.9) is Due.NOTHING
    assert pings.due(125.0) is Due.PING
    pings.sent_ping(125.0)
    assert pings.deadline == 150.0
    assert pings.due(149.0) is Due.NOTHING
    assert pings.due(150.0) is Due.PING
    pings.sent_ping(150.0)
    assert pings.deadline == 175.0
    assert pings.due(175.0) is Due.CLOSE


def test_hearing_from_the_peer_puts_off_the_next_ping_and_the_close() -> None:
    pings = KeepalivePings(25.0, now=0.0)
    pings.sent_ping(25.0)
    pings.heard_from(30.0)  # the Pong, or anything else
    assert pings.due(50.0) is Due.NOTHING
    assert pings.deadline == 55.0
    assert pings.due(55.0) is Due.PING
    pings.sent_ping(55.0)
    assert pings.due(104.9) is Due.PING  # a late wake-up pings again, does not close
    assert pings.due(105.0) is Due.CLOSE


def test_an_interval_of_zero_never_pings_nor_closes() -> None:
    pings = KeepalivePings(0.0, now=0.0)
    assert pings.deadline == math.inf
    assert pings.due(1e9) is Due.NOTHING
