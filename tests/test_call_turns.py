"""Requests of one call keep their order; other calls never wait for them."""

from __future__ import annotations

import trio
import trio.testing

from edgeport.proxy.ordering import CallTurns


async def test_a_later_request_of_the_call_waits_for_the_earlier_one() -> None:
    turns = CallTurns()
    done: list[str] = []

    async def request(name: str, call_id: str, work: float) -> None:
        async with turns.turn(call_id):
            await trio.sleep(work)
            done.append(name)

    async with trio.open_nursery() as nursery:
        # Started in arrival order; the ACK's processor call is the slower one.
        nursery.start_soon(request, "ACK", "call-1", 0.05)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(request, "BYE", "call-1", 0.0)
        nursery.start_soon(request, "REGISTER", "call-2", 0.0)
    assert done == ["REGISTER", "ACK", "BYE"]
    assert len(turns) == 0  # nothing kept for calls with no request in progress


async def test_a_failed_request_gives_its_turn_up() -> None:
    turns = CallTurns()
    try:
        async with turns.turn("call-1"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with trio.fail_after(1):
        async with turns.turn("call-1"):
            pass
    assert len(turns) == 0
