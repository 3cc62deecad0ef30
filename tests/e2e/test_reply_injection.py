"""A processor reply carrying CR/LF in a header never reaches the wire: the caller gets 500."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import trio
import trio_asyncio

from edgeport._proto import sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from edgeport.config import ProcessorConfig
from edgeport.sip.transport import Transport
from tests.e2e.conftest import address, make_config, start_edgeport
from tests.support.grpc_processor import ScriptableProcessor, start_processor
from tests.support.ua import UdpUA, sip

INJECTED = "fine\r\nX-Injected: 1"


def message(ua_port: int, n: int) -> bytes:
    return sip(
        f"""MESSAGE sip:bob@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bK-inj-{n};rport
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=i{n}
To: <sip:bob@127.0.0.1>
Call-ID: inj-{n}@test
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: 2

hi"""
    )


def injecting_answer(_request: MessageRequest) -> MessageResponse:
    reply = MessageResponse(
        message=sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
    )
    reply.message.extensions.add(name="X-Note", value=INJECTED)
    return reply


def injecting_forward(downstream_port: int) -> Callable[[MessageRequest], MessageResponse]:
    def reply(request: MessageRequest) -> MessageResponse:
        forwarded = MessageResponse(message=request.message)
        forwarded.message.request_uri.host = "127.0.0.1"
        forwarded.message.request_uri.port = downstream_port
        del forwarded.message.route[:]
        forwarded.message.extensions.add(name="Subject", value=INJECTED)
        return forwarded

    return reply


def unusable_reply_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unusable processor reply" in r.getMessage()]


async def test_injected_header_in_an_answer_gets_500_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edgeport")
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        processor = ScriptableProcessor(reply=injecting_answer)
        running = await start_processor(nursery, processor)
        server = await start_edgeport(
            nursery, make_config(processor=ProcessorConfig(running.addr, timeout=2.0))
        )
        ua = await UdpUA.open(address(server, Transport.UDP))
        await ua.send(message(ua.port, 1))
        answer = await ua.receive()
        assert answer.status == 500, answer.text
        assert b"X-Injected" not in answer.raw
        await ua.nothing_within(0.3)
        assert len(processor.requests) == 1
        assert len(unusable_reply_logs(caplog)) == 1
        nursery.cancel_scope.cancel()


async def test_injected_header_in_a_forwarded_request_is_never_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edgeport")
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        downstream = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await downstream.bind(("127.0.0.1", 0))
        processor = ScriptableProcessor(reply=injecting_forward(downstream.getsockname()[1]))
        running = await start_processor(nursery, processor)
        server = await start_edgeport(
            nursery, make_config(processor=ProcessorConfig(running.addr, timeout=2.0))
        )
        ua = await UdpUA.open(address(server, Transport.UDP))
        await ua.send(message(ua.port, 2))
        answer = await ua.receive()
        assert answer.status == 500, answer.text
        assert b"X-Injected" not in answer.raw
        with trio.move_on_after(0.3):
            data, _ = await downstream.recvfrom(65535)
            raise AssertionError(f"forwarded despite the injected header:\n{data!r}")
        assert len(unusable_reply_logs(caplog)) == 1
        downstream.close()
        nursery.cancel_scope.cancel()
