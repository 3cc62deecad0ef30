"""The processor switch: new calls to the new processor, calls in flight finish on the old."""

from __future__ import annotations

import trio
import trio.testing

from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.processor_switch import RETIRE_GRACE, SwitchingProcessorClient


class HeldClient:
    """A processor client whose calls wait until the test lets them answer."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.answer = trio.Event()
        self.calls: list[str] = []
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    async def process(self, request: MessageRequest) -> MessageResponse:
        self.calls.append(request.ref)
        await self.answer.wait()
        return MessageResponse(metadata={"by": self._name})

    def ready(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


async def test_a_call_in_flight_finishes_on_the_old_processor_then_it_is_closed() -> None:
    old, new = HeldClient("old:1"), HeldClient("new:2")
    new.answer.set()
    switch = SwitchingProcessorClient(old, timeout=3.0)
    replies: dict[str, str] = {}

    async def call(ref: str) -> None:
        reply = await switch.process(MessageRequest(ref=ref))
        replies[ref] = reply.metadata["by"]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "held")
        await trio.testing.wait_all_tasks_blocked()
        retired = switch.switch(new, timeout=3.0)
        nursery.start_soon(switch.retire, retired)
        await call("after")
        assert replies == {"after": "new:2"}
        assert switch.name == "new:2"
        await trio.testing.wait_all_tasks_blocked()
        assert not old.closed  # its call is still in flight
        old.answer.set()
    assert replies == {"after": "new:2", "held": "old:1"}
    assert old.calls == ["held"]
    assert new.calls == ["after"]
    assert old.closed
    assert not new.closed


async def test_an_old_processor_that_never_answers_is_closed_after_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old, new = HeldClient("old:1"), HeldClient("new:2")
    switch = SwitchingProcessorClient(old, timeout=3.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(switch.process, MessageRequest(ref="stuck"))
        await trio.testing.wait_all_tasks_blocked()
        retired = switch.switch(new, timeout=5.0)
        started = trio.current_time()
        await switch.retire(retired)
        # The old timeout, not the new one: that is how long its calls may take.
        assert trio.current_time() - started == 3.0 + RETIRE_GRACE
        assert old.closed
        nursery.cancel_scope.cancel()


def test_the_timeout_alone_changes_on_the_client_in_use() -> None:
    class Timed(HeldClient):
        timeout = 3.0

    client = Timed("p:1")
    switch = SwitchingProcessorClient(client, timeout=3.0)
    switch.set_timeout(7.5)
    assert client.timeout == 7.5
    assert switch.current is client
