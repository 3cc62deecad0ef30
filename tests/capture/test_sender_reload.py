"""A reload that moves the HEP collector: the next copies go to the new one."""

from __future__ import annotations

import trio

from edgeport.capture.sender import HepCapture
from edgeport.config import HepConfig
from tests.capture.test_sender import inbound
from tests.support.hep_collector import Collector


async def test_the_next_copies_go_to_the_collector_a_reload_names() -> None:
    first, second = await Collector.open(), await Collector.open()
    capture = HepCapture(HepConfig(addr=first.addr, agent_id=1))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(capture.serve)
            capture.received(inbound())
            with trio.fail_after(10):
                await first.receive()
            capture.reconfigure(HepConfig(addr=second.addr, agent_id=2))
            capture.received(inbound())
            with trio.fail_after(10):
                await second.receive()
            with trio.move_on_after(0.2):
                await first.receive()
                raise AssertionError("a copy went to the old collector after the reload")
            nursery.cancel_scope.cancel()
    finally:
        first.close()
        second.close()
    assert capture.sent == 2
