"""An in-process edgeport with its built-in processor, on 127.0.0.1 ports chosen by the OS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from edgeport.builtin.registrar import Registrar
from edgeport.builtin.router import Router
from edgeport.config import (
    EdgePortConfig,
    ProcessorConfig,
    TransportConfig,
)
from edgeport.server import RunningServer, serve
from edgeport.sip.transport import Transport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import UdpUA

METHODS = (
    "REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE", "INFO",
    "NOTIFY", "SUBSCRIBE", "PRACK", "UPDATE", "REFER",
)  # fmt: skip


def make_config(processor_addr: str = "builtin", **overrides: object) -> EdgePortConfig:
    values: dict[str, object] = {
        "ref": "edgeport-test",
        "api_version": "v2beta1",
        "transports": (
            TransportConfig(Transport.UDP, 0, "127.0.0.1"),
            TransportConfig(Transport.TCP, 0, "127.0.0.1"),
            TransportConfig(Transport.WS, 0, "127.0.0.1"),
        ),
        "methods": METHODS,
        "processor": ProcessorConfig(processor_addr, timeout=2.0),
        "bind_addr": "127.0.0.1",
        "localnets": ("127.0.0.0/8",),
    }
    values.update(overrides)
    return EdgePortConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def edgeport(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    with trio.fail_after(10):
        server: RunningServer = await nursery.start(serve, make_config())
    yield server
    nursery.cancel_scope.cancel()


def address(server: RunningServer, transport: Transport) -> tuple[str, int]:
    point = next(p for p in server.listening_points if p.transport is transport)
    return ("127.0.0.1", point.port)


async def start_edgeport(
    nursery: trio.Nursery, config: EdgePortConfig, **kwargs: object
) -> RunningServer:
    with trio.fail_after(10):
        server: RunningServer = await nursery.start(
            lambda task_status: serve(config, task_status=task_status, **kwargs)
        )  # type: ignore[arg-type]
    return server


@dataclass
class RoutedEdge:
    """edgeport in front of a test processor that routes like the built-in one,
    with a caller and a callee on UDP."""

    processor: ScriptableProcessor
    server: RunningServer
    caller: UdpUA
    callee: UdpUA

    @property
    def callee_uri(self) -> str:
        return f"sip:bob@127.0.0.1:{self.callee.port}"


async def start_routed_edge(
    nursery: trio.Nursery, *, delay: float = 0.0, **overrides: object
) -> RoutedEdge:
    router = Router(Registrar(time.monotonic))
    processor = ScriptableProcessor(reply=router.process, delay=delay)
    running = await start_processor(nursery, processor)
    server = await start_edgeport(
        nursery, make_config(processor=ProcessorConfig(running.addr), **overrides)
    )
    edge = address(server, Transport.UDP)
    return RoutedEdge(processor, server, await UdpUA.open(edge), await UdpUA.open(edge))
