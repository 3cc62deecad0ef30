"""What the fuzzer sees edgeport emit: processor calls (judged by Call-ID) and HEP packets."""

from __future__ import annotations

import struct
import threading
from collections import Counter
from typing import Final

from edgeport._proto import processor_pb2_grpc, sipmessage_pb2
from edgeport._proto.processor_pb2 import MessageRequest, MessageResponse
from tests.fuzz.nexthop import Forwarding
from tests.fuzz.verdicts import Judgement, Verdicts
from tests.support.hep_collector import Collector

MAX_KEPT_LINES: Final = 20  # examples kept of what went wrong


class FuzzProcessor(processor_pb2_grpc.ProcessorServicer):
    """Judges each request's Call-ID and answers it 200, or forwards a share of the
    expected ones (:mod:`tests.fuzz.nexthop`); keeps counts, not requests."""

    def __init__(self, verdicts: Verdicts, forwarding: Forwarding | None = None) -> None:
        self.verdicts = verdicts
        self.forwarding = forwarding
        self.judged: Counter[Judgement] = Counter()
        self.unexpected: list[str] = []
        self._lock = threading.Lock()

    def ProcessMessage(self, request: MessageRequest, context: object) -> MessageResponse:
        try:
            judgement = self.verdicts.judge(request.ref)
        except Exception as exc:  # a defect of the fuzzer: reported, never a silent gRPC error
            judgement = Judgement.UNEXPECTED
            with self._lock:
                if len(self.unexpected) < MAX_KEPT_LINES:
                    self.unexpected.append(
                        f"the fuzzer could not judge {request.ref[:80]!r}: {exc!r}"
                    )
        with self._lock:
            self.judged[judgement] += 1
            if judgement is Judgement.UNEXPECTED and len(self.unexpected) < MAX_KEPT_LINES:
                self.unexpected.append(
                    f"{request.ref[:120]!r} ({len(request.message.body)} B body)"
                )
        if self.forwarding is not None and judgement is Judgement.EXPECTED:
            forwarded = self.forwarding.reply(request)
            if forwarded is not None:
                return forwarded
        return MessageResponse(
            message=sipmessage_pb2.SIPMessage(response_type=sipmessage_pb2.ResponseType.OK)
        )


class HepSink:
    """Counts what the collector receives; checks each packet's HEP v3 frame
    (``HEP3``, then a 16-bit total length equal to the datagram's)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.packets = 0
        self.bytes = 0
        self.largest = 0
        self.bad: list[str] = []
        self.bad_count = 0

    async def serve(self) -> None:
        while True:
            packet = await self.collector.receive()
            self.packets += 1
            self.bytes += len(packet)
            self.largest = max(self.largest, len(packet))
            ok = len(packet) >= 6 and packet[:4] == b"HEP3"
            if ok and struct.unpack_from("!H", packet, 4)[0] != len(packet):
                ok = False
            if not ok:
                self.bad_count += 1
                if len(self.bad) < MAX_KEPT_LINES:
                    self.bad.append(f"{len(packet)} bytes: {packet[:16]!r}")
