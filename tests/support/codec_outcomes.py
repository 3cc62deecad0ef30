"""What the codec makes of the fuzzer's inputs, one line of JSON, to compare two builds.

``python tests/support/codec_outcomes.py SEED COUNT`` prints ``{"build": ...,
"outcomes": [...]}``: for each generated input (tests.fuzz.mutate, seeded),
a digest of everything the codec produced from it: the parse error (reason
and status) or the MessageRequest bytes, the message written back, and the
request or response forwarded from a processor reply that echoes it
(conversion errors included). Run once against the pure codec and once
against the compiled one (``PYTHONPATH``), with the same ``PYTHONHASHSEED``,
the two lists must be equal.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

# tests.fuzz from this checkout; edgeport from PYTHONPATH, which comes first.
sys.path.append(str(Path(__file__).resolve().parent.parent.parent))

from edgeport._proto import common_pb2, processor_pb2
from edgeport.compiled import codec_build
from edgeport.convert import (
    ConversionError,
    MessageRequestBuilder,
    build_forward_request,
    build_forward_response,
    to_sip_message,
)
from edgeport.sip.errors import SipParseError, SipSerializeError
from edgeport.sip.message import Request
from edgeport.sip.parser import parse_message
from tests.fuzz.mutate import generate

SENDER = processor_pb2.NetInterface(host="192.0.2.1", port=5060, transport=common_pb2.UDP)
BUILDER = MessageRequestBuilder(
    edge_port_ref="outcomes",
    listening_points=[
        processor_pb2.NetInterface(host="127.0.0.1", port=5060, transport=common_pb2.UDP)
    ],
    external_addrs=["203.0.113.1"],
    localnets=["10.0.0.0/8"],
)


def outcome(data: bytes) -> list[str]:
    parts: list[str] = []
    try:
        message = parse_message(data)
    except SipParseError as error:
        return [f"parse error {error.reason!r} {error.status_code}"]
    try:
        parts.append(
            BUILDER.build(message, sender=SENDER).SerializeToString(deterministic=True).hex()
        )
        sent = to_sip_message(message)
    except ConversionError as error:
        return [*parts, f"conversion error {error.reason!r} {error.status_code}"]
    try:
        parts.append(message.to_bytes().hex())
    except SipSerializeError as error:
        parts.append(f"serialize error {error}")
    reply = processor_pb2.MessageResponse()
    reply.message.CopyFrom(sent)
    try:
        if isinstance(message, Request):
            forwarded = build_forward_request(
                reply, message, branch_factory=lambda: "z9hG4bKoutcome", sent=sent
            )
            parts.append(forwarded.request.to_bytes().hex())
            parts.append(repr(forwarded.gateway_auth))
        else:
            parts.append(build_forward_response(reply, message, sent=sent).to_bytes().hex())
    except (ConversionError, SipSerializeError) as error:
        parts.append(f"forward error {type(error).__name__} {error}")
    return parts


def main() -> None:
    seed, count = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    digests = []
    for _ in range(count):
        text = "\n".join(outcome(generate(rng)))
        digests.append(hashlib.sha256(text.encode()).hexdigest()[:16])
    print(json.dumps({"build": codec_build(), "outcomes": digests}))


if __name__ == "__main__":
    main()
