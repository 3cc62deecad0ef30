"""In-process fuzzing: each input through the parser, the conversion to a MessageRequest,
and stream framing in random chunk sizes. What may happen is a SipParseError, a
ConversionError or a FramingError; any other exception is a finding.

STUN datagrams (:mod:`tests.fuzz.stun`) go through edgeport's STUN decoder
(``edgeport.transports.stun.answer``) from IPv4, IPv6 and unusable source
addresses: every one is answered or refused (None), never raises, and each
answer passes :func:`tests.fuzz.stun.judge_answer`."""

from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field

from edgeport._proto import common_pb2, processor_pb2
from edgeport.convert import ConversionError, MessageRequestBuilder
from edgeport.sip.errors import MAX_MESSAGE_BYTES, SipParseError, SipSerializeError
from edgeport.sip.framing import FramingError, KeepalivePing, StreamFramer
from edgeport.sip.message import Request, Response
from edgeport.sip.parser import parse_message
from edgeport.transports.stun import answer as stun_answer
from tests.fuzz.stun import generate as generate_stun
from tests.fuzz.stun import judge_answer, sent

MAX_FINDINGS_KEPT = 20
SENDER = processor_pb2.NetInterface(host="192.0.2.1", port=5060, transport=common_pb2.UDP)
BUILDER = MessageRequestBuilder(
    edge_port_ref="fuzz",
    listening_points=[
        processor_pb2.NetInterface(host="127.0.0.1", port=5060, transport=common_pb2.UDP)
    ],
    external_addrs=["203.0.113.1"],
    localnets=["10.0.0.0/8"],
)


@dataclass
class Findings:
    """Counts of outcomes, and the first few unexpected exceptions with their input."""

    messages: int = 0
    parsed: int = 0
    converted: int = 0
    frames: int = 0
    exceptions: int = 0
    stun: int = 0  # STUN datagrams through the decoder
    stun_answered: int = 0
    wrong_answers: int = 0  # STUN answers the verdict refused
    examples: list[tuple[str, bytes]] = field(default_factory=list)

    def record(self, stage: str, data: bytes, problem: str | None = None) -> None:
        """An unexpected exception (being handled), or ``problem`` found with ``data``."""
        if problem is None:
            self.exceptions += 1
            problem = traceback.format_exc(limit=-3)
        else:
            self.wrong_answers += 1
        if len(self.examples) < MAX_FINDINGS_KEPT:
            self.examples.append((f"{stage}: {problem}", data[:2000]))


def well_formed(data: bytes) -> Request | Response | None:
    """The oracle for what may reach a processor: parse_message accepts it and its
    MessageRequest can be built (every typed header the conversion reads parses)."""
    try:
        message = parse_message(data)
        BUILDER.build(message, sender=SENDER)
    except (SipParseError, ConversionError):
        return None
    return message


def check_one(data: bytes, rng: random.Random, findings: Findings) -> None:
    findings.messages += 1
    message: Request | Response | None = None
    try:
        message = parse_message(data)
        findings.parsed += 1
    except SipParseError:
        pass
    except Exception:
        findings.record("parse_message", data)
    if message is not None:
        try:
            request = BUILDER.build(message, sender=SENDER)
            request.SerializeToString()
            findings.converted += 1
        except ConversionError:
            pass
        except Exception:
            findings.record("MessageRequestBuilder.build", data)
        try:
            message.to_bytes()
        except (SipSerializeError, SipParseError):
            pass
        except Exception:
            findings.record("to_bytes", data)
    _frame(data, rng, findings)


def _frame(data: bytes, rng: random.Random, findings: Findings) -> None:
    """Feed ``data`` and a valid message after it in random chunks; the framer must
    stay within its limit and fail only with a FramingError."""
    framer = StreamFramer()
    stream = data + b"\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
    at = 0
    try:
        while at < len(stream):
            size = rng.choice((1, 7, 64, 1500, 65536))
            for frame in framer.feed(stream[at : at + size]):
                if not isinstance(frame, KeepalivePing):
                    findings.frames += 1
                    if len(frame) > MAX_MESSAGE_BYTES:
                        raise AssertionError(f"frame of {len(frame)} bytes over the limit")
            at += size
            if framer.buffered > MAX_MESSAGE_BYTES + 65536:
                raise AssertionError(f"framer holds {framer.buffered} bytes")
    except FramingError:
        pass
    except Exception:
        findings.record("StreamFramer.feed", data)


# Where a STUN datagram comes from, as the UDP socket reports it; the last is no address.
STUN_SOURCES = (("127.0.0.1", 5060), ("192.0.2.9", 40000), ("2001:db8::9", 0), ("[::1]", 65535))
UNUSABLE_SOURCE = ("not-an-address", 5060)


def check_stun(rng: random.Random, findings: Findings) -> None:
    """One generated STUN datagram (with a few more flips now and then) through the
    decoder; an exception or a wrong answer is a finding."""
    _, data = generate_stun(rng, OPTIONS_FOR_STUN)
    if rng.random() < 0.2 and data:
        flipped = bytearray(data)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        data = bytes(flipped)
    findings.stun += 1
    host, port = rng.choice((*STUN_SOURCES, UNUSABLE_SOURCE))
    try:
        answer = stun_answer(data, host, port)
    except Exception:
        findings.record("stun.answer", data)
        return
    if answer is None:
        return
    findings.stun_answered += 1
    if (host, port) == UNUSABLE_SOURCE:
        # A 420 names no address; a success must, and there is none to name.
        if answer[:2] != b"\x01\x11":
            findings.record("stun.answer", data, f"{answer[:2].hex()} to a source {host!r}")
        return
    problem = judge_answer(sent(data), answer, host.strip("[]"), port)
    if problem is not None:
        findings.record("stun.answer", data, problem)


OPTIONS_FOR_STUN = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: stun@fuzz\r\nContent-Length: 0\r\n\r\n"
