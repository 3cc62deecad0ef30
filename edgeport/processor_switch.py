"""The processor client the proxy calls through, which a reload points elsewhere.

:class:`SwitchingProcessorClient` is a :class:`~edgeport.processor.ProcessorClient`
in front of the real one. A reload that changes ``spec.processor.addr``
gives it a new client (a new gRPC channel) with :meth:`switch`, then
:meth:`retire` for the old one: every call
that starts from then on goes to the new one, while the calls already in
flight finish on the old one, which is closed once the last of them has
ended, or after the processor timeout at the latest (by then a call has
ended anyway: its deadline is the same timeout). A reload that changes only
``spec.processor.timeout`` sets it on the client in use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
    from edgeport.processor import ProcessorClient

logger = logging.getLogger(__name__)

RETIRE_GRACE: Final = 1.0  # seconds past the timeout before an old channel is closed anyway


class _Lane:
    """One client and the calls it carries now."""

    __slots__ = ("calls", "client", "idle", "retired", "timeout")

    def __init__(self, client: ProcessorClient) -> None:
        self.client = client
        self.calls = 0
        self.idle = trio.Event()
        self.retired = False
        self.timeout = 0.0  # seconds its calls may still take, once retired


class SwitchingProcessorClient:
    """Calls go to the current client; :meth:`switch` replaces it for new calls."""

    def __init__(self, client: ProcessorClient, *, timeout: float) -> None:
        self._lane = _Lane(client)
        self._timeout = timeout

    @property
    def current(self) -> ProcessorClient:
        return self._lane.client

    @property
    def name(self) -> str:
        return self._lane.client.name

    async def process(self, request: MessageRequest) -> MessageResponse:
        lane = self._lane
        lane.calls += 1
        try:
            return await lane.client.process(request)
        finally:
            lane.calls -= 1
            if lane.calls == 0 and lane.retired:
                lane.idle.set()

    def ready(self) -> bool:
        return self._lane.client.ready()

    def set_timeout(self, timeout: float) -> None:
        """The deadline of each call from now on (the client's own attribute)."""
        self._timeout = timeout
        client: Any = self._lane.client
        if hasattr(client, "timeout"):  # a gRPC client; the built-in one has no deadline
            client.timeout = timeout

    def switch(self, client: ProcessorClient, *, timeout: float) -> _Lane:
        """New calls go to ``client`` from now on; give what this returns (the old
        client and its calls in flight) to :meth:`retire`."""
        old = self._lane
        old_timeout = self._timeout
        self._lane = _Lane(client)
        self._timeout = timeout
        old.retired = True
        old.timeout = old_timeout
        if old.calls == 0:
            old.idle.set()
        logger.info(
            "processor: new calls go to %s; %d in flight finish on %s",
            client.name,
            old.calls,
            old.client.name,
        )
        return old

    @staticmethod
    async def retire(old: _Lane) -> None:
        """Close ``old``'s client once it has no call in flight, or after its timeout."""
        with trio.move_on_after(old.timeout + RETIRE_GRACE):
            await old.idle.wait()
        await SwitchingProcessorClient.close_client(old.client)
        logger.info("processor: the channel to %s is closed", old.client.name)

    def close(self) -> None:
        self._lane.client.close()

    @staticmethod
    async def close_client(client: ProcessorClient) -> None:
        """Close ``client``, gently when it can (a gRPC channel's watcher thread)."""
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            client.close()
